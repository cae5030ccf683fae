"""The firmware's boot log on a TDX guest: the ACPI CCEL table, as dstack's JSON entries.

A TD's firmware (TDVF) logs what it extends into RTMR0-2 (firmware, boot loader, kernel,
command line) in the CCEL table, which Linux exposes at /sys/firmware/acpi/tables/data/CCEL
in the TCG binary form (`attestation.formats.ccel`, the parser verifiers use too). dstack's
guest agent serves these events in its own log; without dstack (the kernel route to RTMR3,
`enclave.platform.tdx_rtmr`) the TDX backend serves them here, ahead of the agent's RTMR3
events, so that the log it serves replays to all four registers. Without the table it
serves none, and a verifier finds RTMR0-2 unexplained: it fails, it does not pass.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from attestation.errors import EventLogError
from attestation.formats.ccel import parse_ccel
from attestation.formats.event_log import MAX_EVENT_LOG_SIZE
from enclave.platform.base import PlatformError

# Documentation/ABI/testing/sysfs-firmware-acpi: each table's data under tables/data/.
DEFAULT_CCEL = Path("/sys/firmware/acpi/tables/data/CCEL")


def firmware_entries(path: Path) -> list[dict[str, Any]]:
    """The events of the CCEL log at `path` (MRTD's left out: no replay covers them), in
    log order, as entries of dstack's JSON event log; none when there is no such file.

    Raises:
        PlatformError: the file cannot be read, or is not a CCEL log (the message says
            where, and what the parser found).
    """
    try:
        with path.open("rb") as table:
            data = table.read(MAX_EVENT_LOG_SIZE + 1)  # a larger log is refused below
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise PlatformError(
            f"cannot read the firmware's event log {path}: {exc.strerror or exc} (reading the "
            "CCEL table needs root)"
        ) from None
    try:
        log = parse_ccel(data)
    except EventLogError as exc:
        raise PlatformError(f"the firmware's event log {path} cannot be served: {exc}") from None
    return [
        {
            "imr": event.imr,
            "event_type": event.event_type,
            "digest": event.digest.hex(),
            "event": event.event,
            "event_payload": event.payload.hex(),
        }
        for event in log.events
    ]
