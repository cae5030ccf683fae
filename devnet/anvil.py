"""anvil, the local Ethereum node of the demo and the tests, as a managed process.

`Anvil` runs the anvil binary from the npm package `@foundry-rs/anvil` (installed under
`tools/chain/node_modules` by `./scripts/bootstrap`) on 127.0.0.1 and a free port. With a
`state_file`, anvil loads the chain from it on start and dumps it there on exit (SIGTERM),
so `restart()` keeps balances, nonces, blocks and logs.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from web3 import Web3

# The repository checkout this package sits in (devnet/ is at its top level).
ROOT = Path(__file__).resolve().parents[1]
# npm's install directory for the chain tools (tools/chain/package.json).
NODE_MODULES = ROOT / "tools" / "chain" / "node_modules"
LOCAL_CHAIN_ID: Final = 31337
_STARTUP_TIMEOUT = 30.0


class AnvilError(Exception):
    """anvil would not start, or exited; carries the tail of its log."""


class AnvilNotFound(AnvilError, FileNotFoundError):
    """The anvil binary is not installed; the message says how to install it."""


_OS_NAMES = {"linux": "linux", "darwin": "darwin", "win32": "win32", "cygwin": "win32"}
_ARCH_NAMES = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "x64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
}


def anvil_package(system: str | None = None, machine: str | None = None) -> str:
    """The npm package holding anvil's binary for a platform: `@foundry-rs/anvil-<os>-<arch>`.

    `system` is a `sys.platform` value and `machine` a `platform.machine()` value; both
    default to this machine's. Raises AnvilNotFound for a platform Foundry does not ship.
    """
    system = sys.platform if system is None else system
    machine = platform.machine() if machine is None else machine
    os_name = _OS_NAMES.get(system.lower())
    if os_name is None and system.lower().startswith("linux"):
        os_name = "linux"
    arch = _ARCH_NAMES.get(machine.lower())
    if os_name is None or arch is None:
        raise AnvilNotFound(f"anvil has no npm build for this platform ({system}, {machine})")
    return f"@foundry-rs/anvil-{os_name}-{arch}"


def find_anvil(node_modules: Path | None = None) -> Path:
    """The anvil binary inside this platform's `@foundry-rs/anvil-<os>-<arch>` npm package.

    (npm 11 runs no install scripts, so the wrapper package's postinstall never links a
    binary: the platform package's own `bin/anvil` is used directly.)

    Raises AnvilNotFound, naming `./scripts/bootstrap`, when it is not installed.
    """
    base = NODE_MODULES if node_modules is None else node_modules
    package = anvil_package()
    name = "anvil.exe" if package.endswith("win32-amd64") else "anvil"
    binary = base / package / "bin" / name
    if not binary.is_file():
        raise AnvilNotFound(
            f"anvil is not installed (no {binary}): run ./scripts/bootstrap, which installs "
            f"the chain tools with npm into {base}"
        )
    if not os.access(binary, os.X_OK):
        raise AnvilNotFound(f"{binary} is not executable: run ./scripts/bootstrap again")
    return binary


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _rpc(url: str, method: str, params: list[Any], timeout: float = 2.0) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(  # noqa: S310 - the URL is our own http://127.0.0.1
        url, data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        answer = json.loads(response.read())
    if "error" in answer:
        raise AnvilError(f"{method}: {answer['error']}")
    return answer["result"]


class Anvil:
    """A running anvil process on 127.0.0.1. Start it with `Anvil.start`; a context manager.

    Its output goes to `log_path` (a temporary file, removed by `stop`).
    """

    def __init__(
        self,
        *,
        binary: Path,
        port: int,
        chain_id: int,
        state_file: Path | None,
        block_time: float | None,
        balance_eth: int | None,
        state_interval: float | None = None,
        genesis_timestamp: int | None = None,
    ) -> None:
        self.genesis_timestamp = genesis_timestamp
        self.binary = binary
        self.port = port
        self.chain_id = chain_id
        self.state_file = state_file
        self.block_time = block_time
        self.balance_eth = balance_eth
        self.state_interval = state_interval
        fd, name = tempfile.mkstemp(prefix="anvil-", suffix=".log")
        os.close(fd)
        self.log_path = Path(name)
        self._process: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(
        cls,
        port: int | None = None,
        chain_id: int = LOCAL_CHAIN_ID,
        state_file: Path | None = None,
        block_time: float | None = None,
        *,
        binary: Path | None = None,
        balance_eth: int | None = None,
        state_interval: float | None = None,
        genesis_timestamp: int | None = None,
    ) -> Anvil:
        """Start anvil and return once it answers `eth_chainId`.

        `port` None picks a free port. With `state_file`, anvil loads the chain from that
        file when it exists and dumps the chain into it on exit. `block_time` (seconds)
        mines at an interval instead of one block per transaction. `balance_eth` sets the
        dev accounts' starting balance (anvil's default: 10,000 ETH). `state_interval`
        (seconds) also dumps the state file periodically, so a killed anvil (SIGKILL, no
        dump on exit) loses at most that much. `genesis_timestamp` (unix seconds) starts the
        chain's clock there, e.g. just before the first candle of a historical replay.

        Raises AnvilNotFound when anvil is not installed, AnvilError when it does not start
        (its log's tail in the message).
        """
        if state_interval is not None and state_file is None:
            raise ValueError("state_interval needs a state_file")
        anvil = cls(
            binary=find_anvil() if binary is None else binary,
            port=free_port() if port is None else port,
            chain_id=chain_id,
            state_file=state_file,
            block_time=block_time,
            balance_eth=balance_eth,
            state_interval=state_interval,
            genesis_timestamp=genesis_timestamp,
        )
        attempts = 3 if port is None else 1
        for attempt in range(attempts):
            try:
                anvil._launch()
                return anvil
            except AnvilError:
                anvil._stop_process()
                if attempt + 1 == attempts or not anvil._port_taken():
                    anvil.log_path.unlink(missing_ok=True)
                    raise
                # Someone took the free port between the probe and anvil's bind: another.
                anvil.port = free_port()
        raise AssertionError("unreachable")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def web3(self, timeout: float = 30.0) -> Web3:
        """A web3 client for this node."""
        return Web3(Web3.HTTPProvider(self.url, request_kwargs={"timeout": timeout}))

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (anvil dumps its state file then), wait, SIGKILL after `timeout` seconds.

        Idempotent; removes the log file.
        """
        self._stop_process(timeout)
        self.log_path.unlink(missing_ok=True)

    def restart(self, timeout: float = 10.0) -> None:
        """Stop anvil and start it again on the same port with the same state file, so the
        chain (balances, nonces, contracts, blocks and their logs) carries over.

        anvil dumps the state on SIGTERM; one that had to be killed (or had crashed) comes
        back from its last dump instead: the previous exit's, or the last `state_interval`
        one. Raises AnvilError without a state file (the chain would start empty) or when
        there is no dump at all.
        """
        if self.state_file is None:
            raise AnvilError(
                "restart needs a state_file (Anvil.start(state_file=...)): without one the "
                "chain would come back empty"
            )
        self._stop_process(timeout)
        if not self.state_file.exists():
            raise AnvilError(f"anvil did not dump its state into {self.state_file} on exit")
        deadline = time.monotonic() + 5.0
        while True:
            try:
                self._launch()
                return
            except AnvilError:
                self._stop_process()
                # The old process's socket may linger an instant: retry while it does.
                if time.monotonic() > deadline or not self._port_taken():
                    raise
                time.sleep(0.1)

    def __enter__(self) -> Anvil:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _command(self) -> list[str]:
        command = [
            str(self.binary),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--chain-id",
            str(self.chain_id),
        ]
        if self.state_file is not None:
            command += ["--state", str(self.state_file)]
        if self.state_interval is not None:
            command += ["--state-interval", str(max(1, round(self.state_interval)))]
        if self.block_time is not None:
            command += ["--block-time", repr(float(self.block_time))]
        if self.balance_eth is not None:
            command += ["--balance", str(self.balance_eth)]
        if self.genesis_timestamp is not None:
            command += ["--timestamp", str(self.genesis_timestamp)]
        return command

    def _launch(self) -> None:
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + _STARTUP_TIMEOUT
        while True:
            if self._process.poll() is not None:
                raise AnvilError(
                    f"anvil exited with status {self._process.returncode} while starting on "
                    f"port {self.port}:\n{self._log_tail()}"
                )
            try:
                answer = _rpc(self.url, "eth_chainId", [], timeout=1.0)
            except (OSError, AnvilError):
                answer = None
            if answer is not None:
                if self._process.poll() is not None:
                    continue  # another node answered on this port: ours exited, report it
                if int(answer, 16) != self.chain_id:
                    raise AnvilError(
                        f"something on port {self.port} answers chain id {int(answer, 16)}, "
                        f"not {self.chain_id}"
                    )
                return
            if time.monotonic() > deadline:
                raise AnvilError(
                    f"anvil did not answer on {self.url} within {_STARTUP_TIMEOUT:.0f} s:\n"
                    f"{self._log_tail()}"
                )
            time.sleep(0.05)

    def _stop_process(self, timeout: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _port_taken(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", self.port))
            except OSError:
                return True
        return False

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"
