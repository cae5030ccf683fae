"""The CCEL/TCG binary event log (a TD's boot log), bytes to `EventLog`.

Linux exposes the ACPI CCEL table's log area at /sys/firmware/acpi/tables/data/CCEL. It
is the TCG crypto-agile log of "TCG PC Client Platform Firmware Profile Specification"
(PFP, Family 2.0, rev 1.05), all integers little-endian:

- one header event in the SHA-1 format, TCG_PCClientPCREvent (PFP 10.2.1): pcrIndex u32,
  eventType u32 (EV_NO_ACTION), digest[20], eventDataSize u32, event, whose data is a
  TCG_EfiSpecIdEvent (PFP 10.4.5.1, "Spec ID Event03") listing each digest algorithm and
  its size;
- then TCG_PCR_EVENT2 entries (PFP 10.2.2): pcrIndex u32, eventType u32,
  TPML_DIGEST_VALUES (count u32, then count times {hashAlg u16, digest}), eventSize u32, event;
- then unused space filled with 0xFF, so a pcrIndex of 0xFFFFFFFF ends the log.

The index is the CC measurement register index (UEFI 2.10, 38.4.1 "EFI_CC_MR_INDEX"):
0 = MRTD, 1..4 = RTMR0..RTMR3. Events for MRTD are counted, not replayed: MRTD is built by
the TDX module from the TD's initial pages, not by extension.
"""

from __future__ import annotations

from attestation.errors import (
    EventLogMalformedError,
    EventLogSizeError,
    EventLogTruncatedError,
)
from attestation.formats.cursor import ByteCursor
from attestation.formats.event_log import (
    MAX_EVENT_DATA_SIZE,
    MAX_EVENT_LOG_SIZE,
    MAX_EVENTS,
    RTMR_COUNT,
    RTMR_SIZE,
    EventLog,
    LoggedEvent,
)

EV_NO_ACTION = 0x00000003  # PFP 10.4.1, Table 9: logged, never extended
# Names of the event types a TD's firmware logs (PFP 10.4.1, Table 9), for display only.
TCG_EVENT_TYPE_NAMES = {
    0x00000001: "EV_POST_CODE",
    0x00000003: "EV_NO_ACTION",
    0x00000004: "EV_SEPARATOR",
    0x00000005: "EV_ACTION",
    0x00000006: "EV_EVENT_TAG",
    0x0000000A: "EV_PLATFORM_CONFIG_FLAGS",
    0x0000000D: "EV_IPL",
    0x80000001: "EV_EFI_VARIABLE_DRIVER_CONFIG",
    0x80000002: "EV_EFI_VARIABLE_BOOT",
    0x80000003: "EV_EFI_BOOT_SERVICES_APPLICATION",
    0x80000004: "EV_EFI_BOOT_SERVICES_DRIVER",
    0x80000005: "EV_EFI_RUNTIME_SERVICES_DRIVER",
    0x80000006: "EV_EFI_GPT_EVENT",
    0x80000007: "EV_EFI_ACTION",
    0x80000008: "EV_EFI_PLATFORM_FIRMWARE_BLOB",
    0x80000009: "EV_EFI_HANDOFF_TABLES",
    0x8000000A: "EV_EFI_PLATFORM_FIRMWARE_BLOB2",
    0x8000000B: "EV_EFI_HANDOFF_TABLES2",
    0x8000000C: "EV_EFI_VARIABLE_BOOT2",
    0x800000E0: "EV_EFI_VARIABLE_AUTHORITY",
}
SPEC_ID_SIGNATURE = b"Spec ID Event03\x00"  # PFP 10.4.5.1, TCG_EfiSpecIdEvent.signature
SHA1_DIGEST_SIZE = 20  # TCG_PCClientPCREvent.digest (PFP 10.2.1)
TPM_ALG_SHA384 = 0x000C  # TCG Algorithm Registry, TPM_ALG_ID
# Unused log space is 0xFF (CCEL's log area, as TDVF leaves it): a pcrIndex of 0xFFFFFFFF.
END_OF_LOG = b"\xff\xff\xff\xff"
CC_MR_INDEX_MRTD = 0  # UEFI 2.10, 38.4.1: 0 = MRTD, 1..4 = RTMR0..3
# A real log names one to a few algorithms; more is a hostile header or a corrupt one.
MAX_ALGORITHMS = 8
MAX_DIGEST_SIZE = 64  # SHA-512, the largest digest a PC Client log carries


def looks_like_ccel(data: bytes) -> bool:
    """Whether `data` starts like a CCEL/TCG log: a header event of type EV_NO_ACTION."""
    return len(data) >= 8 and int.from_bytes(data[4:8], "little") == EV_NO_ACTION


def parse_ccel(data: bytes) -> EventLog:
    """Parse a CCEL/TCG binary event log; keep each event's SHA-384 digest.

    Raises:
        EventLogSizeError: the log, an event, or a count is over its bound.
        EventLogTruncatedError: the log ends inside the header or an event.
        EventLogMalformedError: the header is not a spec-ID event, the log has no SHA-384
            bank, an event names an unknown algorithm or an index past RTMR3.
    """
    if len(data) > MAX_EVENT_LOG_SIZE:
        raise EventLogSizeError(
            f"event log: expected at most {MAX_EVENT_LOG_SIZE} bytes, found {len(data)}"
        )
    cursor = ByteCursor(data, EventLogTruncatedError, "CCEL event log")
    sizes = _spec_id_header(cursor)
    if TPM_ALG_SHA384 not in sizes:
        raise EventLogMalformedError(
            "CCEL event log: the spec-ID header lists no SHA-384 digests (algorithm 0x000c), "
            f"the bank RTMRs use; it lists {', '.join(f'{a:#06x}' for a in sizes)}"
        )
    events: list[LoggedEvent] = []
    mrtd_events = 0
    while cursor.offset < len(data):
        start = data[cursor.offset : cursor.offset + 4]
        if start == END_OF_LOG[: len(start)]:  # the 0xFF padding after the last event
            break
        if len(events) + mrtd_events >= MAX_EVENTS:
            raise EventLogSizeError(f"CCEL event log: more than {MAX_EVENTS} events")
        event = _event2(cursor, sizes, len(events) + mrtd_events)
        if event is None:
            mrtd_events += 1
        else:
            events.append(event)
    return EventLog(form="ccel", events=tuple(events), mrtd_events=mrtd_events)


def _spec_id_header(cursor: ByteCursor) -> dict[int, int]:
    """Read the SHA-1 format header event; return its algorithm id -> digest size table."""
    cursor.u32("header pcrIndex")
    event_type = cursor.u32("header eventType")
    if event_type != EV_NO_ACTION:
        raise EventLogMalformedError(
            f"CCEL event log: header eventType expected EV_NO_ACTION (3), found {event_type:#x}"
        )
    cursor.take(SHA1_DIGEST_SIZE, "header digest")
    size = cursor.u32("header eventDataSize")
    if size > MAX_EVENT_DATA_SIZE:
        raise EventLogSizeError(
            f"CCEL event log: header eventDataSize {size} is over {MAX_EVENT_DATA_SIZE}"
        )
    spec = ByteCursor(cursor.take(size, "header event"), EventLogTruncatedError, "spec-ID event")
    signature = spec.take(len(SPEC_ID_SIGNATURE), "signature")
    if signature != SPEC_ID_SIGNATURE:
        raise EventLogMalformedError(
            f"CCEL event log: header signature expected {SPEC_ID_SIGNATURE!r}, found {signature!r}"
        )
    # platformClass u32, specVersionMinor, specVersionMajor, specErrata, uintnSize (u8 each).
    spec.take(8, "platformClass and spec version")
    count = spec.u32("numberOfAlgorithms")
    if not 1 <= count <= MAX_ALGORITHMS:
        raise EventLogSizeError(
            f"CCEL event log: numberOfAlgorithms expected 1 to {MAX_ALGORITHMS}, found {count}"
        )
    sizes: dict[int, int] = {}
    for _ in range(count):
        algorithm, digest_size = spec.u16("algorithmId"), spec.u16("digestSize")
        if not 1 <= digest_size <= MAX_DIGEST_SIZE:
            raise EventLogMalformedError(
                f"CCEL event log: algorithm {algorithm:#06x} digestSize expected 1 to "
                f"{MAX_DIGEST_SIZE}, found {digest_size}"
            )
        if algorithm == TPM_ALG_SHA384 and digest_size != RTMR_SIZE:
            raise EventLogMalformedError(
                f"CCEL event log: SHA-384 digestSize expected {RTMR_SIZE}, found {digest_size}"
            )
        sizes[algorithm] = digest_size
    return sizes


def _event2(cursor: ByteCursor, sizes: dict[int, int], number: int) -> LoggedEvent | None:
    """Read one TCG_PCR_EVENT2; None for an MRTD event (counted, not replayed)."""
    where = f"CCEL event log: event {number}"
    index = cursor.u32("pcrIndex")
    event_type = cursor.u32("eventType")
    if index > RTMR_COUNT:
        raise EventLogMalformedError(
            f"{where}: MR index expected 0 (MRTD) to {RTMR_COUNT} (RTMR3), found {index}"
        )
    count = cursor.u32("digests.count")
    if not 1 <= count <= len(sizes):
        raise EventLogMalformedError(
            f"{where}: digest count expected 1 to {len(sizes)} (the header's algorithms), "
            f"found {count}"
        )
    sha384 = b""
    for _ in range(count):
        algorithm = cursor.u16("digests.hashAlg")
        if algorithm not in sizes:
            raise EventLogMalformedError(
                f"{where}: digest algorithm {algorithm:#06x} is not in the spec-ID header"
            )
        digest = cursor.take(sizes[algorithm], "digest")
        if algorithm == TPM_ALG_SHA384:
            sha384 = digest
    size = cursor.u32("eventSize")
    if size > MAX_EVENT_DATA_SIZE:
        raise EventLogSizeError(f"{where}: eventSize {size} is over {MAX_EVENT_DATA_SIZE}")
    payload = cursor.take(size, "event")
    if not sha384:
        raise EventLogMalformedError(f"{where}: no SHA-384 digest, so no RTMR can replay it")
    if index == CC_MR_INDEX_MRTD:
        return None
    return LoggedEvent(
        imr=index - 1, event_type=event_type, digest=sha384, event="", payload=payload
    )
