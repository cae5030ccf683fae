"""Exactly one enclave per agent, tried as an operator would: real `tee-agent run`
processes, kill -9, a second start on a busy data directory or port, a failed start."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from enclave.exclusive_lock import hold_exclusive_lock, lock_holder_pid
from host.config import load_host_config
from host.metrics import MetricsError
from host.run import start_host
from tests.enclave_harness import EnclaveWorld
from tests.host_harness import host_toml
from tests.test_run_command import TEE_AGENT, free_port, start, status, wait_for

needs_cli = pytest.mark.skipif(TEE_AGENT is None, reason="the tee-agent console script is absent")


def exited(pid: int) -> bool:
    """Gone, or a zombie nobody reaped yet (an orphan's new parent may be slow to)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return True
    return fields[0] in ("Z", "X")


def alive(pid: int) -> bool:
    if Path("/proc").is_dir():
        return not exited(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def init_agent(directory: Path) -> None:
    made = subprocess.run(
        [str(TEE_AGENT), "init", "--dir", str(directory)], capture_output=True, text=True
    )
    assert made.returncode == 0, made.stderr


def run_once(directory: Path, port: int, metrics: int) -> subprocess.CompletedProcess[str]:
    """A second `tee-agent run` that is expected to refuse to start, so to return."""
    env = {**os.environ, "TEE_AGENT_HOST__METRICS_LISTEN": f"127.0.0.1:{metrics}"}
    return subprocess.run(
        [str(TEE_AGENT), "run", "--config", str(directory / "tee-agent.toml"),
         "--listen", f"127.0.0.1:{port}"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def one_file(directory: Path, name: str) -> Path:
    (found,) = directory.rglob(name)
    return found


def stop(host: subprocess.Popen[bytes]) -> None:
    if host.poll() is None:
        host.send_signal(signal.SIGTERM)
    assert host.wait(timeout=30) == 0


@needs_cli
def test_a_second_run_on_a_busy_data_directory_or_port_exits_2_naming_the_holder(
    tmp_path: Path,
) -> None:
    directory, other = tmp_path / "agent", tmp_path / "other"
    init_agent(directory)
    init_agent(other)
    port = free_port()
    host = start(directory, 0, port, free_port())
    try:
        wait_for(lambda: (s := status(port)) and s.enclave_state == "running")
        enclave_pid = lock_holder_pid(one_file(directory, "enclave.lock"))

        same_directory = run_once(directory, free_port(), free_port())
        assert same_directory.returncode == 2, same_directory.stderr
        assert f"pid {host.pid}" in same_directory.stderr
        assert "host.lock" in same_directory.stderr and "since" in same_directory.stderr

        same_port = run_once(other, port, free_port())
        assert same_port.returncode == 2, same_port.stderr
        assert f"cannot listen on 127.0.0.1:{port}" in same_port.stderr
        assert "Traceback" not in same_port.stderr
        # The refused host stopped the enclave it had started; the first one still serves.
        other_enclave = lock_holder_pid(one_file(other, "enclave.lock"))
        assert other_enclave is not None and not alive(other_enclave)
        assert enclave_pid is not None and alive(enclave_pid)
        assert (s := status(port)) is not None and s.enclave_state == "running"
    finally:
        stop(host)


@needs_cli
def test_kill_9_of_the_host_takes_its_enclave_down_and_the_next_run_starts(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "agent"
    init_agent(directory)
    port = free_port()
    host = start(directory, 0, port, free_port())
    try:
        wait_for(lambda: (s := status(port)) and s.enclave_state == "running")
        enclave_pid = lock_holder_pid(one_file(directory, "enclave.lock"))
        assert enclave_pid is not None and alive(enclave_pid)
        assert lock_holder_pid(one_file(directory, "host.lock")) == host.pid
    finally:
        host.kill()
        host.wait(timeout=30)
    wait_for(lambda: not alive(enclave_pid), timeout=15)

    again = start(directory, 0, port, free_port())
    try:
        state = wait_for(lambda: (s := status(port)) and s.enclave_state == "running" and s)
        assert state.address.startswith("0x")
        assert lock_holder_pid(one_file(directory, "enclave.lock")) != enclave_pid
    finally:
        stop(again)


def test_a_start_failing_on_a_busy_metrics_port_leaves_no_enclave_behind(
    tmp_path: Path,
) -> None:
    world = EnclaveWorld(tmp_path)
    world.write_config(decision_interval_seconds=3600)
    data_dir = tmp_path / "data"
    config_file = tmp_path / "tee-agent.toml"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        metrics_listen = f"127.0.0.1:{busy.getsockname()[1]}"
        config_file.write_text(
            host_toml(world, data_dir).replace(
                'metrics_listen = ""', f'metrics_listen = "{metrics_listen}"'
            )
        )
        with pytest.raises(MetricsError, match=metrics_listen):
            start_host(load_host_config(config_file), listen="127.0.0.1:0")

    enclave_pid = lock_holder_pid(data_dir / "run" / "enclave.lock")
    assert enclave_pid is not None and enclave_pid != os.getpid()
    assert not alive(enclave_pid), "the enclave it started was stopped"
    # Both locks are free again: nothing of the failed start holds the agent.
    for lock in (data_dir / "host.lock", data_dir / "run" / "enclave.lock"):
        hold_exclusive_lock(lock, "the test").release()


def test_an_enclave_stops_when_its_host_pipe_closes_and_a_second_one_is_refused(
    tmp_path: Path,
) -> None:
    # The pipe alone (no prctl): what protects an enclave restarted from a worker thread.
    world = EnclaveWorld(tmp_path)
    world.write_config(decision_interval_seconds=3600)
    lock = tmp_path / "enclave.lock"

    def serve(extra: list[str]) -> list[str]:
        return [
            sys.executable, "-m", "enclave", "serve",
            "--socket", str(world.socket_dir / "enclave.sock"),
            "--config", str(world.config_path),
            "--sim-dir", str(world.sim_dir), "--lock", str(lock), *extra,
        ]  # fmt: skip

    watched, host_end = os.pipe()
    log = tmp_path / "first.log"
    with log.open("wb") as log_file:
        first = subprocess.Popen(
            serve(["--host-pipe-fd", str(watched)]), pass_fds=(watched,), stderr=log_file
        )
    os.close(watched)
    try:
        wait_for(lambda: lock_holder_pid(lock) == first.pid, timeout=60)
        second = subprocess.run(serve([]), capture_output=True, text=True, timeout=60)
        assert second.returncode == 2
        assert f"pid {first.pid}" in second.stderr and "enclave.lock" in second.stderr
        assert first.poll() is None
    finally:
        os.close(host_end)  # what the host's death does
    first.wait(timeout=15)
    assert "the host is gone" in log.read_text()
