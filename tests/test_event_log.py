"""TDX event logs: both forms parsed, digests checked, replay compared with the quote's RTMRs,
the [event_log] policy rules, and typed errors for truncated, oversized or hostile logs."""

from __future__ import annotations

import contextlib
import hashlib
import json
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attestation.checks import CheckName
from attestation.errors import (
    EventLogError,
    EventLogMalformedError,
    EventLogSizeError,
    EventLogTruncatedError,
    EvidenceFormatError,
)
from attestation.event_log import (
    attach_event_log,
    parse_event_log,
    replay_rtmrs,
    verify_event_log,
)
from attestation.formats.ccel import EV_NO_ACTION, TPM_ALG_SHA384, parse_ccel
from attestation.formats.event_log import (
    DSTACK_RUNTIME_EVENT_TYPE,
    MAX_EVENT_LOG_SIZE,
    MAX_EVENTS,
    RAW_DIGEST_EVENT_TYPE,
)
from attestation.policy import policy_from_mapping, validate
from tests.event_log_builders import (
    EV_EFI_ACTION,
    EV_SEPARATOR,
    NOW,
    boot_event,
    ccel_log,
    dstack_log,
    pcr_event2,
    replay,
    runtime_event,
    spec_id_header,
    tdx_report,
)

COMPOSE = bytes.fromhex("ab" * 32)
CONFIG = bytes.fromhex("c0" * 32)
MODEL = bytes.fromhex("de" * 32)


def dstack_events() -> list[dict[str, object]]:
    """A dstack-like log: firmware events in RTMR0-2, runtime events in RTMR3."""
    return [
        boot_event(0, 0x8000000B, b"TdxTable"),
        boot_event(0, EV_SEPARATOR, bytes(4)),
        boot_event(1, EV_EFI_ACTION, b"Calling EFI Application from Boot Option"),
        boot_event(2, 0x6, b"Linux initrd"),
        runtime_event("system-preparing", b""),
        runtime_event("compose-hash", COMPOSE),
        runtime_event("tee-agent.config-hash", CONFIG),
        runtime_event("tee-agent.model-hash", MODEL),
        runtime_event("system-ready", b""),
    ]


def checked(events: list[dict[str, object]], rtmrs: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    report = tdx_report(rtmrs or replay(dstack_events()))
    return verify_event_log(report, dstack_log(events))


def test_a_dstack_log_replays_to_the_quote_and_lists_its_events() -> None:
    report = checked(dstack_events())
    assert report.valid and report.error is None
    assert report.check(CheckName.EVENT_LOG_DIGESTS).passed  # type: ignore[union-attr]
    assert report.check(CheckName.EVENT_LOG_REPLAY).passed  # type: ignore[union-attr]
    section = report.event_log
    assert section is not None and section.verified and section.form == "dstack-json"
    assert section.rtmrs == replay(dstack_events())
    compose = next(e for e in section.events if e.event == "compose-hash")
    assert (compose.imr, compose.payload) == (3, COMPOSE.hex())


def test_an_edited_payload_with_its_digest_kept_fails_the_digest_check() -> None:
    events = dstack_events()
    events[5] = {**events[5], "event_payload": "ac" + "ab" * 31}
    report = checked(events)
    assert not report.valid
    digests = report.check(CheckName.EVENT_LOG_DIGESTS)
    assert digests is not None and not digests.passed and "compose-hash" in digests.detail
    # The stated digests are what the RTMR holds, so the replay itself still matches.
    assert report.check(CheckName.EVENT_LOG_REPLAY).passed  # type: ignore[union-attr]
    assert report.error is not None and report.error.startswith("event_log_digests")


def test_an_edited_event_name_fails_the_digest_check() -> None:
    events = dstack_events()
    events[6] = {**events[6], "event": "tee-agent.model-hash"}
    assert not checked(events).check(CheckName.EVENT_LOG_DIGESTS).passed  # type: ignore[union-attr]


def test_a_flipped_boot_digest_fails_the_replay_and_names_the_register() -> None:
    events = dstack_events()
    digest = bytearray.fromhex(str(events[2]["digest"]))
    digest[0] ^= 1
    events[2] = {**events[2], "digest": digest.hex()}
    report = checked(events)
    replayed = report.check(CheckName.EVENT_LOG_REPLAY)
    assert replayed is not None and not replayed.passed and replayed.detail.startswith("rtmr1")
    assert report.check(CheckName.EVENT_LOG_DIGESTS).passed  # type: ignore[union-attr]
    assert not report.valid and report.event_log is not None and not report.event_log.verified


def test_a_log_that_misses_an_event_does_not_replay() -> None:
    report = checked(dstack_events()[:-1])
    assert report.check(CheckName.EVENT_LOG_REPLAY).detail.startswith("rtmr3")  # type: ignore[union-attr]
    assert not report.valid


def test_runtime_events_without_digests_are_computed_as_dstack_does() -> None:
    # dstack's compact form drops runtime events' digests: they follow from name and payload.
    events = [{**e, "digest": ""} if e["imr"] == 3 else e for e in dstack_events()]
    assert checked(events).valid
    events[5] = {**events[5], "event_payload": "00" * 32}
    report = checked(events)
    assert not report.check(CheckName.EVENT_LOG_REPLAY).passed  # type: ignore[union-attr]


def test_v2_runtime_events_hash_their_canonical_json() -> None:
    payload = bytes([0xAB, 0xCD])
    # dstack cc-eventlog's own test vector for the v2 canonical form.
    canonical = b'{"name":"compose-hash","payload":"abcd","type":134217729}'
    event = {
        "imr": 3, "event_type": DSTACK_RUNTIME_EVENT_TYPE, "event": "compose-hash",
        "digest": hashlib.sha384(canonical).hexdigest(), "event_payload": payload.hex(),
        "version": 2, "preimage": canonical.hex(),
    }  # fmt: skip
    report = verify_event_log(tdx_report(replay([event])), dstack_log([event]))
    assert report.valid
    bad = {**event, "preimage": b'{"type":134217729,"name":"compose-hash","payload":"abcd"}'.hex()}
    report = verify_event_log(tdx_report(replay([event])), dstack_log([bad]))
    assert "canonical" in report.check(CheckName.EVENT_LOG_DIGESTS).detail  # type: ignore[union-attr]


def test_raw_digest_events_must_be_their_payload_padded() -> None:
    good = {"imr": 0, "event_type": RAW_DIGEST_EVENT_TYPE, "event": "tee-agent.config-hash",
            "digest": CONFIG.ljust(48, b"\0").hex(), "event_payload": CONFIG.hex()}  # fmt: skip
    assert verify_event_log(tdx_report(replay([good]), "sim"), dstack_log([good])).valid
    bad = {**good, "event_payload": MODEL.hex()}
    report = verify_event_log(tdx_report(replay([good]), "sim"), dstack_log([bad]))
    assert not report.check(CheckName.EVENT_LOG_DIGESTS).passed  # type: ignore[union-attr]


def test_a_report_without_rtmrs_fails_the_replay() -> None:
    report = tdx_report(replay(dstack_events()), "sev-snp")
    checked_report = verify_event_log(report, dstack_log(dstack_events()))
    assert "no RTMRs" in checked_report.check(CheckName.EVENT_LOG_REPLAY).detail  # type: ignore[union-attr]


def test_the_getquote_reply_form_is_accepted() -> None:
    reply = json.dumps({"quote": "00", "event_log": json.dumps(dstack_events())}).encode()
    assert parse_event_log(reply).events == parse_event_log(dstack_log(dstack_events())).events


# --- the CCEL binary form, built to the TCG PFP layout -------------------------------------

CCEL_EVENTS = [
    (0, 0x80000008, b"mrtd page"),  # MR index 0: MRTD, counted and not replayed
    (1, 0x8000000B, b"TdxTable"),
    (1, EV_SEPARATOR, bytes(4)),
    (2, EV_EFI_ACTION, b"Calling EFI Application from Boot Option"),
    (3, 0x6, b"Linux initrd"),
    (4, EV_NO_ACTION, b"never extended"),
]


def test_a_ccel_log_parses_with_one_based_indexes_and_replays() -> None:
    log = parse_event_log(ccel_log(CCEL_EVENTS))
    assert log.form == "ccel" and log.mrtd_events == 1 and len(log.events) == 5
    assert [e.imr for e in log.events] == [0, 0, 1, 2, 3]
    expected = [bytes(48)] * 4
    for index, event_type, data in CCEL_EVENTS[1:]:
        if event_type != EV_NO_ACTION:
            expected[index - 1] = hashlib.sha384(
                expected[index - 1] + hashlib.sha384(data).digest()
            ).digest()
    assert replay_rtmrs(log) == expected
    report = attach_event_log(
        tdx_report({f"rtmr{i}": v.hex() for i, v in enumerate(expected)}), log
    )
    assert report.valid and report.event_log is not None and report.event_log.form == "ccel"


def test_a_ccel_log_may_end_without_padding() -> None:
    assert len(parse_ccel(ccel_log(CCEL_EVENTS, padding=0)).events) == 5


@pytest.mark.parametrize(
    ("data", "error", "words"),
    [
        (spec_id_header([(0x000B, 32)]) + b"\xff" * 8, EventLogMalformedError, "no SHA-384"),
        (spec_id_header([]) , EventLogSizeError, "numberOfAlgorithms"),
        (spec_id_header([(TPM_ALG_SHA384, 48)]) + pcr_event2(5, 1, [(TPM_ALG_SHA384, bytes(48))], b""),
         EventLogMalformedError, "MR index"),
        (spec_id_header([(TPM_ALG_SHA384, 48)]) + pcr_event2(1, 1, [(0x0004, bytes(20))], b""),
         EventLogMalformedError, "not in the spec-ID header"),
        (spec_id_header([(TPM_ALG_SHA384, 48)]) + pcr_event2(1, 1, [], b""),
         EventLogMalformedError, "digest count"),
        (spec_id_header([(TPM_ALG_SHA384, 40)]), EventLogMalformedError, "SHA-384 digestSize"),
        (spec_id_header([(TPM_ALG_SHA384, 48)]) + struct.pack("<III", 1, 1, 1) + struct.pack("<H", TPM_ALG_SHA384)
         + bytes(48) + struct.pack("<I", 0x7FFFFFFF), EventLogSizeError, "eventSize"),
    ],
)  # fmt: skip
def test_bad_ccel_logs_raise_named_errors(
    data: bytes, error: type[EventLogError], words: str
) -> None:
    with pytest.raises(error, match=words):
        parse_event_log(data)


def test_every_truncation_of_a_ccel_log_raises_truncated() -> None:
    data = ccel_log(CCEL_EVENTS, padding=0)
    boundaries = set()
    log_end = len(data)
    offset = len(spec_id_header([(0x000B, 32), (TPM_ALG_SHA384, 48)]))
    boundaries.add(offset)
    for _, _, payload in CCEL_EVENTS:
        offset += 12 + 2 * 2 + 32 + 48 + 4 + len(payload)
        boundaries.add(offset)
    assert offset == log_end
    for size in range(8, log_end):
        if size in boundaries:
            continue  # a log may end after any whole event
        with pytest.raises(EventLogTruncatedError):
            parse_event_log(data[:size])


# --- dstack JSON: malformed, oversized and hostile input ---------------------------------


@pytest.mark.parametrize(
    ("data", "error", "words"),
    [
        (b"[" * 100_000 + b"]" * 100_000, EventLogMalformedError, "JSON refused"),
        (b'[{"imr": 3, "event_type": 1', EventLogTruncatedError, "ends early"),
        (b'{"quote": "00"}', EventLogMalformedError, "JSON array"),
        (b'[{"imr": true, "event_type": 1, "event": "", "event_payload": ""}]',
         EventLogMalformedError, "imr"),
        (b'[{"imr": 4, "event_type": 1, "event": "", "event_payload": ""}]',
         EventLogMalformedError, "imr"),
        (b'[{"imr": 0, "event_type": 4294967296, "event": "", "event_payload": ""}]',
         EventLogMalformedError, "event_type"),
        (b'[{"imr": 0, "event_type": 4, "event": "", "event_payload": ""}]',
         EventLogMalformedError, "leave their digest out"),
        (b'[{"imr": 0, "event_type": 4, "digest": "00", "event": "", "event_payload": ""}]',
         EventLogMalformedError, "48 bytes"),
        (b'[{"imr": 0, "event_type": 4, "digest": "zz", "event": "", "event_payload": ""}]',
         EventLogMalformedError, "hex"),
        (b'[{"imr": 0, "event_type": 4, "event": ""}]', EventLogMalformedError, "missing"),
        (b'[7]', EventLogMalformedError, "expected a JSON object"),
        (b'[{"imr": 3, "event_type": 134217729, "event": "\\ud800", "event_payload": ""}]',
         EventLogMalformedError, "Unicode"),
        (b'[{"imr": 3, "event_type": 134217729, "event": "x", "event_payload": "", "version": 3}]',
         EventLogMalformedError, "version"),
        (b"\xff\xfe[", EventLogMalformedError, "neither"),
        (b"[\xff]", EventLogMalformedError, "UTF-8"),
        (b"", EventLogMalformedError, "neither"),
    ],
)  # fmt: skip
def test_bad_json_logs_raise_named_errors(
    data: bytes, error: type[EventLogError], words: str
) -> None:
    with pytest.raises(error, match=words):
        parse_event_log(data)


def test_oversized_logs_are_refused_before_parsing() -> None:
    with pytest.raises(EventLogSizeError, match="at most"):
        parse_event_log(b"[" + b" " * MAX_EVENT_LOG_SIZE + b"]")
    event = b'{"imr":0,"event_type":4,"digest":"' + b"00" * 48 + b'","event":"","event_payload":""}'
    with pytest.raises(EventLogSizeError, match="events"):
        parse_event_log(b"[" + b",".join([event] * (MAX_EVENTS + 1)) + b"]")


def test_event_log_errors_are_evidence_format_errors() -> None:
    # So every caller that maps unreadable evidence to "bad input" does the same for a log.
    assert issubclass(EventLogError, EvidenceFormatError)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_parse_or_raise_event_log_errors(data: bytes) -> None:
    with contextlib.suppress(EventLogError):
        parse_event_log(data)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_ccel_logs_parse_or_raise_event_log_errors(data: st.DataObject) -> None:
    log = bytearray(ccel_log(CCEL_EVENTS, padding=16))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(log) - 1))
        log[position] = data.draw(st.integers(0, 255))
    try:
        parsed = parse_event_log(bytes(log))
    except EventLogError:
        return
    assert all(0 <= event.imr <= 3 and len(event.digest) == 48 for event in parsed.events)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)
_EVENT = st.fixed_dictionaries(
    {
        "imr": _JSON | st.integers(0, 3),
        "event_type": _JSON | st.integers(0, 2**32),
        "event": _JSON | st.text(max_size=10),
        "event_payload": _JSON | st.just("ab"),
        "digest": _JSON | st.just("00" * 48),
    }
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_EVENT, max_size=5) | _JSON)
def test_arbitrary_json_parses_or_raises_event_log_errors(document: object) -> None:
    try:
        log = parse_event_log(json.dumps(document).encode())
    except EventLogError:
        return
    assert all(0 <= event.imr <= 3 for event in log.events)


# --- the [event_log] policy rules --------------------------------------------------------


def judged(events: list[dict[str, object]], rule: dict[str, str], tee: str = "tdx"):  # type: ignore[no-untyped-def]
    report = verify_event_log(tdx_report(replay(events), tee), dstack_log(events))
    policy = policy_from_mapping({"event_log": rule}, source="test")
    return validate(report, policy, at=NOW)


def test_the_compose_hash_rule_reads_rtmr3() -> None:
    ok = judged(dstack_events(), {"compose_hash": COMPOSE.hex()})
    assert ok.check(CheckName.POLICY_COMPOSE_HASH).passed  # type: ignore[union-attr]
    assert ok.check(CheckName.POLICY_EVENT_LOG).passed  # type: ignore[union-attr]
    other = judged(dstack_events(), {"compose_hash": "00" * 32})
    assert "found " + COMPOSE.hex() in other.check(CheckName.POLICY_COMPOSE_HASH).detail  # type: ignore[union-attr]
    # A compose-hash event anywhere but RTMR3 is not dstack's.
    moved = [{**e, "imr": 2} if e["event"] == "compose-hash" else e for e in dstack_events()]
    assert (
        not judged(moved, {"compose_hash": COMPOSE.hex()})
        .check(CheckName.POLICY_COMPOSE_HASH)
        .passed
    )  # type: ignore[union-attr]


def test_the_agent_events_rule_on_tdx() -> None:
    rule = {"config_hash": CONFIG.hex(), "model_hash": MODEL.hex()}
    assert judged(dstack_events(), rule).check(CheckName.POLICY_AGENT_EVENTS).passed  # type: ignore[union-attr]
    wrong = judged(dstack_events(), {**rule, "config_hash": "00" * 32})
    assert "expected 00" in wrong.check(CheckName.POLICY_AGENT_EVENTS).detail  # type: ignore[union-attr]
    unpinned = judged(dstack_events(), {"config_hash": CONFIG.hex()})
    assert "pins no model" in unpinned.check(CheckName.POLICY_AGENT_EVENTS).detail  # type: ignore[union-attr]
    swapped = dstack_events()
    swapped[6], swapped[7] = swapped[7], swapped[6]
    assert "order" in judged(swapped, rule).check(CheckName.POLICY_AGENT_EVENTS).detail  # type: ignore[union-attr]
    in_rtmr2 = [
        {**e, "imr": 2} if e["event"] == "tee-agent.config-hash" else e for e in dstack_events()
    ]
    assert "rtmr3" in judged(in_rtmr2, rule).check(CheckName.POLICY_AGENT_EVENTS).detail  # type: ignore[union-attr]


def test_event_log_rules_fail_without_a_verified_log() -> None:
    policy = policy_from_mapping({"event_log": {"compose_hash": COMPOSE.hex()}}, source="test")
    judged_report = validate(tdx_report(replay(dstack_events())), policy, at=NOW)
    assert "--event-log" in judged_report.check(CheckName.POLICY_EVENT_LOG).detail  # type: ignore[union-attr]
    assert judged_report.policy_ok is False
    events = dstack_events()
    events[5] = {**events[5], "event_payload": "00" * 32}
    assert judged(events, {"compose_hash": "00" * 32}).policy_ok is False


def test_the_log_binds_the_config_hash_report_data_binds() -> None:
    from attestation.binding import EnclaveIdentity
    from attestation.policy_event_log import identity_events_check

    identity = EnclaveIdentity(
        address="0x" + "11" * 20, x25519_public_key=bytes(32), config_hash=CONFIG
    )
    bound = identity.identity_digest().hex() + "00" * 32
    report = verify_event_log(tdx_report(replay(dstack_events())), dstack_log(dstack_events()))
    ok = identity_events_check(report.model_copy(update={"report_data": bound}), identity)
    assert ok.passed and ok.name == CheckName.EVENT_LOG_BINDS_IDENTITY
    other = identity.model_copy(update={"config_hash": MODEL})
    rebound = other.identity_digest().hex() + "00" * 32
    mismatch = identity_events_check(report.model_copy(update={"report_data": rebound}), other)
    assert not mismatch.passed and f"expected {MODEL.hex()}" in mismatch.detail
    unbound = identity_events_check(report, identity)  # report_data is all zeros
    assert not unbound.passed and "does not bind" in unbound.detail
