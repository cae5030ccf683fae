"""The agent's own measurement events on TDX, as dstack runtime events in RTMR3.

The contract shared with attestation/ (which verifies logs; this module only makes them):
the enclave extends RTMR3 with `tee-agent.config-hash` (payload: the 32-byte config hash)
then `tee-agent.model-hash` (payload: the 32-byte model hash; left out without a model).
Each is a dstack runtime event (Dstack-TEE/dstack, dstack/cc-eventlog/src/
runtime_events.rs, `RuntimeEvent::preimage`, version 1):

    digest = SHA-384(event_type as 4 bytes little-endian || ":" || name || ":" || payload)

with event_type DSTACK_RUNTIME_EVENT_TYPE, and RTMR3 = SHA-384(RTMR3 || digest), the TDX
extend rule (TDX Module ABI, TDG.MR.RTMR.EXTEND). Logs are dstack's JSON form
(cc-eventlog/src/tdx.rs, `TdxEvent`): an array of {"imr", "event_type", "digest" (hex),
"event", "event_payload" (hex)}.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# cc-eventlog/src/runtime_events.rs: "The event type for dstack runtime events."
DSTACK_RUNTIME_EVENT_TYPE = 0x08000001
# The register dstack leaves to applications; RTMR0-2 hold firmware, kernel and boot data.
AGENT_RTMR = 3
CONFIG_EVENT = "tee-agent.config-hash"
MODEL_EVENT = "tee-agent.model-hash"
AGENT_EVENT_PREFIX = "tee-agent."
RTMR_SIZE = 48  # SHA-384
_LOG_FIELDS = ("imr", "event_type", "digest", "event", "event_payload")


class EventLogError(Exception):
    """An event log is not dstack's JSON form; the message names the entry and field."""


@dataclass(frozen=True)
class RuntimeEvent:
    """One dstack runtime event (version 1 digest)."""

    name: str
    payload: bytes

    def digest(self) -> bytes:
        """SHA-384(event_type LE || ":" || name || ":" || payload): 48 bytes."""
        preimage = (
            DSTACK_RUNTIME_EVENT_TYPE.to_bytes(4, "little")
            + b":"
            + self.name.encode()
            + b":"
            + self.payload
        )
        return hashlib.sha384(preimage).digest()

    def log_entry(self, imr: int = AGENT_RTMR) -> dict[str, Any]:
        """This event as an entry of dstack's JSON event log."""
        return {
            "imr": imr,
            "event_type": DSTACK_RUNTIME_EVENT_TYPE,
            "digest": self.digest().hex(),
            "event": self.name,
            "event_payload": self.payload.hex(),
        }


def agent_events(config_hash: bytes, model_hash: bytes | None) -> tuple[RuntimeEvent, ...]:
    """The events that measure this config and (when there is one) this model, in order."""
    events = [RuntimeEvent(CONFIG_EVENT, config_hash)]
    if model_hash is not None:
        events.append(RuntimeEvent(MODEL_EVENT, model_hash))
    return tuple(events)


def rtmr_extend(register: bytes, digest: bytes) -> bytes:
    """SHA-384(register || digest): TDG.MR.RTMR.EXTEND with a 48-byte digest."""
    if len(register) != RTMR_SIZE or len(digest) != RTMR_SIZE:
        raise ValueError("an RTMR and the digest extending it are 48 bytes each")
    return hashlib.sha384(register + digest).digest()


def parse_event_log(text: str | bytes, source: str) -> list[dict[str, Any]]:
    """The entries of a JSON event log, each checked for the fields replay needs.

    dstack's compact form (its `tdx-lite` GetQuote replies) leaves a runtime event's digest
    empty, since the name and payload determine it: such a digest is filled in here, so
    every entry returned carries its 48-byte digest. Boot events keep theirs (their payload
    may be empty instead).

    Raises:
        EventLogError: not a JSON array of objects with those fields (named with `source`).
    """
    try:
        entries = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise EventLogError(f"the event log from {source} is not JSON: {exc}") from None
    if not isinstance(entries, list):
        raise EventLogError(f"the event log from {source} is not a JSON array")
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or any(name not in entry for name in _LOG_FIELDS):
            raise EventLogError(
                f"entry {index} of the event log from {source} lacks one of {_LOG_FIELDS}"
            )
        if not isinstance(entry["imr"], int) or not isinstance(entry["event"], str):
            raise EventLogError(f"entry {index} of the event log from {source}: bad imr or event")
        try:
            digest = bytes.fromhex(entry["digest"])
            payload = bytes.fromhex(entry["event_payload"])
        except (TypeError, ValueError):
            raise EventLogError(
                f"entry {index} of the event log from {source}: digest or payload is not hex"
            ) from None
        if not digest and entry["event_type"] == DSTACK_RUNTIME_EVENT_TYPE:
            digest = RuntimeEvent(entry["event"], payload).digest()
            entry["digest"] = digest.hex()
        if len(digest) != RTMR_SIZE:
            raise EventLogError(
                f"entry {index} of the event log from {source}: digest is {len(digest)} "
                f"bytes, expected {RTMR_SIZE}"
            )
    return entries


def replay(entries: Sequence[dict[str, Any]], imr: int) -> bytes:
    """The register `imr` after extending 48 zero bytes with each entry's digest in order."""
    register = bytes(RTMR_SIZE)
    for entry in entries:
        if entry["imr"] == imr:
            register = rtmr_extend(register, bytes.fromhex(entry["digest"]))
    return register


def logged_agent_events(entries: Sequence[dict[str, Any]]) -> list[RuntimeEvent]:
    """The agent's events among RTMR3's entries, in log order.

    Raises:
        EventLogError: an agent entry's digest is not the digest of its name and payload.
    """
    found = []
    for entry in entries:
        if entry["imr"] != AGENT_RTMR or not entry["event"].startswith(AGENT_EVENT_PREFIX):
            continue
        event = RuntimeEvent(entry["event"], bytes.fromhex(entry["event_payload"]))
        if event.digest().hex() != entry["digest"].lower():
            raise EventLogError(
                f"the logged {event.name} event's digest {entry['digest'][:16]}... is not the "
                f"digest of its name and payload ({event.digest().hex()[:16]}...)"
            )
        found.append(event)
    return found
