"""A changed byte anywhere that is signed fails the check that covers it; bad input is refused."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attestation.errors import EvidenceFormatError, QuoteFormatError
from attestation.formats.dcap import parse_dcap_quote
from attestation.verifier import verify_evidence
from attestation.x509chain import load_certificate
from tests.manifest import at, vector_bytes, vectors

QUOTES = {
    "tdx-v4": "tdx-v4-phala-1.bin",
    "tdx-v5": "tdx-v5-phala-1.bin",
    "sgx-v3": "sgx-v3-phala-1.bin",
}


def _entry(name: str) -> dict[str, Any]:
    return next(v for v in vectors() if v["file"] == name)


def _failed(data: bytes, name: str) -> set[str]:
    report = verify_evidence(data, at=at(_entry(name)["expected"]["verify_at"]))
    assert report.valid is False
    return {check.name for check in report.failed_checks()}


def _flip(data: bytes, position: int) -> bytes:
    return data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1 :]


def _offsets(name: str) -> dict[str, int]:
    """Where each signed or signing part of the quote starts, from the parsed structure."""
    data = vector_bytes(name)
    quote = parse_dcap_quote(data)
    signed = len(quote.signed_region)
    qe_report = data.index(quote.qe_report_raw, signed)
    return {
        "signed_end": signed,
        "signature": signed + 4,
        "attestation_key": signed + 4 + 64,
        "qe_report": qe_report,
        "qe_report_signature": qe_report + 384,
    }


# Header fields that decide how the rest is parsed: a change there is a format error.
_STRUCTURAL = set(range(8))


@pytest.mark.parametrize("kind", sorted(QUOTES))
def test_every_byte_of_the_signed_region_is_covered(kind: str) -> None:
    name = QUOTES[kind]
    data = vector_bytes(name)
    offsets = _offsets(name)
    structural = set(_STRUCTURAL)
    if kind == "tdx-v5":
        structural |= set(range(48, 54))  # body type and size
    for position in range(offsets["signed_end"]):
        mutated = _flip(data, position)
        if position in structural:
            with pytest.raises(EvidenceFormatError):
                verify_evidence(mutated, at=at(_entry(name)["expected"]["verify_at"]))
            continue
        assert "quote_signature" in _failed(mutated, name), position


@pytest.mark.parametrize("kind", sorted(QUOTES))
def test_every_byte_of_the_quote_signature_is_covered(kind: str) -> None:
    name = QUOTES[kind]
    data, start = vector_bytes(name), _offsets(name)["signature"]
    for position in range(start, start + 64):
        assert _failed(_flip(data, position), name) == {"quote_signature"}, position


@pytest.mark.parametrize("kind", sorted(QUOTES))
def test_attestation_key_is_bound_by_the_qe_report(kind: str) -> None:
    name = QUOTES[kind]
    data, start = vector_bytes(name), _offsets(name)["attestation_key"]
    for position in range(start, start + 64, 5):
        failed = _failed(_flip(data, position), name)
        assert {"quote_signature", "qe_report_data_binds_attestation_key"} <= failed, position


@pytest.mark.parametrize("kind", sorted(QUOTES))
def test_every_byte_of_the_qe_report_and_its_signature_is_covered(kind: str) -> None:
    name = QUOTES[kind]
    data, start = vector_bytes(name), _offsets(name)["qe_report"]
    for position in range(start, start + 384 + 64):
        assert "qe_report_signature" in _failed(_flip(data, position), name), position


def _replace_certificate(data: bytes, index: int, position: int) -> bytes | None:
    """The quote with one byte of PCK chain certificate `index` flipped (DER level).

    Returns None when the changed DER no longer parses as a certificate: that byte is not a
    signature test but a format one (see test_an_unparsable_certificate_is_a_format_error).
    """
    quote = parse_dcap_quote(data)
    pem_chain = quote.certification_data
    blocks = pem_chain.split(b"-----END CERTIFICATE-----")
    block = blocks[index]
    begin = block.index(b"-----BEGIN CERTIFICATE-----")
    body = block[begin + 27 :]
    der = base64.b64decode(b"".join(body.split()))
    changed = _flip(der, position)
    try:
        load_certificate(changed)
    except ValueError:
        return None
    encoded = base64.b64encode(changed)
    lines = b"\n".join(encoded[i : i + 64] for i in range(0, len(encoded), 64))
    new_block = block[: begin + 27] + b"\n" + lines + b"\n"
    if len(new_block) != len(block):
        return None
    return data.replace(block, new_block, 1)


@pytest.mark.parametrize("index", [0, 1, 2], ids=["pck-leaf", "pck-ca", "root"])
def test_a_changed_certificate_breaks_the_chain(index: int) -> None:
    name = QUOTES["tdx-v4"]
    data = vector_bytes(name)
    tested = 0
    for position in range(20, 600, 9):
        mutated = _replace_certificate(data, index, position)
        if mutated is None:
            continue
        failed = _failed(mutated, name)
        if index == 2:
            assert "pck_chain_root_pinned" in failed, position
        else:
            assert "pck_chain_signatures" in failed, position
        tested += 1
    assert tested > 20


def test_an_unparsable_certificate_is_a_format_error() -> None:
    name = QUOTES["tdx-v4"]
    data = vector_bytes(name)
    for position in range(20, 600, 9):
        quote = parse_dcap_quote(data)
        der_changed = _replace_certificate_unchecked(data, quote.certification_data, position)
        if der_changed is None:
            continue
        with pytest.raises(QuoteFormatError, match="PCK certificate chain"):
            verify_evidence(der_changed, at=at(_entry(name)["expected"]["verify_at"]))
        return
    pytest.fail("no byte change made the leaf certificate unparsable")


def test_a_certificate_claiming_an_unknown_x509_version_is_a_format_error() -> None:
    # cryptography raises InvalidVersion (not a ValueError) for a version field of 3 (v4).
    name = QUOTES["tdx-v4"]
    data = vector_bytes(name)
    block = parse_dcap_quote(data).certification_data.split(b"-----END CERTIFICATE-----")[0]
    begin = block.index(b"-----BEGIN CERTIFICATE-----") + 27
    der = base64.b64decode(b"".join(block[begin:].split()))
    version = der.index(b"\xa0\x03\x02\x01\x02") + 4  # [0] EXPLICIT INTEGER 2 (v3)
    v4 = der[:version] + b"\x03" + der[version + 1 :]
    with pytest.raises(ValueError, match="3 is not a valid X509 version"):
        load_certificate(v4)
    encoded = base64.b64encode(v4)
    lines = b"\n".join(encoded[i : i + 64] for i in range(0, len(encoded), 64))
    changed = data.replace(block, block[:begin] + b"\n" + lines + b"\n", 1)
    assert changed != data and len(changed) == len(data)
    with pytest.raises(QuoteFormatError, match="PCK certificate chain"):
        verify_evidence(changed, at=at(_entry(name)["expected"]["verify_at"]))


def _replace_certificate_unchecked(data: bytes, pem_chain: bytes, position: int) -> bytes | None:
    """Like _replace_certificate on the leaf, but keeping only changes that break parsing."""
    if _replace_certificate(data, 0, position) is not None:
        return None
    block = pem_chain.split(b"-----END CERTIFICATE-----")[0]
    begin = block.index(b"-----BEGIN CERTIFICATE-----") + 27
    der = base64.b64decode(b"".join(block[begin:].split()))
    encoded = base64.b64encode(_flip(der, position))
    lines = b"\n".join(encoded[i : i + 64] for i in range(0, len(encoded), 64))
    new_block = block[:begin] + b"\n" + lines + b"\n"
    return data.replace(block, new_block, 1) if len(new_block) == len(block) else None


@pytest.mark.parametrize("kind", sorted(QUOTES))
def test_every_truncation_is_a_format_error(kind: str) -> None:
    data = vector_bytes(QUOTES[kind])
    length = parse_dcap_quote(data).length
    for size in range(length):
        with pytest.raises(EvidenceFormatError):
            verify_evidence(data[:size], at=at("2025-07-01T00:00:00Z"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=6000))
def test_random_bytes_never_raise_anything_but_a_format_error(data: bytes) -> None:
    try:
        report = verify_evidence(data, at=at("2025-07-01T00:00:00Z"))
    except EvidenceFormatError as exc:
        message = str(exc)
    else:
        message = "" if report.valid else "verified to invalid"
    assert message, "a refusal always says why"


@settings(max_examples=300, deadline=None)
@given(
    prefix=st.sampled_from(
        [
            b"\x03\x00\x02\x00\x00\x00\x00\x00",
            b"\x04\x00\x02\x00\x81\x00\x00\x00",
            b"\x05\x00\x02\x00\x81\x00\x00\x00",
        ]
    ),
    rest=st.binary(max_size=6000),
)
def test_random_quote_bodies_are_refused_cleanly(prefix: bytes, rest: bytes) -> None:
    with pytest.raises(QuoteFormatError) as caught:
        verify_evidence(prefix + rest, at=at("2025-07-01T00:00:00Z"))
    assert "DCAP quote" in str(caught.value) or "QE report" in str(caught.value)


@pytest.mark.parametrize("encoding", ["hex", "base64", "hex-with-newlines"])
def test_text_encodings_verify_like_raw_bytes(encoding: str) -> None:
    name = QUOTES["tdx-v4"]
    data = vector_bytes(name)
    text = {
        "hex": data.hex().encode(),
        "base64": base64.b64encode(data),
        "hex-with-newlines": b"\n".join(
            data.hex().encode()[i : i + 80] for i in range(0, 2 * len(data), 80)
        )
        + b"\n",
    }[encoding]
    report = verify_evidence(text, at=at(_entry(name)["expected"]["verify_at"]))
    assert report.valid is True
    assert report.measurements["mr_td"] == _entry(name)["expected_fields"]["mr_td"]


@pytest.mark.parametrize("kind", sorted(QUOTES))
def test_a_naive_verification_time_is_refused_before_verifying(kind: str) -> None:
    # Without the check a DCAP quote fails deep inside, comparing a naive time with the
    # certificates' aware ones (TypeError).
    name = QUOTES[kind]
    aware = at(_entry(name)["expected"]["verify_at"])
    with pytest.raises(ValueError, match=r"verify_evidence: `at` must be timezone-aware \(UTC\)"):
        verify_evidence(vector_bytes(name), at=aware.replace(tzinfo=None))
