"""Real dstack captures: GetQuote replies (TDX quote + event log) and a CCEL table.

Where the files come from, and why they are read from outside the repository:
tests/vectors/dstack/README.md. Each is checked against its recorded SHA-256 first.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from attestation.checks import CheckName
from attestation.event_log import parse_event_log, replay_rtmrs
from attestation.formats.dcap import TdReport10, parse_dcap_quote
from attestation.formats.event_log import parse_dstack_event_log
from attestation.policy import policy_from_mapping, validate
from attestation.verifier import verify_evidence

HERE = Path(__file__).resolve().parent
SHA256 = {
    "quote-report.json": "91736754bceb1ddb2677eed951b8a42f3ca382e170fcf8961ff5de774fe09aaa",
    "tdx-lite-getquote.json": "ff75c805142b18f54f7486ee1bb8078b7e0aa89727daca968a682926b57f9f69",
    "ccel.bin": "08e8363d55f4e4aa88f2439a4d8baa806c646c0ab93f683faa2ba640a6fc29d4",
    "cc_eventlog__tests__parse_ccel-2.snap": (
        "970c2711abdea2cb549d24967691e08e903835e2477b7cb01daf772c5ceeaa71"
    ),
}
# (file, its compose hash, a time inside its PCK chain's validity)
REPLIES = [
    (
        "quote-report.json",
        "3763bc34552cf3a27ff71ad5f7a90471562a1a2df552dfc1998cba2d60da27e7",
        datetime(2026, 1, 1, tzinfo=UTC),
    ),
    (
        "tdx-lite-getquote.json",
        "86b0e55f2fa8e4fb69d890f14f54d5612707646e2573d54e0d2ddaaade77caa9",
        datetime(2026, 6, 1, tzinfo=UTC),
    ),
]


def _directory() -> Path | None:
    candidates = [HERE / "vectors" / "dstack", HERE.parent.parent / "shared" / "dstack-vectors"]
    if "TEE_AGENT_DSTACK_VECTORS" in os.environ:
        candidates.insert(0, Path(os.environ["TEE_AGENT_DSTACK_VECTORS"]))
    return next((d for d in candidates if all((d / name).is_file() for name in SHA256)), None)


DIRECTORY = _directory()
pytestmark = pytest.mark.skipif(
    DIRECTORY is None, reason="dstack vectors absent (see tests/vectors/dstack/README.md)"
)


def vector(name: str) -> bytes:
    assert DIRECTORY is not None
    data = (DIRECTORY / name).read_bytes()
    assert hashlib.sha256(data).hexdigest() == SHA256[name], f"{name} is not the recorded file"
    return data


def quote_of(name: str) -> bytes:
    return bytes.fromhex(json.loads(vector(name))["quote"])


@pytest.mark.parametrize(("name", "compose", "at"), REPLIES, ids=[r[0] for r in REPLIES])
def test_the_event_log_replays_to_the_quotes_rtmrs(name: str, compose: str, at: datetime) -> None:
    body = parse_dcap_quote(quote_of(name)).body
    assert isinstance(body, TdReport10)
    replayed = replay_rtmrs(parse_event_log(vector(name)))
    assert replayed == [body.rtmr0, body.rtmr1, body.rtmr2, body.rtmr3]


@pytest.mark.parametrize(("name", "compose", "at"), REPLIES, ids=[r[0] for r in REPLIES])
def test_the_quote_verifies_with_its_log_and_reports_the_compose_hash(
    name: str, compose: str, at: datetime
) -> None:
    report = verify_evidence(quote_of(name), at=at, event_log=vector(name))
    assert report.valid and report.error is None, report.error
    assert report.tcb_status is None  # no collateral: signature and chain only
    assert report.event_log is not None and report.event_log.verified
    assert report.event_log.rtmrs == {f"rtmr{i}": report.measurements[f"rtmr{i}"] for i in range(4)}
    composed = [e for e in report.event_log.events if e.event == "compose-hash"]
    assert [(e.imr, e.payload) for e in composed] == [(3, compose)]
    policy = policy_from_mapping({"event_log": {"compose_hash": compose}}, source="test")
    judged = validate(report, policy, at=at)
    assert judged.check(CheckName.POLICY_COMPOSE_HASH).passed  # type: ignore[union-attr]


def _edited(name: str, event: str, field: str) -> bytes:
    """The reply with one byte of one event's `field` flipped."""
    reply = json.loads(vector(name))
    events = json.loads(reply["event_log"])
    target = next(e for e in events if (e["event"] or str(e["event_type"])) == event)
    value = bytearray.fromhex(target[field])
    value[0] ^= 0x01
    target[field] = value.hex()
    return json.dumps(events).encode()


@pytest.mark.parametrize(
    ("name", "event", "field", "check"),
    [
        # Payload edited, digest kept: the digest no longer follows from the content.
        ("quote-report.json", "compose-hash", "event_payload", CheckName.EVENT_LOG_DIGESTS),
        ("quote-report.json", "compose-hash", "digest", CheckName.EVENT_LOG_DIGESTS),
        # A firmware event's digest (EV_EFI_HANDOFF_TABLES2, RTMR0): only the replay binds it.
        ("quote-report.json", str(0x8000000B), "digest", CheckName.EVENT_LOG_REPLAY),
        # The compact form has no runtime digests: the edited payload changes RTMR3.
        ("tdx-lite-getquote.json", "compose-hash", "event_payload", CheckName.EVENT_LOG_REPLAY),
    ],
)
def test_one_flipped_byte_fails_the_named_check(
    name: str, event: str, field: str, check: CheckName
) -> None:
    at = next(r[2] for r in REPLIES if r[0] == name)
    report = verify_evidence(quote_of(name), at=at, event_log=_edited(name, event, field))
    failed = report.check(check)
    assert failed is not None and not failed.passed
    assert not report.valid and report.error is not None and report.error.startswith(check)


def test_the_ccel_table_decodes_as_dstack_decodes_it() -> None:
    log = parse_event_log(vector("ccel.bin"))
    assert log.form == "ccel" and len(log.events) == 18 and log.mrtd_events == 0
    snapshot = vector("cc_eventlog__tests__parse_ccel-2.snap").decode()
    dstack = parse_dstack_event_log(snapshot.split("---", 2)[2].encode())
    assert [(e.imr, e.event_type, e.digest, e.payload) for e in log.events] == [
        (e.imr, e.event_type, e.digest, e.payload) for e in dstack.events
    ]
    registers = replay_rtmrs(log)
    assert registers[0].hex().startswith("274c2344116db7c6")
    assert registers[1].hex().startswith("bdcf4ee0f7fdfe7c")
    assert registers[2] == registers[3] == bytes(48)


def test_the_ccel_table_alone_does_not_replay_a_dstack_quote() -> None:
    # Boot events only: RTMR3's runtime events are missing, so the replay fails closed.
    name, _, at = REPLIES[0]
    report = verify_evidence(quote_of(name), at=at, event_log=vector("ccel.bin"))
    assert not report.valid
    assert not report.check(CheckName.EVENT_LOG_REPLAY).passed  # type: ignore[union-attr]
