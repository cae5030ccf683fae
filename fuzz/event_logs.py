"""Target `event_logs`: a TDX event log checked against a TDX report's RTMRs.

`verify_event_log` reads either form (dstack's JSON, the CCEL/TCG binary) from whoever
hands over the quote, so its bytes are attacker-supplied. Documented outcomes: a report
(valid or not) or an `EventLogError` (truncated, oversized, malformed).
"""

from __future__ import annotations

import contextlib
import hashlib
import json

from attestation.errors import EventLogError
from attestation.event_log import verify_event_log
from attestation.report import VerificationReport
from fuzz.harness import REPO

_ZERO = "00" * 48
_REPORT = VerificationReport(
    valid=True, tee="tdx", version=4, report_data="00" * 64,
    measurements={"mr_td": _ZERO, "rtmr0": _ZERO, "rtmr1": _ZERO, "rtmr2": _ZERO, "rtmr3": _ZERO},
    debug=False, fields={}, tcb_status=None, advisory_ids=[], policy_ok=None, checks=[], error=None,
)  # fmt: skip


def TestOneInput(data: bytes) -> None:
    with contextlib.suppress(EventLogError):
        verify_event_log(_REPORT, data)


def seeds() -> list[bytes]:
    """Logs built to each form's layout (tests.event_log_builders) and the committed one."""
    from tests.event_log_builders import boot_event, ccel_log, runtime_event

    payload = hashlib.sha256(b"seed").digest()
    dstack = [
        boot_event(0, 0x8000000B, b"TdxTable"),
        boot_event(1, 0x4, bytes(4)),
        runtime_event("compose-hash", payload),
        {**runtime_event("app-id", payload[:20]), "digest": ""},
    ]
    raw = {"imr": 0, "event_type": 0x08000002, "digest": payload.hex() + "00" * 16,
           "event": "tee-agent.config-hash", "event_payload": payload.hex()}  # fmt: skip
    committed = REPO / "tests" / "vectors" / "event-log" / "tee-agent-tdx-events.json"
    return [
        json.dumps(dstack).encode(),
        json.dumps({"quote": "", "event_log": json.dumps(dstack)}).encode(),
        json.dumps([raw]).encode(),
        committed.read_bytes(),
        ccel_log([(0, 1, b"mrtd"), (1, 0x8000000B, b"TdxTable"), (2, 0x80000007, b"boot")]),
        ccel_log([(4, 0x6, b"initrd")], padding=0),
    ]
