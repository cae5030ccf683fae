"""The chaos run's processes: anvil (with a state file), the host (`tee-agent run`) as a real
subprocess, and the enclave it starts; each can be SIGKILLed and brought back.

- anvil dumps its state every second; `kill_anvil` waits until the dump holds the head
  block (anvil forgets blocks mined after its last dump), kills it, and restarts it from
  the dump with its clock just past the last block seen, so chain time never runs back.
- the host is restarted on the same data directory; a start refused because the old
  enclave still holds the agent's lock (exit 2) is tried again once that enclave is gone.
- the enclave is found as the host's child; the host restarts it on its next call.
- `orphans` scans /proc for any process whose command line names the run's directory or
  anvil's port; `stop` ends everything the run started, whatever happened.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

import grpc
from tee_agent_rpc import agent_pb2 as pb
from tee_agent_rpc import agent_pb2_grpc as pb_grpc

from devnet.anvil import Anvil, AnvilError
from enclave.exclusive_lock import lock_holder_pid

REPO = Path(__file__).resolve().parent.parent
log = logging.getLogger("tee_agent.chaos")
# Generous guards against a hang only: nothing waits this long when things work.
HANG_GUARD_SECONDS = 300.0
# How long an enclave may outlive its killed host before it counts as an orphan.
ENCLAVE_EXIT_SECONDS = 30.0

Value = TypeVar("Value")


class ChaosError(Exception):
    """A process of the run would not start or come back (the message says which and why)."""


def wait_until(
    what: str, probe: Callable[[], Value | None], timeout: float = HANG_GUARD_SECONDS
) -> Value:
    """Poll `probe` until it returns something other than None or False.

    Raises:
        ChaosError: not within `timeout` seconds (named by `what`).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise ChaosError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.1)


def exited(pid: int) -> bool:
    """Gone, or a zombie its parent has not reaped yet."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return fields[0] in ("Z", "X")


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def _pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdecimal()]


def _outliving(enclaves: list[int], how: str) -> list[str]:
    """Wait for each enclave of a host that was `how` (killed, stopped) to exit; name and
    SIGKILL those still running after ENCLAVE_EXIT_SECONDS."""
    left = []
    for pid in enclaves:
        try:
            wait_until(f"enclave {pid} exiting", partial(exited, pid), ENCLAVE_EXIT_SECONDS)
        except ChaosError:
            left.append(f"enclave pid {pid} outlived its {how} host: {_cmdline(pid)}")
            os.kill(pid, signal.SIGKILL)
    return left


def child_env() -> dict[str, str]:
    """The environment of the host subprocess: this checkout (and its stubs) first."""
    path = os.pathsep.join([str(REPO), str(REPO / "proto"), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path.rstrip(os.pathsep), "PYTHONUNBUFFERED": "1"}


class ChaosProcesses:
    """anvil, the host subprocess and its enclave, for one run in `workdir`."""

    def __init__(self, workdir: Path, anvil: Anvil, host_config: Path, port: int) -> None:
        self.workdir = workdir
        self.anvil = anvil
        self.host_config = host_config
        self.port = port
        self.data_dir = workdir / "agent"
        self.host_log = workdir / "host.log"
        self.host: subprocess.Popen[bytes] | None = None
        # Every pid of the run's processes, to check by pid that none is left at the end.
        self.pids: set[int] = set()
        self._good_dump = ""
        self._channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = pb_grpc.AgentStub(self._channel)

    @classmethod
    def start_anvil(cls, workdir: Path, genesis_timestamp: int) -> Anvil:
        """anvil with its state in `workdir`, dumped every second."""
        return Anvil.start(
            state_file=workdir / "anvil-state.json",  # ChaosProcesses.state_file
            state_interval=1,
            genesis_timestamp=genesis_timestamp,
        )

    # -- the host ---------------------------------------------------------------------------

    def status(self, timeout: float = 5.0) -> pb.Status | None:
        """The host's status, or None when it does not answer."""
        try:
            answer: pb.Status = self.stub.GetStatus(pb.GetStatusRequest(), timeout=timeout)
        except grpc.RpcError:
            return None
        return answer

    def serving(self) -> pb.Status | None:
        """The status once the host serves with a running enclave, else None."""
        status = self.status()
        if status is None or status.enclave_state != "running" or not status.address:
            return None
        return status

    def start_host(self) -> pb.Status:
        """Start `tee-agent run` on the data directory and wait until its enclave runs.

        A start refused because a lock is still held (the last enclave has not exited yet)
        is tried again.

        Raises:
            ChaosError: it keeps exiting, or does not serve within the hang guard.
        """
        deadline = time.monotonic() + HANG_GUARD_SECONDS
        while True:
            with self.host_log.open("ab") as log_file:
                self.host = subprocess.Popen(
                    [sys.executable, "-m", "host.cli", "run", "--config", str(self.host_config),
                     "--listen", f"127.0.0.1:{self.port}"],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log_file,
                    env=child_env(), cwd=REPO,
                )  # fmt: skip
            host = self.host
            self.pids.add(host.pid)

            def up(host: subprocess.Popen[bytes] = host) -> pb.Status | bool | None:
                return True if host.poll() is not None else self.serving()

            answer = wait_until("the host serving with its enclave", up)
            if isinstance(answer, pb.Status):
                self._note_enclave()
                return answer
            if host.returncode != 2 or "locked by" not in self._log_tail():
                raise ChaosError(
                    f"the host exited with status {host.returncode}: {self._log_tail()}"
                )
            if time.monotonic() > deadline:
                raise ChaosError(f"the agent's locks stayed busy: {self._log_tail()}")
            time.sleep(0.2)

    def kill_host(self) -> list[str]:
        """SIGKILL the host, then wait for its enclave to end; returns what outlived it.

        An enclave still running after ENCLAVE_EXIT_SECONDS is an orphan: it is named in the
        result and killed, so the run can go on.
        """
        host, self.host = self.host, None
        if host is None:
            return []
        enclaves = self._children(host.pid)
        host.kill()
        host.wait(timeout=30)
        return _outliving(enclaves, "killed")

    def enclave_pid(self) -> int | None:
        """The pid of the enclave the host runs now, or None."""
        if self.host is None:
            return None
        children = self._children(self.host.pid)
        return children[0] if children else None

    def kill_enclave(self) -> int | None:
        """SIGKILL the host's enclave; returns its pid (None: none was running)."""
        pid = self.enclave_pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            wait_until(f"enclave {pid} dying", lambda: exited(pid), 30)
        return pid

    def wait_enclave_back(self, killed: int | None) -> pb.Status:
        """Wait until the host serves again with an enclave other than `killed`.

        Raises:
            ChaosError: not within the hang guard.
        """

        def back() -> pb.Status | None:
            status = self.serving()
            current = self.enclave_pid()
            if status is None or current is None or current == killed:
                return None
            return status

        status = wait_until("the host restarting its enclave", back)
        self._note_enclave()
        return status

    def stop_host(self) -> list[str]:
        """SIGTERM the host and wait for it and its enclave; returns what outlived it."""
        host, self.host = self.host, None
        if host is None:
            return []
        enclaves = self._children(host.pid)
        if host.poll() is None:
            host.send_signal(signal.SIGTERM)
            try:
                host.wait(timeout=60)
            except subprocess.TimeoutExpired:
                host.kill()
                host.wait(timeout=30)
        return _outliving(enclaves, "stopped")

    # -- anvil ------------------------------------------------------------------------------

    @property
    def state_file(self) -> Path:
        return self.workdir / "anvil-state.json"

    def dumped_block(self) -> int | None:
        """The newest block in anvil's state file, or None while it is being written; the
        text read is kept as the last good dump."""
        try:
            text = self.state_file.read_text()
            block = int(json.loads(text)["best_block_number"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        self._good_dump = text
        return block

    def kill_anvil(self, wait_for_dump: bool = True) -> None:
        """SIGKILL anvil once its state dump holds the head block (at once without
        `wait_for_dump`: the blocks after its last dump are lost), and restart it from the
        dump, its clock past the last block's time.

        Raises:
            ChaosError: anvil does not come back.
        """
        w3 = self.anvil.web3(timeout=10)

        def head_dumped() -> int | None:
            # The dump first (parsing it takes a while), then the head, then at once the
            # kill: only a block mined in that instant is lost (and the audit would say so).
            dumped = self.dumped_block()
            head = w3.eth.get_block("latest")
            if dumped is None or dumped < head["number"]:
                return None
            return int(head["timestamp"])

        try:
            if not wait_for_dump:
                raise ChaosError("not waiting for anvil's dump")
            latest = wait_until("anvil dumping its head block", head_dumped, 30)
        except ChaosError:
            if wait_for_dump:
                log.warning("anvil's state dump lags its head block; killing it anyway")
            latest = int(w3.eth.get_block("latest")["timestamp"])
        pid = self.anvil.pid
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
        # The restarted chain starts its clock here (its blocks come from the dump).
        self.anvil.genesis_timestamp = latest + 2
        try:
            self.anvil.restart()
        except AnvilError as exc:
            if not self._good_dump:
                raise ChaosError(f"anvil did not come back from its state file: {exc}") from None
            # The kill may land while anvil rewrites its dump: back to the one read whole.
            log.warning("anvil could not load its state file; restoring the last whole dump")
            self.state_file.write_text(self._good_dump)
            try:
                self.anvil.restart()
            except AnvilError as again:
                raise ChaosError(f"anvil did not come back from its state: {again}") from None
        self._note_enclave()

    # -- the end ----------------------------------------------------------------------------

    def orphans(self) -> list[str]:
        """Live processes (not this one or its ancestors) whose command line names the run's
        directory or anvil's port."""
        mine = set()
        pid: int | None = os.getpid()
        while pid:
            mine.add(pid)
            pid = _parent(pid)
        marks = (str(self.workdir), f"--port {self.anvil.port} ")
        found = {
            pid: f"pid {pid}: {_cmdline(pid).strip()[:300]}"
            for pid in sorted(self.pids)
            if not exited(pid) and pid not in mine
        }
        for pid in _pids():
            if pid in mine or pid in found or exited(pid):
                continue
            line = _cmdline(pid)
            if any(mark in line + " " for mark in marks):
                found[pid] = f"pid {pid}: {line.strip()[:300]}"
        return list(found.values())

    def stop(self) -> list[str]:
        """Stop the host, its enclave and anvil; returns what outlived its stop."""
        left = []
        try:
            left = self.stop_host()
        finally:
            self.anvil.stop()
            self._channel.close()
        return left

    # -- internals --------------------------------------------------------------------------

    def _children(self, pid: int) -> list[int]:
        found = []
        for child in _pids():
            if _parent(child) == pid and not exited(child) and "enclave" in _cmdline(child):
                found.append(child)
        return found

    def _note_enclave(self) -> None:
        pid = lock_holder_pid(self.data_dir / "run" / "enclave.lock")
        if pid is not None:
            self.pids.add(pid)
        if self.anvil.pid is not None:
            self.pids.add(self.anvil.pid)

    def _log_tail(self) -> str:
        try:
            lines = self.host_log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return lines[-1][-400:] if lines else "(no output)"
