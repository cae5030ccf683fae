"""The committed gRPC stubs are exactly what the .proto files generate (scripts/gen-proto)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

protoc = pytest.importorskip("grpc_tools.protoc", reason="grpcio-tools is a dev dependency")

PROTO = Path(__file__).resolve().parent.parent / "proto"


def test_committed_stubs_match_the_protos(tmp_path: Path) -> None:
    shutil.copytree(
        PROTO / "tee_agent_rpc",
        tmp_path / "tee_agent_rpc",
        ignore=shutil.ignore_patterns("*.py*", "__pycache__"),
    )
    protos = sorted(
        str(path.relative_to(tmp_path)) for path in (tmp_path / "tee_agent_rpc").glob("*.proto")
    )
    assert protos, "no .proto files found"
    args = [
        "protoc",
        f"-I{tmp_path}",
        f"--python_out={tmp_path}",
        f"--pyi_out={tmp_path}",
        f"--grpc_python_out={tmp_path}",
        *protos,
    ]
    assert protoc.main(args) == 0
    generated = sorted(
        p.name for p in (tmp_path / "tee_agent_rpc").iterdir() if p.suffix in (".py", ".pyi")
    )
    assert generated
    for name in generated:
        committed = PROTO / "tee_agent_rpc" / name
        assert committed.exists(), f"{name} is not committed: run scripts/gen-proto"
        assert committed.read_text() == (tmp_path / "tee_agent_rpc" / name).read_text(), (
            f"{name} is stale: run scripts/gen-proto"
        )
