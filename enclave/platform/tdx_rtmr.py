"""TDX: extend RTMR3 with the agent's events once per boot, and keep the log that explains it.

Two routes, tried in this order:

1. dstack's guest agent, when its socket is there and it still offers `EmitEvent`: it
   extends RTMR3 and appends the event to its own log, which GetQuote returns
   (`enclave.platform.dstack_agent`).
2. The kernel's RTMR interface (Linux 6.16+, Documentation/ABI/testing/
   sysfs-devices-virtual-misc-tdx_guest, "What: /sys/devices/virtual/misc/tdx_guest/
   measurements/rtmr[0123]:sha384": "(RW) RTMR[0123] - 4 Run-Time extendable Measurement
   Registers. Read from any of these returns the current value of the corresponding RTMR.
   Write extends the written buffer to the RTMR. All writes must start at offset 0 and be
   48 bytes in size."). The events go to a log file of our own in dstack's JSON form, on
   /run (a tmpfs: it lives exactly as long as the boot, like the register). dstack after
   commit 10898e63 has no EmitEvent and says so: "If your application extends RTMR3
   directly through native interfaces, your application owns the event-log story".

Within one boot the extension happens once: an enclave restarted in the same TD finds its
events in the log with the same payloads and extends nothing (else its measurement, and so
its sealing key, would change). If the log holds other agent events (the config or model
changed without a reboot), RTMR3 can never again describe this enclave alone: refused, the
TD must restart.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from enclave.platform.base import PlatformError
from enclave.platform.dstack_agent import DstackAgent, DstackAgentError, DstackMethodMissing
from enclave.platform.runtime_events import (
    AGENT_RTMR,
    RTMR_SIZE,
    EventLogError,
    RuntimeEvent,
    logged_agent_events,
    parse_event_log,
    replay,
)

# sysfs-devices-virtual-misc-tdx_guest: the measurement attributes' directory (also reached
# as /sys/devices/virtual/misc/tdx_guest/measurements) and RTMR3's attribute.
DEFAULT_MEASUREMENTS_DIR = Path("/sys/class/misc/tdx_guest/measurements")
RTMR3_ATTRIBUTE = f"rtmr{AGENT_RTMR}:sha384"
# Our events when the kernel route extends: on /run, so a reboot clears it with RTMR3.
DEFAULT_EVENT_LOG = Path("/run/tee-agent/rtmr3-events.json")


class MeasurementConflict(PlatformError):
    """RTMR3 already holds agent events other than this enclave's (same boot, other config)."""


def write_whole(path: Path, data: bytes) -> None:
    """Write a kernel attribute in one open-write-close, refusing a short write.

    Raises:
        OSError: the write fails or writes less than all of `data`.
    """
    fd = os.open(path, os.O_WRONLY)
    try:
        written = os.write(fd, data)
    finally:
        os.close(fd)
    if written != len(data):
        raise OSError(errno.EIO, f"short write: {written} of {len(data)} bytes", str(path))


class MeasurementRegisterOps:
    """Reads and writes of the RTMR attributes, each a plain system call. Tests pass a
    subclass that calls these and then plays the kernel's part (tests/fake_tsm.py)."""

    def read(self, path: Path) -> bytes:
        """The attribute's whole value."""
        return path.read_bytes()

    def write(self, path: Path, data: bytes) -> None:
        """One write at offset 0 (the ABI refuses partial writes with EINVAL)."""
        write_whole(path, data)


class KernelRtmr3:
    """RTMR3 through the kernel's sysfs attribute, with our own log file beside it."""

    def __init__(
        self,
        directory: Path = DEFAULT_MEASUREMENTS_DIR,
        log_path: Path = DEFAULT_EVENT_LOG,
        *,
        ops: MeasurementRegisterOps | None = None,
    ) -> None:
        self.attribute = directory / RTMR3_ATTRIBUTE
        self.log_path = log_path
        self._ops = ops if ops is not None else MeasurementRegisterOps()

    def __repr__(self) -> str:
        return f"KernelRtmr3(attribute={str(self.attribute)!r}, log={str(self.log_path)!r})"

    def logged(self) -> list[dict[str, Any]]:
        """The entries of our log file; none when it does not exist (nothing extended yet).

        Raises:
            PlatformError: it cannot be read or is not an event log.
        """
        try:
            text = self.log_path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise PlatformError(f"cannot read the RTMR3 event log {self.log_path}: {exc}") from None
        try:
            return parse_event_log(text, str(self.log_path))
        except EventLogError as exc:
            raise PlatformError(str(exc)) from None

    def extend(self, event: RuntimeEvent) -> None:
        """Extend RTMR3 with the event's digest, then log it.

        Raises:
            PlatformError: the attribute is missing (kernel before 6.16, or not a TDX guest),
                not writable, or the log cannot be written.
        """
        try:
            self._ops.write(self.attribute, event.digest())
        except FileNotFoundError:
            raise PlatformError(
                f"{self.attribute} does not exist: extending RTMR3 needs a TDX guest kernel "
                "6.16 or later (CONFIG_TSM_MEASUREMENTS), or dstack's guest agent with "
                "EmitEvent on /var/run/dstack.sock"
            ) from None
        except PermissionError:
            raise PlatformError(
                f"permission denied writing {self.attribute}: extending RTMR3 needs root"
            ) from None
        except OSError as exc:
            raise PlatformError(f"extending RTMR3 through {self.attribute} failed: {exc}") from None
        self._append(event)

    def _append(self, event: RuntimeEvent) -> None:
        entries = [*self.logged(), event.log_entry()]
        data = json.dumps(entries, indent=1).encode()
        try:
            self.log_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Whole-file replacement: a crash leaves the old log or the new, never half.
            fd, temporary = tempfile.mkstemp(dir=self.log_path.parent, prefix=".rtmr3-")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                Path(temporary).replace(self.log_path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise PlatformError(
                f"RTMR3 was extended with {event.name} but its log {self.log_path} cannot be "
                f"written ({exc}): a verifier cannot replay RTMR3 now; fix the path and "
                "restart the TD"
            ) from None


class Rtmr3Measurer:
    """Puts this enclave's events in RTMR3 once per boot, and gives the log that explains it."""

    def __init__(
        self,
        events: Sequence[RuntimeEvent],
        *,
        kernel: KernelRtmr3,
        dstack: DstackAgent | None = None,
    ) -> None:
        self.events = tuple(events)
        self.kernel = kernel
        self.dstack = dstack
        self._emit_missing = False

    def __repr__(self) -> str:
        return f"Rtmr3Measurer(kernel={self.kernel!r}, dstack={self.dstack!r})"

    def entries(self) -> list[dict[str, Any]]:
        """The event log: dstack's (all registers) when its agent is there, then ours.

        Raises:
            PlatformError: dstack's agent fails, or a log is malformed.
        """
        entries: list[dict[str, Any]] = []
        if self.dstack is not None:
            try:
                entries = parse_event_log(self.dstack.event_log(), "dstack's guest agent")
            except (DstackAgentError, EventLogError) as exc:
                raise PlatformError(f"cannot read dstack's event log: {exc}") from None
        return entries + self.kernel.logged()

    def ensure(self) -> bool:
        """Extend RTMR3 with this enclave's events unless this boot already did; True when
        it extended.

        Raises:
            MeasurementConflict: the log holds other agent events (restart the TD).
            PlatformError: reading the log or extending failed.
        """
        try:
            logged = logged_agent_events(self.entries())
        except EventLogError as exc:
            raise PlatformError(f"the RTMR3 event log cannot be trusted: {exc}") from None
        if logged == list(self.events):
            return False
        if logged:
            raise MeasurementConflict(
                "RTMR3 already holds another enclave's measurement from this boot "
                f"({_describe(logged)}; this enclave is {_describe(self.events)}): the config "
                "or model changed without a reboot, and an RTMR can only be extended, never "
                "reset. Restart the TD to run this config."
            )
        for event in self.events:
            self._extend(event)
        return True

    def _extend(self, event: RuntimeEvent) -> None:
        if self.dstack is not None and not self._emit_missing:
            try:
                self.dstack.emit_event(event.name, event.payload)
                return
            except DstackMethodMissing:
                self._emit_missing = True  # later dstack: the kernel route owns our log
            except DstackAgentError as exc:
                raise PlatformError(
                    f"dstack could not extend RTMR3 with {event.name}: {exc}"
                ) from None
        self.kernel.extend(event)


def _describe(events: Sequence[RuntimeEvent]) -> str:
    return ", ".join(f"{event.name}={event.payload.hex()[:16]}..." for event in events)


def check_replay(entries: Sequence[dict[str, Any]], rtmr3: bytes) -> None:
    """RTMR3 as quoted must be what the log replays to, or no verifier can check it.

    Raises:
        PlatformError: it is not (something extended RTMR3 without logging it, or a crash
            came between an extension and its log entry).
    """
    expected = replay(entries, AGENT_RTMR)
    if len(rtmr3) != RTMR_SIZE or expected != rtmr3:
        raise PlatformError(
            f"RTMR3 in the quote ({rtmr3.hex()[:24]}...) is not what its event log replays to "
            f"({expected.hex()[:24]}...): something extended RTMR3 without logging it, or a "
            "crash came between an extension and its log entry. Restart the TD."
        )
