"""Verify a TDX event log: each event's digest, and its replay against the quote's RTMRs.

Parsing is `attestation.formats.event_log` (dstack's JSON form) and
`attestation.formats.ccel` (the CCEL/TCG binary form); judging what the events say
(a compose hash, the agent's own events) is `attestation.policy_event_log`. Here:

- `event_log_digests`: every event whose digest follows from its content carries that
  digest. dstack runtime events (type 0x08000001): SHA-384(type LE32 || ":" || name || ":"
  || payload) for v1, SHA-384 of the canonical JSON for v2 (dstack cc-eventlog
  `RuntimeEvent::digest`). tee-agent raw-digest events (type 0x08000002): the payload
  zero-padded to 48 bytes. Other events (firmware, boot loader, kernel) are taken at
  their stated digest: only the replay binds them.
- `event_log_replay`: starting from 48 zero bytes, RTMR[imr] = SHA-384(RTMR[imr] ||
  digest) for every event but EV_NO_ACTION ones, which are logged and never extended
  (TCG PFP 10.4.1); the four results must equal the quote's RTMR0-3.

A log that fails either check makes the report invalid: it does not say what ran.
"""

from __future__ import annotations

import hashlib
import json

from attestation.checks import CheckName
from attestation.errors import EventLogError, EventLogMalformedError, EventLogSizeError
from attestation.formats.ccel import EV_NO_ACTION, looks_like_ccel, parse_ccel
from attestation.formats.event_log import (
    DSTACK_RUNTIME_EVENT_TYPE,
    MAX_EVENT_LOG_SIZE,
    RAW_DIGEST_EVENT_TYPE,
    RTMR_COUNT,
    RTMR_SIZE,
    EventLog,
    LoggedEvent,
    parse_dstack_event_log,
)
from attestation.report import Check, EventLogSection, LoggedEventView, VerificationReport

ZERO_RTMR = bytes(RTMR_SIZE)
# Evidence kinds whose reports carry RTMR0-3 (simulated quotes have the TDX layout).
_RTMR_KINDS = ("tdx", "sim")


def parse_event_log(data: bytes) -> EventLog:
    """Parse an event log in either form, telling them apart by content.

    JSON starts (after white space) with `[` or `{`; the CCEL form starts with the TCG
    spec-ID header event, whose event type is EV_NO_ACTION (3).

    Raises:
        EventLogSizeError: the log or one of its parts is over the bounds above.
        EventLogTruncatedError: the log ends inside a structure.
        EventLogMalformedError: the bytes are of neither form, or a field is invalid.
    """
    if len(data) > MAX_EVENT_LOG_SIZE:
        raise EventLogSizeError(
            f"event log: expected at most {MAX_EVENT_LOG_SIZE} bytes, found {len(data)}"
        )
    if data.lstrip(b" \t\r\n\xef\xbb\xbf")[:1] in (b"[", b"{"):
        return parse_dstack_event_log(data)
    if looks_like_ccel(data):
        return parse_ccel(data)
    raise EventLogMalformedError(
        f"event log: the first bytes {data[:8].hex()!r} start neither dstack's JSON form "
        "(a JSON array of events) nor the CCEL/TCG binary form (a spec-ID header event "
        "of type EV_NO_ACTION)"
    )


def runtime_event_preimage(event: LoggedEvent) -> bytes:
    """The bytes dstack hashes into a runtime event's digest (cc-eventlog
    `RuntimeEvent::preimage`): v1 binary, v2 the RFC 8785 canonical JSON."""
    if event.version == 2:
        # RFC 8785 for this object: sorted keys, no white space, UTF-8, short escapes.
        document = {"name": event.event, "payload": event.payload.hex(), "type": event.event_type}
        text = json.dumps(document, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        return text.encode("utf-8")
    name = event.event.encode("utf-8")
    return event.event_type.to_bytes(4, "little") + b":" + name + b":" + event.payload


def expected_digest(event: LoggedEvent) -> bytes | None:
    """The digest an event's content fixes, or None when only its stated digest says it."""
    if event.event_type == DSTACK_RUNTIME_EVENT_TYPE:
        return hashlib.sha384(runtime_event_preimage(event)).digest()
    if event.event_type == RAW_DIGEST_EVENT_TYPE:
        return event.payload.ljust(RTMR_SIZE, b"\x00") if len(event.payload) <= RTMR_SIZE else b""
    return None


def extended_digest(event: LoggedEvent) -> bytes:
    """The digest the replay extends: the stated one, or the computed one where the log
    leaves it out (dstack's compact form drops runtime events' digests)."""
    return event.digest or expected_digest(event) or b""


def replay_rtmrs(log: EventLog) -> list[bytes]:
    """RTMR0..RTMR3 as the log's events extend them from 48 zero bytes."""
    registers = [ZERO_RTMR] * RTMR_COUNT
    for event in log.events:
        if event.event_type == EV_NO_ACTION:
            continue
        registers[event.imr] = hashlib.sha384(
            registers[event.imr] + extended_digest(event)
        ).digest()
    return registers


def digest_problem(index: int, event: LoggedEvent) -> str | None:
    """Why event `index`'s digest does not follow from its content, or None when it does."""
    where = f"event {index} (imr {event.imr}, {event.event or f'type {event.event_type:#x}'})"
    if event.event_type == RAW_DIGEST_EVENT_TYPE and len(event.payload) > RTMR_SIZE:
        size = len(event.payload)
        return f"{where}: a raw-digest payload is at most {RTMR_SIZE} bytes, found {size}"
    expected = expected_digest(event)
    if expected is None:
        return None
    if event.digest and event.digest != expected:
        found = event.digest.hex()
        return f"{where}: digest expected {expected.hex()} from its content, found {found}"
    if (
        event.event_type == DSTACK_RUNTIME_EVENT_TYPE
        and event.preimage is not None
        and event.preimage != runtime_event_preimage(event)
    ):
        return f"{where}: preimage is not the canonical form of its name and payload"
    return None


def verify_event_log(report: VerificationReport, data: bytes) -> VerificationReport:
    """Parse `data` (either form), check it against `report`'s RTMRs; return a copy.

    The copy carries the checks `event_log_digests` and `event_log_replay` after the
    report's own, its `event_log` section, and `valid` true only when the report was valid
    and both checks passed.

    Raises:
        EventLogError: the log cannot be parsed (a subclass says how).
    """
    return attach_event_log(report, parse_event_log(data))


def verify_served_event_log(report: VerificationReport, data: bytes) -> VerificationReport:
    """`verify_event_log` for a log served with the evidence by the party being verified (an
    agent's attestation), not one the caller brings: empty, it is no log (`report` comes
    back as it was); one that cannot be parsed fails `event_log_replay`, since the evidence
    is at fault, not the caller's input."""
    if not data:
        return report
    try:
        return verify_event_log(report, data)
    except EventLogError as exc:
        failed = Check(
            name=CheckName.EVENT_LOG_REPLAY,
            passed=False,
            detail=f"the event log served with the quote cannot be read, so nothing replays "
            f"to its RTMRs: {exc}",
        )
        return report.model_copy(
            update={
                "checks": [*report.checks, failed],
                "valid": False,
                "error": report.error or f"{failed.name}: {failed.detail}",
            }
        )


def attach_event_log(report: VerificationReport, log: EventLog) -> VerificationReport:
    """`verify_event_log` for an already parsed log."""
    problems = [p for i, e in enumerate(log.events) if (p := digest_problem(i, e)) is not None]
    digests = Check(
        name=CheckName.EVENT_LOG_DIGESTS,
        passed=not problems,
        detail=f"the digests of all {len(log.events)} events follow from their content where "
        "it fixes them"
        if not problems
        else "; ".join(problems[:3])
        + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""),
    )
    registers = replay_rtmrs(log)
    replay = _replay_check(report, registers)
    verified = digests.passed and replay.passed
    section = EventLogSection(
        form=log.form,
        verified=verified,
        rtmrs={f"rtmr{i}": value.hex() for i, value in enumerate(registers)},
        events=[
            LoggedEventView(
                imr=e.imr,
                event_type=e.event_type,
                event=e.event,
                digest=extended_digest(e).hex(),
                payload=e.payload.hex(),
            )
            for e in log.events
        ],
        mrtd_events=log.mrtd_events,
    )
    failed = next((c for c in (digests, replay) if not c.passed), None)
    return report.model_copy(
        update={
            "checks": [*report.checks, digests, replay],
            "valid": report.valid and verified,
            "error": report.error
            or (None if failed is None else f"{failed.name}: {failed.detail}"),
            "event_log": section,
        }
    )


def _replay_check(report: VerificationReport, registers: list[bytes]) -> Check:
    if report.tee not in _RTMR_KINDS:
        return Check(
            name=CheckName.EVENT_LOG_REPLAY,
            passed=False,
            detail=f"a {report.tee} report has no RTMRs to replay a TDX event log against",
        )
    for index, value in enumerate(registers):
        quoted = report.measurements.get(f"rtmr{index}", "").lower()
        if quoted != value.hex():
            replayed = (
                "has no event for it: nothing explains it (a log of the agent's events alone "
                "leaves out the firmware's, which a TD's CCEL table holds)"
                if value == ZERO_RTMR
                else f"replays to {value.hex()}"
            )
            return Check(
                name=CheckName.EVENT_LOG_REPLAY,
                passed=False,
                detail=f"rtmr{index}: the quote holds {quoted or 'none'}, the event log {replayed}",
            )
    return Check(
        name=CheckName.EVENT_LOG_REPLAY,
        passed=True,
        detail="the event log replays to the quote's rtmr0-rtmr3",
    )
