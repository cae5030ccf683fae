"""TDX event logs, bytes to models: dstack's JSON form, and detection of either form.

A TDX event log lists what was extended into each runtime measurement register (RTMR0-3).
Two forms reach a verifier:

- dstack's JSON form: a JSON array of {"imr", "event_type", "digest", "event",
  "event_payload"} objects, as dstack's guest agent returns it in the `event_log` field of
  its GetQuote reply (dstack cc-eventlog `TdxEvent`). `imr` is zero-based: the RTMR index.
  The whole GetQuote reply (an object with an `event_log` string or array) is accepted too.
- the CCEL/TCG binary form (`attestation.formats.ccel`): what Linux exposes at
  /sys/firmware/acpi/tables/data/CCEL.

`attestation.event_log.parse_event_log` tells the two apart by content.

Parsing checks shapes and sizes only; whether the digests hold and replay to a quote's
registers is `attestation.event_log`'s business.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from attestation.errors import (
    EventLogMalformedError,
    EventLogSizeError,
    EventLogTruncatedError,
)
from attestation.jsontext import loads_bounded

# Bounds no real log comes near: the CCEL area firmware reserves is 64 KiB to a few MiB,
# and a dstack log holds a few dozen events. Anything larger is refused before it is read.
MAX_EVENT_LOG_SIZE = 4 * 1024 * 1024
MAX_EVENTS = 4096
MAX_EVENT_DATA_SIZE = 1024 * 1024
MAX_EVENT_NAME_SIZE = 1024

# RTMR0..RTMR3: TDX Module ABI spec, TDG.MR.RTMR.EXTEND (four 48-byte SHA-384 registers).
RTMR_COUNT = 4
RTMR_SIZE = 48
U32_MAX = 0xFFFFFFFF

# dstack runtime events (dstack cc-eventlog runtime_events.rs, DSTACK_RUNTIME_EVENT_TYPE):
# digest = SHA-384(event_type LE32 || ":" || name || ":" || payload) (v1), or SHA-384 of a
# canonical JSON text (v2, `EventLogVersion::V2`).
DSTACK_RUNTIME_EVENT_TYPE = 0x08000001
DSTACK_EVENT_VERSIONS = (1, 2)
# tee-agent's own "raw digest" events (the simulated platform's log): the digest is the
# payload zero-padded to 48 bytes, exactly what its registers were extended with.
RAW_DIGEST_EVENT_TYPE = 0x08000002

EventLogForm = Literal["dstack-json", "ccel"]

_FROZEN = ConfigDict(frozen=True)


class LoggedEvent(BaseModel):
    """One event as the log states it; nothing here has been checked against a digest.

    `imr` is the RTMR index (0-3). `digest` is the 48-byte SHA-384 digest the log says was
    extended, or empty where dstack's compact form leaves it out (runtime events, whose
    digest follows from their name and payload). `version` and `preimage` are dstack's
    runtime-event digest version and the v2 preimage when the log carries one.
    """

    model_config = _FROZEN

    imr: int
    event_type: int
    digest: bytes
    event: str
    payload: bytes
    version: int = 1
    preimage: bytes | None = None


class EventLog(BaseModel):
    """A parsed event log: its form, its events in log order, and (CCEL) how many events
    it records for MRTD, which no RTMR replay covers."""

    model_config = _FROZEN

    form: EventLogForm
    events: tuple[LoggedEvent, ...]
    mrtd_events: int = 0


def parse_dstack_event_log(data: bytes) -> EventLog:
    """Parse dstack's JSON form: the array itself, or a GetQuote reply holding it.

    Raises:
        EventLogSizeError, EventLogTruncatedError, EventLogMalformedError: see
            `parse_event_log`.
    """
    if len(data) > MAX_EVENT_LOG_SIZE:
        raise EventLogSizeError(
            f"event log: expected at most {MAX_EVENT_LOG_SIZE} bytes, found {len(data)}"
        )
    document = _load_json(data)
    if isinstance(document, dict) and "event_log" in document:
        inner = document["event_log"]
        # The guest agent's reply carries the log as a JSON text inside a string field.
        document = _load_json(inner.encode()) if isinstance(inner, str) else inner
    if not isinstance(document, list):
        raise EventLogMalformedError(
            "event log: expected a JSON array of events (or a GetQuote reply with an "
            f"event_log field), found a JSON {type(document).__name__}"
        )
    if len(document) > MAX_EVENTS:
        raise EventLogSizeError(
            f"event log: expected at most {MAX_EVENTS} events, found {len(document)}"
        )
    events = tuple(_event(index, item) for index, item in enumerate(document))
    return EventLog(form="dstack-json", events=events)


def _load_json(data: bytes) -> Any:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise EventLogMalformedError(
            f"event log: JSON form is not UTF-8 (byte {exc.start})"
        ) from None
    try:
        return loads_bounded(text)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text.rstrip()):
            raise EventLogTruncatedError(
                f"event log: the JSON ends early ({exc.msg} at character {exc.pos})"
            ) from None
        raise EventLogMalformedError(
            f"event log: not valid JSON ({exc.msg} at character {exc.pos})"
        ) from None
    except (RecursionError, ValueError) as exc:  # nesting or numbers too deep or long
        raise EventLogMalformedError(f"event log: JSON refused: {type(exc).__name__}") from None


def _event(index: int, item: object) -> LoggedEvent:
    where = f"event log: event {index}"
    if not isinstance(item, dict):
        raise EventLogMalformedError(f"{where}: expected a JSON object, found {_kind(item)}")
    for key in ("imr", "event_type", "event", "event_payload"):
        if key not in item:
            raise EventLogMalformedError(f"{where}: required field '{key}' is missing")
    imr = _integer(item["imr"], f"{where}: imr", RTMR_COUNT - 1)
    event_type = _integer(item["event_type"], f"{where}: event_type", U32_MAX)
    name = item["event"]
    if not isinstance(name, str):
        raise EventLogMalformedError(f"{where}: event: expected a string, found {_kind(name)}")
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        raise EventLogMalformedError(f"{where}: event: not valid Unicode text") from None
    if len(encoded) > MAX_EVENT_NAME_SIZE:
        raise EventLogSizeError(
            f"{where}: event name: expected at most {MAX_EVENT_NAME_SIZE} bytes, "
            f"found {len(encoded)}"
        )
    digest = _hex(item.get("digest", ""), f"{where}: digest", RTMR_SIZE)
    if digest and len(digest) != RTMR_SIZE:
        raise EventLogMalformedError(
            f"{where}: digest: expected {RTMR_SIZE} bytes (SHA-384) or none, found {len(digest)}"
        )
    if not digest and event_type != DSTACK_RUNTIME_EVENT_TYPE:
        raise EventLogMalformedError(
            f"{where}: digest: only dstack runtime events (type {DSTACK_RUNTIME_EVENT_TYPE:#x}) "
            f"may leave their digest out; this one is type {event_type:#x}"
        )
    version = _integer(item.get("version", 1), f"{where}: version", 2)
    if version not in DSTACK_EVENT_VERSIONS:
        raise EventLogMalformedError(f"{where}: version: expected 1 or 2, found {version}")
    preimage = item.get("preimage")
    return LoggedEvent(
        imr=imr,
        event_type=event_type,
        digest=digest,
        event=name,
        payload=_hex(item["event_payload"], f"{where}: event_payload", MAX_EVENT_DATA_SIZE),
        version=version,
        preimage=None
        if preimage is None
        else _hex(preimage, f"{where}: preimage", MAX_EVENT_DATA_SIZE + 2 * MAX_EVENT_NAME_SIZE),
    )


def _integer(value: object, what: str, maximum: int) -> int:
    # bool is an int in Python but never a field value here.
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= maximum:
        raise EventLogMalformedError(
            f"{what}: expected a whole number from 0 to {maximum}, found {value!r:.40}"
        )
    return value


def _hex(value: object, what: str, max_size: int) -> bytes:
    if not isinstance(value, str):
        raise EventLogMalformedError(f"{what}: expected a hex string, found {_kind(value)}")
    if len(value) > 2 * max_size:
        raise EventLogSizeError(
            f"{what}: expected at most {max_size} bytes, found {len(value) // 2}"
        )
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise EventLogMalformedError(f"{what}: expected hex digits, found {value!r:.40}") from None


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__
