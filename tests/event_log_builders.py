"""Event logs built to their specifications, for tests: dstack's JSON form and CCEL binary.

The CCEL layout follows the TCG PC Client Platform Firmware Profile (a SHA-1 format
spec-ID header event, then TCG_PCR_EVENT2 entries, then 0xFF padding); dstack runtime
event digests follow dstack cc-eventlog `RuntimeEvent::digest` (v1).
"""

from __future__ import annotations

import hashlib
import json
import struct
from datetime import UTC, datetime

from attestation.formats.ccel import EV_NO_ACTION, SPEC_ID_SIGNATURE, TPM_ALG_SHA384
from attestation.formats.event_log import DSTACK_RUNTIME_EVENT_TYPE
from attestation.report import VerificationReport

TPM_ALG_SHA256 = 0x000B
EV_SEPARATOR = 0x4
EV_EFI_ACTION = 0x80000007


def runtime_digest(name: str, payload: bytes) -> bytes:
    """dstack's v1 runtime event digest."""
    preimage = DSTACK_RUNTIME_EVENT_TYPE.to_bytes(4, "little") + b":" + name.encode() + b":"
    return hashlib.sha384(preimage + payload).digest()


def runtime_event(name: str, payload: bytes, imr: int = 3) -> dict[str, object]:
    return {
        "imr": imr,
        "event_type": DSTACK_RUNTIME_EVENT_TYPE,
        "digest": runtime_digest(name, payload).hex(),
        "event": name,
        "event_payload": payload.hex(),
    }


def boot_event(imr: int, event_type: int, data: bytes) -> dict[str, object]:
    """A firmware event: its digest is SHA-384 of its data (as TDVF measures EV_EFI_ACTION)."""
    return {
        "imr": imr,
        "event_type": event_type,
        "digest": hashlib.sha384(data).hexdigest(),
        "event": "",
        "event_payload": data.hex(),
    }


def dstack_log(events: list[dict[str, object]]) -> bytes:
    return json.dumps(events).encode()


def replay(events: list[dict[str, object]]) -> dict[str, str]:
    """RTMR0-3 (hex) the events extend from zero, computed independently of the verifier."""
    registers = [bytes(48)] * 4
    for event in events:
        imr = int(str(event["imr"]))
        registers[imr] = hashlib.sha384(
            registers[imr] + bytes.fromhex(str(event["digest"]))
        ).digest()
    return {f"rtmr{i}": value.hex() for i, value in enumerate(registers)}


def tdx_report(rtmrs: dict[str, str], tee: str = "tdx") -> VerificationReport:
    """A verified TDX report holding these RTMRs (the quote side of a replay test)."""
    return VerificationReport(
        valid=True, tee=tee, version=4, report_data="00" * 64,
        measurements={"mr_td": "11" * 48, **rtmrs}, debug=False, fields={}, tcb_status=None,
        advisory_ids=[], policy_ok=None, checks=[], error=None,
    )  # fmt: skip


def spec_id_header(algorithms: list[tuple[int, int]], *, index: int = 0) -> bytes:
    """TCG_PCClientPCREvent carrying a TCG_EfiSpecIdEvent (PFP 10.2.1, 10.4.5.1)."""
    spec = SPEC_ID_SIGNATURE + struct.pack("<IBBBB", 0, 0, 2, 0, 2)
    spec += struct.pack("<I", len(algorithms))
    spec += b"".join(struct.pack("<HH", alg, size) for alg, size in algorithms)
    spec += b"\x00"  # vendorInfoSize
    return struct.pack("<II", index, EV_NO_ACTION) + bytes(20) + struct.pack("<I", len(spec)) + spec


def pcr_event2(index: int, event_type: int, digests: list[tuple[int, bytes]], data: bytes) -> bytes:
    """TCG_PCR_EVENT2 (PFP 10.2.2)."""
    out = struct.pack("<III", index, event_type, len(digests))
    out += b"".join(struct.pack("<H", alg) + digest for alg, digest in digests)
    return out + struct.pack("<I", len(data)) + data


def ccel_log(events: list[tuple[int, int, bytes]], *, padding: int = 64) -> bytes:
    """A CCEL log: header (SHA-384 and SHA-256 banks), events given as (MR index, type,
    data) with both digests of the data, then `padding` bytes of 0xFF."""
    body = spec_id_header([(TPM_ALG_SHA256, 32), (TPM_ALG_SHA384, 48)])
    for index, event_type, data in events:
        digests = [
            (TPM_ALG_SHA256, hashlib.sha256(data).digest()),
            (TPM_ALG_SHA384, hashlib.sha384(data).digest()),
        ]
        body += pcr_event2(index, event_type, digests, data)
    return body + b"\xff" * padding


NOW = datetime(2026, 11, 25, tzinfo=UTC)
