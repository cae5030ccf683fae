"""The quick start as a newcomer runs it: `tee-agent init`, the quickstart, then
`tee-agent status` and `tee-agent verify agent` in the agent's directory with no flags but
the one naming the simulated root; then Ctrl-C, and nothing left running."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.needs_anvil import skip_without_anvil

ROOT = Path(__file__).resolve().parent.parent
TEE_AGENT = Path(sys.executable).parent / "tee-agent"
PORTS = (8545, 50051, 9464)  # anvil, the API and the metrics of the config `init` writes


def busy(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def in_directory(directory: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TEE_AGENT), *arguments], cwd=directory, capture_output=True, text=True, timeout=300
    )


def test_init_quickstart_status_and_verify_agent_in_the_agent_s_directory(tmp_path: Path) -> None:
    skip_without_anvil()
    if any(busy(port) for port in PORTS):
        pytest.skip(f"the quick start's fixed ports {PORTS} are not all free here")
    directory = tmp_path / "my-agent"
    assert in_directory(tmp_path, "init", "--dir", "my-agent").returncode == 0
    log = tmp_path / "quickstart.log"
    with log.open("w") as output:
        quickstart = subprocess.Popen(
            [sys.executable, "-m", "devnet.quickstart", "my-agent", "--hours", "30"],
            cwd=ROOT, env={**os.environ, "QUICKSTART_CWD": str(tmp_path)},
            stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 600  # a hang guard: it says when it is ready
        while "the agent keeps running" not in log.read_text():
            assert quickstart.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "the quickstart never became ready"
            time.sleep(0.2)
        status = in_directory(directory, "status", "--json")
        assert status.returncode == 0, status.stderr
        figures = json.loads(status.stdout)
        assert figures["ticks_accepted"] == 30 and figures["transactions"] > 0
        assert figures["vault"]["agent_active"] is True
        verified = in_directory(
            directory, "verify", "agent", "--trust-root", "var/agent/sim/root.pem", "--json"
        )
        assert verified.returncode == 0, verified.stdout + verified.stderr
        report = json.loads(verified.stdout)
        assert report["valid"] is True
        assert {"vault_trades_have_receipts", "receipt_texts"} <= {
            c["name"] for c in report["checks"]
        }
        # Without naming the simulated root, the same command refuses the quote.
        assert in_directory(directory, "verify", "agent", "--json").returncode == 1
    finally:
        quickstart.send_signal(signal.SIGINT)
        code = quickstart.wait(timeout=120)
    assert code == 0, log.read_text()[-2000:]
    assert not any(busy(port) for port in PORTS), "something of the quick start still runs"
