"""The enclave supervisor: start the enclave process, open it on the latest sealed state,
and restart it with backoff whenever it dies.

The enclave runs as a child process serving gRPC on a unix socket in a directory only this
user can enter. The supervisor never sees a key: it hands the enclave the opaque sealed
state the host stored, and stores each new one the enclave returns.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from attestation.binding import AgentIdentity
from host.enclave_client import MAX_MESSAGE_BYTES, EnclaveClient, Opened, answers

log = logging.getLogger("tee_agent.host.supervisor")


class EnclaveUnavailable(Exception):
    """The enclave process cannot be started or opened (the message says why)."""


@dataclass(frozen=True)
class EnclaveLaunch:
    """How to start the enclave process."""

    config: Path
    run_dir: Path
    platform: str = "sim"
    sim_dir: Path | None = None
    model: Path | None = None
    # TDX: where its sealing key comes from ("dstack-kms" or "file"), and the file or
    # dstack's endpoint; None leaves the enclave's defaults.
    sealing_key_source: str | None = None
    sealing_key_file: Path | None = None
    dstack_endpoint: str | None = None
    ready_timeout: float = 60.0
    backoff_initial: float = 0.2
    backoff_max: float = 10.0
    extra_args: tuple[str, ...] = field(default_factory=tuple)

    @property
    def lock(self) -> Path:
        """The file the enclave locks while it runs: one enclave on this state at a time."""
        return self.run_dir / "enclave.lock"

    def command(self, socket: Path) -> list[str]:
        command = [
            sys.executable, "-m", "enclave", "serve",
            "--socket", str(socket),
            "--config", str(self.config),
            "--platform", self.platform,
            "--lock", str(self.lock),
        ]  # fmt: skip
        if self.sim_dir is not None:
            command += ["--sim-dir", str(self.sim_dir)]
        if self.model is not None:
            command += ["--model", str(self.model)]
        if self.sealing_key_source is not None:
            command += ["--sealing-key-source", self.sealing_key_source]
        if self.sealing_key_file is not None:
            command += ["--sealing-key-file", str(self.sealing_key_file)]
        if self.dstack_endpoint is not None:
            command += ["--dstack-endpoint", self.dstack_endpoint]
        return command + list(self.extra_args)


# Called after every (re)start, before any other call: the host stores the sealed state
# and collects outputs left pending by a crash.
OnOpen = Callable[[Opened], None]


class EnclaveSupervisor:
    """Owns the enclave process and the channel to it."""

    def __init__(
        self, launch: EnclaveLaunch, sealed_state: Callable[[], bytes], on_open: OnOpen
    ) -> None:
        self._launch = launch
        self._sealed_state = sealed_state
        self._on_open = on_open
        self._process: subprocess.Popen[bytes] | None = None
        # The write end of the pipe the enclave watches: closing it (or dying) stops it.
        self._host_pipe: int | None = None
        self._channel: grpc.Channel | None = None
        self._client: EnclaveClient | None = None
        self.state = "starting"
        self.restarts = 0
        self.identity: AgentIdentity | None = None
        self._lock = threading.RLock()
        self._stopping = False
        self._backoff = launch.backoff_initial
        self._log_file = launch.run_dir / "enclave.log"

    @property
    def socket(self) -> Path:
        return self._launch.run_dir / "sock" / "enclave.sock"

    @property
    def client(self) -> EnclaveClient:
        """The client of the enclave process running now.

        Raises:
            EnclaveUnavailable: none was started yet.
        """
        if self._client is None:
            raise EnclaveUnavailable("the enclave has not been started")
        return self._client

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Start and open the enclave.

        Raises:
            EnclaveUnavailable: it exited, did not become ready in time, or refused the
                stored sealed state (the enclave's own message is included).
        """
        with self._lock:
            self._spawn()
            self._open()
            self.state = "running"
            self._backoff = self._launch.backoff_initial

    def recover(self, reason: str) -> None:
        """Restart the enclave after a failure, with backoff, until it is open again.

        A live enclave is restarted too: after a call whose outcome is unknown, the enclave
        must go back to the last stored sealed state.

        Raises:
            EnclaveUnavailable: the supervisor is stopping, or the enclave refuses the
                stored state (restarting cannot fix that).
        """
        with self._lock:
            if self._stopping:
                raise EnclaveUnavailable("the host is stopping")
            log.warning("restarting the enclave: %s", reason)
            self.state = "restarting"
            while not self._stopping:
                self.restarts += 1
                try:
                    self._kill()
                    self._spawn()
                    self._open()
                except EnclaveUnavailable as exc:
                    if "refusing to start" in str(exc):
                        self.state = "failed"
                        raise
                    log.warning(
                        "enclave restart failed (%s); next try in %.1f s", exc, self._backoff
                    )
                    time.sleep(self._backoff)
                    self._backoff = min(self._backoff * 2, self._launch.backoff_max)
                    continue
                self.state = "running"
                self._backoff = self._launch.backoff_initial
                return
            raise EnclaveUnavailable("the host is stopping")

    def abandon(self) -> None:
        """Kill the enclave now and start no other, without waiting for a restart or a call
        in progress (the host has lost the right to drive it: `host.leadership`)."""
        self._stopping = True
        self.state = "stopped"
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            if self._channel is not None:
                self._channel.close()
            if self._process is not None and self._process.poll() is None:
                self._process.terminate()
                try:
                    self._process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait(timeout=10)
            self._close_host_pipe()

    # -- internals ------------------------------------------------------------------------

    def _spawn(self) -> None:
        socket_dir = self.socket.parent
        socket_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        socket_dir.chmod(0o700)
        self._launch.run_dir.mkdir(parents=True, exist_ok=True)
        self._close_host_pipe()
        watched, self._host_pipe = os.pipe()
        command = [*self._launch.command(self.socket), "--host-pipe-fd", str(watched)]
        # PR_SET_PDEATHSIG fires when the starting *thread* exits: only the main thread
        # lives as long as the host. Restarts from other threads rely on the pipe alone.
        if threading.current_thread() is threading.main_thread():
            command += ["--die-with-parent", str(os.getpid())]
        try:
            with self._log_file.open("ab") as log_file:
                self._process = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=log_file,
                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                    pass_fds=(watched,),
                )
        finally:
            os.close(watched)
        if self._channel is not None:
            self._channel.close()
        self._channel = grpc.insecure_channel(
            f"unix:{self.socket}",
            options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                     ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)],
        )  # fmt: skip
        self._client = EnclaveClient(self._channel)
        deadline = time.monotonic() + self._launch.ready_timeout
        while not self._ready(0.25):
            if not self.alive():
                raise EnclaveUnavailable(
                    f"the enclave process exited with code {self._process.returncode}: "
                    f"{self._last_log_line()}"
                )
            if time.monotonic() > deadline:
                raise EnclaveUnavailable(
                    f"the enclave did not become ready in {self._launch.ready_timeout:.0f} s"
                )
        log.info("enclave process %d ready on %s", self._process.pid, self.socket)

    def _ready(self, timeout: float) -> bool:
        return self._channel is not None and answers(self._channel, timeout)

    def _open(self) -> None:
        try:
            opened = self.client.open(self._sealed_state(), self._launch.ready_timeout)
        except grpc.RpcError as exc:
            raise EnclaveUnavailable(f"Open failed: {exc.details()}") from None
        self.identity = opened.identity
        try:
            self._on_open(opened)
        except grpc.RpcError as exc:
            # The enclave broke off during the host's first calls (Release): a failed start
            # like any other, retried with backoff. Only the code: the error's text names
            # the socket, and this message can reach API clients.
            raise EnclaveUnavailable(
                f"the enclave failed right after opening ({exc.code().name})"
            ) from None
        except Exception:
            # Storing what it released failed: the enclave no longer holds those outputs,
            # so it must not go on (a newer stored state would lack them). The next start
            # opens the stored state, which still holds them.
            self._kill()
            raise

    def _kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=10)
        self._close_host_pipe()

    def _close_host_pipe(self) -> None:
        if self._host_pipe is not None:
            os.close(self._host_pipe)
            self._host_pipe = None

    def _last_log_line(self) -> str:
        try:
            lines = self._log_file.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return lines[-1][-300:] if lines else "(no output)"
