"""`tee-agent init` then `tee-agent run` as an operator runs them: real processes, real ports,
the bundled market data replayed, metrics scraped, and a second start resuming."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from tee_agent_rpc import agent_pb2 as pb
from tee_agent_rpc import agent_pb2_grpc as pb_grpc

TEE_AGENT = shutil.which("tee-agent", path=str(Path(sys.executable).parent))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(predicate, timeout: float = 300.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


def status(port: int) -> pb.Status | None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            return pb_grpc.AgentStub(channel).GetStatus(pb.GetStatusRequest(), timeout=2)
        except grpc.RpcError:
            return None


def start(directory: Path, rows: int, port: int, metrics: int) -> subprocess.Popen[bytes]:
    """Run the host on the init'd directory, replaying at most `rows` more candles."""
    env = {
        **os.environ,
        "TEE_AGENT_MARKET__MAX_ROWS": str(rows),
        "TEE_AGENT_HOST__METRICS_LISTEN": f"127.0.0.1:{metrics}",
    }
    with (directory / "host.log").open("ab") as log:
        return subprocess.Popen(
            [str(TEE_AGENT), "run", "--config", str(directory / "tee-agent.toml"),
             "--listen", f"127.0.0.1:{port}"],
            env=env, stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip


@pytest.mark.skipif(TEE_AGENT is None, reason="the tee-agent console script is not installed")
def test_run_replays_serves_metrics_and_resumes_after_a_restart(tmp_path: Path) -> None:
    directory = tmp_path / "agent"
    init = subprocess.run(
        [str(TEE_AGENT), "init", "--dir", str(directory)], capture_output=True, text=True
    )
    assert init.returncode == 0, init.stderr
    port, metrics = free_port(), free_port()

    host = start(directory, 300, port, metrics)
    try:
        # One decision per hourly candle: 300 receipts once the host has stored them all.
        first = wait_for(lambda: (s := status(port)) and s.receipts == 300 and s)
        scraped = urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics").read().decode()
    finally:
        host.send_signal(signal.SIGTERM)
        assert host.wait(timeout=30) == 0
    assert first.enclave_state == "running" and first.address.startswith("0x")
    assert first.ticks_accepted == 300 and first.last_tick_seq == 300
    assert "tee_agent_ticks_accepted_total 300.0" in scraped
    assert "tee_agent_seconds_since_last_accepted_tick " in scraped
    assert "tee_agent_paused 0.0" in scraped

    host = start(directory, 200, port, metrics)  # 200 more: rows 301 to 500
    try:
        again = wait_for(lambda: (s := status(port)) and s.receipts == 500 and s)
    finally:
        host.send_signal(signal.SIGTERM)
        assert host.wait(timeout=30) == 0
    assert again.address == first.address, "the same keys, from the sealed state"
    assert again.ticks_accepted == 500 and again.ticks_refused == 0, "resumed, nothing replayed"
    assert again.last_tick_seq == 500
    log = (directory / "host.log").read_text()
    assert "Traceback" not in log
    # The quick start runs without a chain: it says why nothing will trade.
    assert "every decision is a hold and nothing trades" in log
