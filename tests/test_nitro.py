"""AWS Nitro attestation documents: parsing, verification, mutations and hostile input."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attestation.errors import NitroFormatError
from attestation.formats.nitro import NitroDocument, parse_nitro_document
from attestation.report import VerificationReport
from attestation.trust import TrustAnchors, default_trust_anchors
from attestation.verify_nitro import verify_nitro_document
from tests.manifest import at, vector_bytes, vector_ids, vectors

NITRO = vectors("aws-nitro-attestation-document")
ANCHORS = default_trust_anchors()
CHAIN_CHECKS = ("nitro_chain_signatures", "nitro_chain_root_pinned", "nitro_chain_validity")
# The vectors that the manifest calls valid at their verify_at.
VALID = [v for v in NITRO if v["expected"]["overall_verdict_at_verify_at"]]


def _verify(data: bytes, vector: dict[str, Any], when: str | None = None) -> VerificationReport:
    return verify_nitro_document(
        data, at=at(when or vector["expected"]["verify_at"]), anchors=ANCHORS
    )


def _failed(report: VerificationReport) -> set[str]:
    return {check.name for check in report.failed_checks()}


def _passed(report: VerificationReport, name: str) -> bool:
    check = report.check(name)
    assert check is not None, f"check {name} did not run"
    return check.passed


def _parts(data: bytes) -> list[Any]:
    """[protected, unprotected, payload map, signature] of a vector."""
    protected, unprotected, payload, signature = cbor2.loads(data)
    return [protected, unprotected, cbor2.loads(payload), signature]


def _build(protected: Any, unprotected: Any, payload: Any, signature: Any) -> bytes:
    payload_bytes = payload if isinstance(payload, bytes) else cbor2.dumps(payload)
    return bytes(cbor2.dumps([protected, unprotected, payload_bytes, signature]))


def _flip(data: bytes, position: int) -> bytes:
    mutated = bytearray(data)
    mutated[position] ^= 0x01
    return bytes(mutated)


# --- Real vectors -------------------------------------------------------------------------


def test_there_are_nitro_vectors() -> None:
    assert len(NITRO) == 6
    assert any(not v["expected"]["overall_verdict_at_verify_at"] for v in NITRO)


@pytest.mark.parametrize("vector", NITRO, ids=vector_ids(NITRO))
def test_fields_equal_manifest(vector: dict[str, Any]) -> None:
    report = _verify(vector_bytes(vector["file"]), vector)
    assert report.fields == vector["expected_fields"]


@pytest.mark.parametrize("vector", NITRO, ids=vector_ids(NITRO))
def test_verdict_and_named_checks(vector: dict[str, Any]) -> None:
    expected = vector["expected"]
    report = _verify(vector_bytes(vector["file"]), vector)
    assert report.valid is expected["overall_verdict_at_verify_at"]
    assert [check.name for check in report.checks] == [
        "cose_algorithm",
        "cose_signature",
        *CHAIN_CHECKS,
    ]
    assert _passed(report, "cose_algorithm")
    assert _passed(report, "cose_signature") is expected["cose_sign1_es384_signature_valid"]
    assert _passed(report, "nitro_chain_signatures") is expected["chain_signatures_valid"]
    assert (
        _passed(report, "nitro_chain_root_pinned") is expected["cabundle_first_is_aws_nitro_root"]
    )
    assert _passed(report, "nitro_chain_validity") is expected["chain_valid_at_verify_at"]
    assert (report.error is None) is report.valid


@pytest.mark.parametrize(
    ("vector", "when", "valid"),
    [(v, when, valid) for v in NITRO for when, valid in v["expected"]["chain_valid_at"].items()],
    ids=[f"{v['file']}@{when}" for v in NITRO for when in v["expected"]["chain_valid_at"]],
)
def test_chain_validity_at_each_time(vector: dict[str, Any], when: str, valid: bool) -> None:
    report = _verify(vector_bytes(vector["file"]), vector, when)
    assert _passed(report, "nitro_chain_validity") is valid
    assert _passed(report, "nitro_chain_signatures")
    assert _passed(report, "nitro_chain_root_pinned")
    if not valid:
        assert not report.valid


@pytest.mark.parametrize("vector", NITRO, ids=vector_ids(NITRO))
def test_report_summary(vector: dict[str, Any]) -> None:
    fields = vector["expected_fields"]
    report = _verify(vector_bytes(vector["file"]), vector)
    assert report.tee == "nitro"
    assert report.version is None
    assert report.report_data == (fields["user_data"] or "")
    assert report.measurements == {f"pcr{index}": value for index, value in fields["pcrs"].items()}
    assert report.debug is fields["pcr0_all_zero_debug_mode"]
    assert report.evidence_time == fields["timestamp_ms"] // 1000
    assert (report.tcb_status, report.advisory_ids, report.policy_ok) == (None, [], None)


@pytest.mark.parametrize("vector", NITRO, ids=vector_ids(NITRO))
def test_parsed_layout(vector: dict[str, Any]) -> None:
    document = parse_nitro_document(vector_bytes(vector["file"]))
    layout = vector["layout"]
    assert not document.tagged
    assert document.protected_header.hex() == layout["protected_header"]
    assert document.algorithm == layout["protected_header_decoded"]["1"]
    assert len(document.payload) == layout["payload_length"]
    assert len(document.signature) == layout["signature_length"]
    assert document.digest == "SHA384"


def test_invalid_vector_fails_on_cose_signature_only() -> None:
    (vector,) = [v for v in NITRO if v["file"] == "nitro-eternis-invalid-1.cbor"]
    report = _verify(vector_bytes(vector["file"]), vector)
    assert not report.valid
    assert _failed(report) == {"cose_signature"}
    assert report.error is not None
    assert report.error.startswith("cose_signature: ")


@pytest.mark.parametrize("vector", NITRO, ids=vector_ids(NITRO))
def test_tagged_form_verifies_like_untagged(vector: dict[str, Any]) -> None:
    data = vector_bytes(vector["file"])
    tagged = bytes(cbor2.dumps(cbor2.CBORTag(18, cbor2.loads(data))))
    assert tagged == b"\xd2" + data
    assert parse_nitro_document(tagged).tagged
    assert _verify(tagged, vector) == _verify(data, vector)


@pytest.mark.parametrize("vector", VALID[:2], ids=vector_ids(VALID[:2]))
def test_trailing_bytes_after_the_document_are_ignored(vector: dict[str, Any]) -> None:
    data = vector_bytes(vector["file"])
    assert _verify(data + b"\x00" * 70 + b"trailing text", vector) == _verify(data, vector)


# --- Mutations ----------------------------------------------------------------------------


@pytest.mark.parametrize("vector", VALID, ids=vector_ids(VALID))
def test_flipped_payload_byte_fails_cose_signature(vector: dict[str, Any]) -> None:
    data = vector_bytes(vector["file"])
    pcr4 = bytes.fromhex(vector["expected_fields"]["pcrs"]["4"])
    position = data.index(pcr4) + 7  # inside PCR4: still well-formed CBOR
    report = _verify(_flip(data, position), vector)
    assert _failed(report) == {"cose_signature"}
    assert not report.valid


@pytest.mark.parametrize("vector", VALID, ids=vector_ids(VALID))
@pytest.mark.parametrize("offset", [1, 30, 48, 95], ids=["r0", "r29", "s0", "s47"])
def test_flipped_signature_byte_fails_cose_signature(vector: dict[str, Any], offset: int) -> None:
    data = vector_bytes(vector["file"])
    report = _verify(_flip(data, len(data) - 96 + offset), vector)
    assert _failed(report) == {"cose_signature"}


@pytest.mark.parametrize("vector", VALID, ids=vector_ids(VALID))
def test_mutated_leaf_certificate_fails_chain_signatures(vector: dict[str, Any]) -> None:
    protected, unprotected, payload, signature = _parts(vector_bytes(vector["file"]))
    # The last byte of the DER is inside the issuer's ECDSA signature value.
    payload["certificate"] = _flip(payload["certificate"], len(payload["certificate"]) - 1)
    report = _verify(_build(protected, unprotected, payload, signature), vector)
    # The payload changed, so the COSE signature fails too.
    assert _failed(report) == {"cose_signature", "nitro_chain_signatures"}


@pytest.mark.parametrize("vector", VALID, ids=vector_ids(VALID))
def test_mutated_root_fails_root_pinning(vector: dict[str, Any]) -> None:
    protected, unprotected, payload, signature = _parts(vector_bytes(vector["file"]))
    root = payload["cabundle"][0]
    payload["cabundle"][0] = _flip(root, len(root) - 1)
    report = _verify(_build(protected, unprotected, payload, signature), vector)
    assert not _passed(report, "nitro_chain_root_pinned")
    assert not _passed(report, "cose_signature")
    assert not _passed(report, "nitro_chain_signatures")  # the root's self-signature breaks
    assert _passed(report, "nitro_chain_validity")


def test_unreadable_certificate_fails_checks_without_raising() -> None:
    vector = VALID[0]
    protected, unprotected, payload, signature = _parts(vector_bytes(vector["file"]))
    payload["certificate"] = b"\x30\x03\x02\x01\x00"  # DER, but not a certificate
    report = _verify(_build(protected, unprotected, payload, signature), vector)
    assert {"cose_signature", "nitro_chain_signatures", "nitro_chain_validity"} <= _failed(report)
    assert report.fields["certificate_subject"] is None


def test_other_algorithm_is_a_verification_failure() -> None:
    vector = VALID[0]
    _, unprotected, payload, signature = _parts(vector_bytes(vector["file"]))
    data = _build(cbor2.dumps({1: -7}), unprotected, payload, signature)  # ES256
    assert parse_nitro_document(data).algorithm == -7
    report = _verify(data, vector)
    assert not _passed(report, "cose_algorithm")
    check = report.check("cose_algorithm")
    assert check is not None
    assert "expected -35 (ES384)" in check.detail
    assert not report.valid


def test_untrusted_roots_fail_root_pinning() -> None:
    vector = VALID[0]
    anchors = TrustAnchors(
        intel_roots=ANCHORS.intel_roots,
        nitro_roots=frozenset(),
        amd_arks=ANCHORS.amd_arks,
        amd_asks=ANCHORS.amd_asks,
    )
    report = verify_nitro_document(
        vector_bytes(vector["file"]), at=at(vector["expected"]["verify_at"]), anchors=anchors
    )
    assert _failed(report) == {"nitro_chain_root_pinned"}


# --- Malformed documents ------------------------------------------------------------------


def _malformed_cases() -> list[tuple[str, bytes, str]]:
    data = vector_bytes(VALID[0]["file"])
    protected, unprotected, payload, signature = _parts(data)

    def with_payload(**changes: Any) -> bytes:
        changed = {**payload, **changes}
        return _build(
            protected, unprotected, {k: v for k, v in changed.items() if v is not ...}, signature
        )

    return [
        ("empty", b"", "0 bytes"),
        ("oversized", b"\x84" + b"\x00" * (1 << 20), "over the limit"),
        ("not CBOR", b"\xff\xff", "not valid CBOR"),
        ("wrong tag", bytes(cbor2.dumps(cbor2.CBORTag(98, cbor2.loads(data)))), "tag 98"),
        ("array of 3", bytes(cbor2.dumps([protected, unprotected, b"x"])), "an array of 3"),
        ("a map", bytes(cbor2.dumps({1: 2})), "a map of 1"),
        (
            "protected not bstr",
            _build({1: -35}, unprotected, payload, signature),
            "protected header must be a byte string",
        ),
        (
            "protected array",
            _build(cbor2.dumps([1]), unprotected, payload, signature),
            "decode to a map",
        ),
        (
            "protected trailing",
            _build(protected + b"\x00", unprotected, payload, signature),
            "after it",
        ),
        ("alg not int", _build(cbor2.dumps({1: 1.5}), unprotected, payload, signature), "alg"),
        ("alg null", _build(cbor2.dumps({1: None}), unprotected, payload, signature), "found null"),
        (
            "unprotected array",
            _build(protected, [], payload, signature),
            "unprotected header must be a map",
        ),
        (
            "payload not map",
            _build(protected, unprotected, cbor2.dumps([1, 2]), signature),
            "payload must decode to a map",
        ),
        (
            "payload trailing",
            _build(protected, unprotected, cbor2.dumps(payload) + b"\x00", signature),
            "after it",
        ),
        (
            "signature text",
            _build(protected, unprotected, payload, "sig"),
            "signature must be a byte string",
        ),
        ("missing pcrs", with_payload(pcrs=...), "missing mandatory field(s) pcrs"),
        ("missing cabundle", with_payload(cabundle=...), "cabundle"),
        ("unknown field", with_payload(extra=b"x"), "does not allow"),
        ("module_id empty", with_payload(module_id=""), "'module_id'"),
        ("digest", with_payload(digest="SHA256"), "'digest'"),
        ("timestamp bool", with_payload(timestamp=True), "'timestamp'"),
        ("timestamp zero", with_payload(timestamp=0), "'timestamp'"),
        ("timestamp huge", with_payload(timestamp=1 << 64), "'timestamp'"),
        (
            "pcr index 32",
            with_payload(pcrs={**payload["pcrs"], 32: b"\x00" * 48}),
            "keys must be integers 0..31, found integer 32",
        ),
        ("pcr index -1", with_payload(pcrs={-1: b"\x00" * 48}), "found integer -1"),
        ("pcr index text", with_payload(pcrs={"0": b"\x00" * 48}), "keys must be integers"),
        (
            "pcr length 47",
            with_payload(pcrs={0: b"\x00" * 47}),
            "entry 0 must be a byte string of 32, 48 or 64 bytes, found 47 bytes",
        ),
        ("pcrs empty", with_payload(pcrs={}), "a map of 0 entries"),
        ("certificate empty", with_payload(certificate=b""), "'certificate' must be 1..1024 bytes"),
        ("cabundle empty", with_payload(cabundle=[]), "'cabundle' must be a non-empty array"),
        ("cabundle entry text", with_payload(cabundle=["x"]), "'cabundle[0]'"),
        ("nonce int", with_payload(nonce=5), "'nonce'"),
        ("user_data too long", with_payload(user_data=b"x" * 1025), "'user_data'"),
        (
            "duplicate keys",
            b"\x84\x44\xa1\x01\x38\x22\xa0\x46\xa2\x01\x01\x01\x02\x00\x41\x00",
            "not valid CBOR",
        ),
        ("deep nesting", b"\x84\x44\xa1\x01\x38\x22\xa0" + b"\x81" * 100000, "not valid CBOR"),
    ]


@pytest.mark.parametrize(
    ("data", "message"), [c[1:] for c in _malformed_cases()], ids=[c[0] for c in _malformed_cases()]
)
def test_malformed_documents_raise_format_error(data: bytes, message: str) -> None:
    with pytest.raises(NitroFormatError, match="Nitro document") as caught:
        parse_nitro_document(data)
    assert message in str(caught.value)
    with pytest.raises(NitroFormatError):
        verify_nitro_document(data, at=at("2024-01-01T00:00:00Z"), anchors=ANCHORS)


def test_non_bytes_input_is_a_format_error() -> None:
    with pytest.raises(NitroFormatError, match="expected bytes"):
        parse_nitro_document(12345)  # type: ignore[arg-type]


def test_null_optional_fields_are_accepted() -> None:
    document = parse_nitro_document(vector_bytes("nitro-evervault-1.cbor"))
    assert (document.public_key, document.user_data) == (None, None)
    assert isinstance(document, NitroDocument)


# --- Truncation and random input ----------------------------------------------------------


@pytest.mark.parametrize("vector", NITRO, ids=vector_ids(NITRO))
def test_every_truncation_raises_format_error(vector: dict[str, Any]) -> None:
    data = vector_bytes(vector["file"])
    for length in range(len(data)):
        with pytest.raises(NitroFormatError):
            parse_nitro_document(data[:length])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_random_bytes_raise_only_format_error(data: bytes) -> None:
    try:
        report = verify_nitro_document(data, at=at("2024-01-01T00:00:00Z"), anchors=ANCHORS)
    except NitroFormatError:
        return
    assert not report.valid


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    index=st.integers(min_value=0, max_value=len(NITRO) - 1),
    flips=st.lists(
        st.tuples(st.integers(min_value=0), st.integers(1, 255)), min_size=1, max_size=4
    ),
)
def test_mutated_documents_raise_only_format_error(
    index: int, flips: list[tuple[int, int]]
) -> None:
    vector = NITRO[index]
    mutated = bytearray(vector_bytes(vector["file"]))
    for position, mask in flips:
        mutated[position % len(mutated)] ^= mask
    try:
        report = _verify(bytes(mutated), vector)
    except NitroFormatError:
        return
    if report.valid:  # only the unsigned unprotected header may have changed
        original = parse_nitro_document(vector_bytes(vector["file"]))
        document = parse_nitro_document(bytes(mutated))
        assert (document.protected_header, document.payload, document.signature) == (
            original.protected_header,
            original.payload,
            original.signature,
        )
