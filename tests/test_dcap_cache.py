"""What repeats across one platform's quotes is judged once, by its exact bytes.

The key certification (attestation key, QE report and its signature, PCK chain) and the
collateral are cached by content, so a warm verification makes one ECDSA verification,
the quote's own. These tests warm the caches with an unchanged quote, then change a byte
and expect the check that covers it to fail; and they move the verification time on a warm
cache, even within one second, and expect the time windows to be judged again.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from cryptography import x509

from attestation import collateral, collateral_checks, verify_dcap, x509chain
from attestation.ecdsa import verify_raw_signature
from attestation.errors import QuoteFormatError
from attestation.formats import dcap
from attestation.report import VerificationReport
from attestation.timefmt import format_time
from attestation.verifier import verify_evidence
from tests.dcap_collateral import collateral_bytes_for
from tests.manifest import at, vector_bytes, vector_ids, vectors

WITH_TCB = [v for v in vectors() if v["type"].startswith("intel-") and "tcb" in v["expected"]]
PHALA_TDX = next(v for v in WITH_TCB if v["file"] == "tdx-v4-phala-1.bin")

# Every cache on the DCAP verification path. Each must be bounded (an lru with a size).
CACHES: list[Any] = [
    dcap._parse_header,
    dcap.parse_key_certification,
    verify_dcap._certified_key,
    verify_dcap._pem_chain_der,
    verify_dcap._quote_signature_verified,
    x509chain._assess_chain_cached,
    x509chain.static_chain_checks,
    x509chain._validity_check,
    collateral._load_cached,
    collateral_checks._prepare,
    collateral_checks._signature_valid,
    collateral_checks._window_check,
]


@pytest.fixture
def cold() -> None:
    """Start with every cache on the DCAP path empty."""
    for cache in CACHES:
        cache.cache_clear()


def _verify(
    data: bytes, vector: dict[str, Any], *, files: list[bytes] | None = None, when: Any = None
) -> VerificationReport:
    return verify_evidence(
        data,
        at=when or at(vector["expected"]["verify_at"]),
        collateral=collateral_bytes_for(vector) if files is None else files,
    )


def _failed(report: VerificationReport) -> set[str]:
    return {check.name for check in report.failed_checks()}


def _flip(data: bytes, position: int) -> bytes:
    return data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1 :]


def _flip_last_hex_digit(text: str) -> str:
    return text[:-1] + ("0" if text[-1] != "0" else "1")


def _with_certificate_signature_changed(pem: bytes, index: int) -> bytes:
    """`pem` with the last byte of certificate `index` (inside its signature) flipped."""
    begin_marker, end_marker = b"-----BEGIN CERTIFICATE-----", b"-----END CERTIFICATE-----"
    start = 0
    for _ in range(index + 1):
        start = pem.index(begin_marker, start) + len(begin_marker)
    end = pem.index(end_marker, start)
    block = pem[start:end]
    der = base64.b64decode(b"".join(block.split()))
    encoded = base64.b64encode(_flip(der, len(der) - 1))
    changed = b"\n" + b"\n".join(encoded[i : i + 64] for i in range(0, len(encoded), 64)) + b"\n"
    assert len(changed) == len(block), "the PEM layout must keep the quote's length"
    return pem[:start] + changed + pem[end:]


def _quote_parts(data: bytes) -> dict[str, int]:
    quote = dcap.parse_dcap_quote(data)
    signed = len(quote.signed_region)
    qe_report = data.index(quote.qe_report_raw, signed)
    return {
        "report_data": signed - 64,
        "attestation_key": signed + 4 + 64,
        "qe_report": qe_report + 64,  # MRENCLAVE: signed, but read by no TCB rule
        "qe_report_signature": qe_report + 384 + 10,
    }


def _changed_quote(data: bytes, part: str) -> bytes:
    if part in ("pck_leaf", "pck_root"):
        pem = dcap.parse_dcap_quote(data).certification_data
        changed = _with_certificate_signature_changed(pem, 0 if part == "pck_leaf" else 2)
        return data.replace(pem, changed, 1)
    return _flip(data, _quote_parts(data)[part])


@pytest.mark.parametrize("vector", WITH_TCB, ids=vector_ids(WITH_TCB))
def test_a_warm_verification_makes_one_ecdsa_verification_and_the_same_report(
    vector: dict[str, Any], cold: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = vector_bytes(vector["file"])
    first = _verify(data, vector)
    calls: list[bytes] = []

    def counted(key: Any, signature: bytes, message: bytes, *args: Any) -> bool:
        calls.append(message)
        return verify_raw_signature(key, signature, message, *args)

    monkeypatch.setattr(verify_dcap, "verify_raw_signature", counted)
    monkeypatch.setattr(collateral_checks, "verify_raw_signature", counted)
    second = _verify(data, vector)
    assert calls == [dcap.parse_dcap_quote(data).signed_region]
    assert second == first


# The quote byte changed, and the checks that must then fail (exactly those).
QUOTE_CHANGES = {
    "report_data": {"quote_signature"},
    "attestation_key": {"quote_signature", "qe_report_data_binds_attestation_key"},
    "qe_report": {"qe_report_signature"},
    "qe_report_signature": {"qe_report_signature"},
    "pck_leaf": {"pck_chain_signatures"},
    "pck_root": {"pck_chain_signatures", "pck_chain_root_pinned"},
}


PHALA = [v for v in WITH_TCB if "phala" in v["file"]]


@pytest.mark.parametrize("part", sorted(QUOTE_CHANGES))
@pytest.mark.parametrize("vector", PHALA, ids=vector_ids(PHALA))
def test_a_changed_quote_byte_fails_its_check_on_a_warm_cache(
    vector: dict[str, Any], part: str
) -> None:
    data = vector_bytes(vector["file"])
    # The v5 quote's platform is below every TCB level, so it fails tcb_level_matched too.
    unchanged = _verify(data, vector)
    changed = _changed_quote(data, part)
    assert len(changed) == len(data) and changed != data
    report = _verify(changed, vector)
    assert report.valid is False
    assert _failed(report) == _failed(unchanged) | QUOTE_CHANGES[part]
    assert _verify(changed, vector) == report, "a cached failure fails the same way"
    assert _verify(data, vector) == unchanged, "the failure is not served for the original"


def _bundle_change(key: str, change: Callable[[str], str]) -> Callable[[dict[str, str]], None]:
    def apply(bundle: dict[str, str]) -> None:
        bundle[key] = change(bundle[key])

    return apply


def _issuer_chain_changed(text: str) -> str:
    return _with_certificate_signature_changed(text.encode(), 0).decode()


# A change to one piece of the dcap-qvl collateral bundle, and the check that must fail.
COLLATERAL_CHANGES = {
    "tcb_info": (
        _bundle_change("tcb_info", lambda t: t.replace('"OutOfDate"', '"UpToDate"')),
        {"collateral_tcb_info_signature"},
    ),
    "tcb_info_signature": (
        _bundle_change("tcb_info_signature", _flip_last_hex_digit),
        {"collateral_tcb_info_signature"},
    ),
    "tcb_info_issuer_chain": (
        _bundle_change("tcb_info_issuer_chain", _issuer_chain_changed),
        {"collateral_tcb_info_issuer_chain_signatures"},
    ),
    "qe_identity_signature": (
        _bundle_change("qe_identity_signature", _flip_last_hex_digit),
        {"collateral_qe_identity_signature"},
    ),
    "pck_crl": (_bundle_change("pck_crl", _flip_last_hex_digit), {"collateral_pck_crl"}),
    "root_ca_crl": (
        _bundle_change("root_ca_crl", _flip_last_hex_digit),
        {"collateral_root_ca_crl"},
    ),
}


@pytest.mark.parametrize("piece", sorted(COLLATERAL_CHANGES))
def test_changed_collateral_fails_its_check_on_a_warm_cache(piece: str) -> None:
    data = vector_bytes(PHALA_TDX["file"])
    (original,) = collateral_bytes_for(PHALA_TDX)
    assert _verify(data, PHALA_TDX, files=[original]).valid is True
    change, expected = COLLATERAL_CHANGES[piece]
    bundle = json.loads(original)
    change(bundle)
    changed = json.dumps(bundle).encode()
    report = _verify(data, PHALA_TDX, files=[changed])
    assert _failed(report) == expected
    assert _verify(data, PHALA_TDX, files=[changed]) == report
    assert _verify(data, PHALA_TDX, files=[original]).valid is True


def _check_passed(report: VerificationReport, name: str) -> bool:
    check = report.check(name)
    assert check is not None, name
    return check.passed


def test_time_windows_are_judged_on_every_call_with_a_warm_cache() -> None:
    data = vector_bytes(PHALA_TDX["file"])
    inside = at(PHALA_TDX["expected"]["verify_at"])
    first, last = (at(t) for t in PHALA_TDX["expected"]["collateral"]["collateral_validity_window"])
    assert _verify(data, PHALA_TDX, when=inside).valid is True
    for outside in (first - timedelta(days=1), last + timedelta(days=1)):
        report = _verify(data, PHALA_TDX, when=outside)
        assert report.valid is False
        assert not _check_passed(report, "collateral_tcb_info_validity")
        assert _check_passed(report, "pck_chain_validity")
    assert _verify(data, PHALA_TDX, when=inside).valid is True


def test_a_window_ending_within_the_second_is_judged_by_the_exact_time() -> None:
    # The window checks are shared per second of verification time (their text names the
    # second), but whether the time lies inside is decided from the exact time every call.
    data = vector_bytes(PHALA_TDX["file"])
    (bundle_bytes,) = collateral_bytes_for(PHALA_TDX)
    next_update = at(json.loads(json.loads(bundle_bytes)["tcb_info"])["nextUpdate"])
    certificates = x509.load_pem_x509_certificates(
        dcap.parse_dcap_quote(data).certification_data.rstrip(b"\x00")
    )
    chain_end = min(cert.not_valid_after_utc for cert in certificates)
    for name, last_instant in (
        ("collateral_tcb_info_validity", next_update),
        ("pck_chain_validity", chain_end),
    ):
        just_after = last_instant + timedelta(milliseconds=500)
        assert format_time(just_after) == format_time(last_instant)
        for when, passed in ((last_instant, True), (just_after, False), (last_instant, True)):
            check = _verify(data, PHALA_TDX, when=when).check(name)
            assert check is not None and check.passed is passed, (name, when)
            assert format_time(when) in check.detail


def test_an_unreadable_pck_chain_raises_on_every_call() -> None:
    data = vector_bytes(PHALA_TDX["file"])
    pem = dcap.parse_dcap_quote(data).certification_data
    marker = b"-----BEGIN CERTIFICATE-----\n"
    broken = data.replace(pem, pem.replace(marker + b"MII", marker + b"AII", 1), 1)
    assert len(broken) == len(data) and broken != data
    for _ in range(2):
        with pytest.raises(QuoteFormatError, match="PCK certificate chain"):
            _verify(broken, PHALA_TDX)
    assert _verify(data, PHALA_TDX).valid is True


def test_a_truncated_key_certification_raises_on_every_call() -> None:
    data = vector_bytes(PHALA_TDX["file"])
    quote = dcap.parse_dcap_quote(data)
    raw = quote.key_certification.raw
    assert dcap.parse_key_certification(raw, 4) is dcap.parse_key_certification(raw, 4)
    for _ in range(2):
        with pytest.raises(QuoteFormatError, match="key certification data is truncated"):
            dcap.parse_key_certification(raw[:100], 4)


def test_threads_sharing_cold_caches_get_the_sequential_verdicts(cold: None) -> None:
    cases: list[tuple[bytes, dict[str, Any], Any]] = []
    for vector in WITH_TCB:
        data = vector_bytes(vector["file"])
        late = at(vector["expected"]["verify_at"]) + timedelta(days=400)
        cases += [
            (data, vector, None),
            (_flip(data, _quote_parts(data)["qe_report"]), vector, None),
        ]
        cases.append((data, vector, late))

    def verdict(case: tuple[bytes, dict[str, Any], Any]) -> tuple[bool, frozenset[str]]:
        report = _verify(case[0], case[1], when=case[2])
        return report.valid, frozenset(_failed(report))

    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(verdict, cases * 6))
    sequential = [verdict(case) for case in cases]
    assert concurrent == sequential * 6
    assert {valid for valid, _ in sequential} == {True, False}


def test_every_cache_on_the_dcap_path_is_bounded() -> None:
    for cache in CACHES:
        assert isinstance(cache.cache_info().maxsize, int), cache.__wrapped__.__qualname__
