"""`tee-agent init`: the files it writes, their modes, that both configs load, --force."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from enclave.config import load_config
from host.cli import main
from host.config import HostConfig, load_host_config

REPO = Path(__file__).resolve().parent.parent
FILES = ("tee-agent.toml", "enclave.toml", "owner.key", "auth-token")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("TEE_AGENT_"):
            monkeypatch.delenv(name)


def init(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["init", *argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def check_directory(directory: Path) -> None:
    """Everything `init` promises about a directory it wrote."""
    assert sorted(p.name for p in directory.iterdir()) == sorted(FILES)
    assert mode(directory / "owner.key") == 0o600
    assert mode(directory / "auth-token") == 0o600
    assert not mode(directory / "tee-agent.toml") & 0o022

    seed = (directory / "owner.key").read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", seed)
    public = bytes(SigningKey(bytes.fromhex(seed)).verify_key).hex()

    enclave = load_config(directory / "enclave.toml")
    assert enclave.owner.public_key == public
    assert enclave.chain.chain_id == 31337
    assert enclave.guardrails.allowed_chain_ids == [31337]
    assert enclave.market.clock == "replay"
    assert enclave.market.decision_interval_seconds == 3600
    assert enclave.policy.kind == "rule"
    assert [pair.symbol for pair in enclave.pairs] == ["ETH/USDT"]
    assert enclave.chain.router == "0x7a250d5630B4cF539739dF2C5dAcb4c659F2488D"

    token = (directory / "auth-token").read_text().strip()
    assert len(token) >= 32
    host = load_host_config(directory / "tee-agent.toml")
    assert host.write_token() == token
    assert host.host.auth_token_file == directory.resolve() / "auth-token"
    assert host.enclave.config == directory.resolve() / "enclave.toml"
    assert host.host.data_dir == directory.resolve() / "var" / "agent"
    assert host.market.pair == "ETH/USDT"
    assert host.market.file == REPO / "data" / "market" / "eth-usdt-binance-1h-2022-2023.csv"
    assert host.market.file.is_file()


def test_init_writes_a_loadable_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "agent"
    code, out, err = init(capsys, "--dir", str(directory))
    assert code == 0, err
    check_directory(directory)
    for name in FILES:
        assert f"wrote {directory / name}" in out
    public = load_config(directory / "enclave.toml").owner.public_key
    assert f"owner public key: {public}" in out
    # Secrets go to files, never to the terminal. Flags, not `in` in the asserts: pytest
    # would print the secret (and all of `out`) on a failure.
    leaked = (directory / "owner.key").read_text().strip() in out
    assert not leaked, "the owner key appears in init's output"
    leaked = (directory / "auth-token").read_text().strip() in out
    assert not leaked, "the auth token appears in init's output"


def test_every_host_key_is_written_with_a_comment(tmp_path: Path) -> None:
    from host.agent_directory import init_directory

    init_directory(tmp_path)
    text = (tmp_path / "tee-agent.toml").read_text()
    lines = text.splitlines()
    written = tomllib.loads(text)
    for section, model in HostConfig.model_fields.items():
        assert f"[{section}]" in lines
        assert model.annotation is not None
        for key in model.annotation.model_fields:
            # Present (or, for an optional path, shown commented out) after a comment line.
            found = [i for i, line in enumerate(lines) if re.match(rf"^(# )?{key} = ", line)]
            assert len(found) == 1, f"{section}.{key} is not written once"
            index = found[0]
            assert lines[index - 1].startswith("#"), key
            assert "Default" in "\n".join(lines[max(index - 3, 0) : index]), key
    assert written["host"]["auth_token_file"] == "auth-token"


def test_init_refuses_to_overwrite_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert init(capsys, "--dir", str(tmp_path))[0] == 0
    before = {name: (tmp_path / name).read_bytes() for name in FILES}

    code, out, err = init(capsys, "--dir", str(tmp_path))
    assert (code, out) == (1, "")
    assert "already exist" in err and "--force" in err and "owner.key" in err
    assert {name: (tmp_path / name).read_bytes() for name in FILES} == before

    code, _, err = init(capsys, "--dir", str(tmp_path), "--force")
    assert code == 0, err
    assert (tmp_path / "owner.key").read_bytes() != before["owner.key"]
    assert (tmp_path / "auth-token").read_bytes() != before["auth-token"]
    check_directory(tmp_path)


def test_one_existing_file_is_enough_to_refuse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "owner.key").write_text("keep me\n")
    code, _, err = init(capsys, "--dir", str(tmp_path))
    assert code == 1
    assert f"{tmp_path / 'owner.key'} already exists" in err
    assert [p.name for p in tmp_path.iterdir()] == ["owner.key"]
    assert (tmp_path / "owner.key").read_text() == "keep me\n"


def test_force_makes_a_loose_secret_file_private(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "auth-token").write_text("old\n")
    (tmp_path / "auth-token").chmod(0o644)
    assert init(capsys, "--dir", str(tmp_path), "--force")[0] == 0
    assert mode(tmp_path / "auth-token") == 0o600


def test_unwritable_directory_is_a_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = init(capsys, "--dir", str(blocker / "agent"))
    assert code == 1
    assert err.startswith("tee-agent init: cannot write to")


def test_default_directory_is_the_working_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert init(capsys)[0] == 0
    check_directory(tmp_path)


def test_init_as_a_subprocess(tmp_path: Path) -> None:
    beside_python = Path(sys.executable).parent / "tee-agent"
    script = str(beside_python) if beside_python.exists() else shutil.which("tee-agent")
    assert script is not None, "the tee-agent console script is not installed"
    directory = tmp_path / "agent"
    result = subprocess.run(
        [script, "init", "--dir", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.upper().startswith("TEE_AGENT_")},
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    check_directory(directory)
    again = subprocess.run(
        [script, "init", "--dir", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert again.returncode == 1
    assert "--force" in again.stderr and "Traceback" not in again.stderr
