"""Collateral that was changed, cut or garbled is refused by name, never with a crash."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attestation.errors import CollateralFormatError
from attestation.verifier import verify_evidence
from tests.dcap_collateral import collateral_bytes_for
from tests.manifest import at, vector_bytes, vectors

WITH_TCB = [v for v in vectors() if v["type"].startswith("intel-") and "tcb" in v["expected"]]
PHALA_TDX = next(v for v in WITH_TCB if v["file"] == "tdx-v4-phala-1.bin")
AUTOMATA = next(v for v in WITH_TCB if v["file"] == "tdx-v4-automata-1.bin")


def _verify(vector: dict[str, Any], collateral: list[bytes]):  # type: ignore[no-untyped-def]
    return verify_evidence(
        vector_bytes(vector["file"]), at=at(vector["expected"]["verify_at"]), collateral=collateral
    )


def test_an_edited_tcb_info_fails_its_signature_and_yields_no_status() -> None:
    bundle = json.loads(collateral_bytes_for(PHALA_TDX)[0])
    assert '"tcbStatus":"UpToDate"' in bundle["tcb_info"]
    bundle["tcb_info"] = bundle["tcb_info"].replace('"OutOfDate"', '"UpToDate"')
    report = _verify(PHALA_TDX, [json.dumps(bundle).encode()])
    failed = {check.name for check in report.failed_checks()}
    assert failed == {"collateral_tcb_info_signature"}
    assert report.tcb_status is None
    assert report.valid is False


def test_an_edited_qe_identity_fails_its_signature() -> None:
    bundle = json.loads(collateral_bytes_for(PHALA_TDX)[0])
    bundle["qe_identity"] = bundle["qe_identity"].replace('"isvprodid":2', '"isvprodid":3')
    report = _verify(PHALA_TDX, [json.dumps(bundle).encode()])
    assert {check.name for check in report.failed_checks()} == {"collateral_qe_identity_signature"}
    assert report.tcb_status is None


def test_a_crl_from_another_issuer_is_missing_not_trusted() -> None:
    files = collateral_bytes_for(AUTOMATA)
    without_pck_crl = [
        f for f in files if f != vector_bytes("collateral-automata-pck-platform-crl.der")
    ]
    report = _verify(AUTOMATA, without_pck_crl)
    check = report.check("collateral_pck_crl")
    assert check is not None and not check.passed
    assert "no CRL issued by" in check.detail


def test_collateral_of_one_vector_does_not_fit_another() -> None:
    sgx = next(v for v in WITH_TCB if v["file"] == "sgx-v3-phala-1.bin")
    report = _verify(PHALA_TDX, collateral_bytes_for(sgx))
    failed = {check.name for check in report.failed_checks()}
    assert "collateral_tcb_info_matches_platform" in failed
    assert report.tcb_status is None
    assert report.valid is False


@pytest.mark.parametrize(
    "garbage",
    [b"", b"{", b"[]", b'{"tcbInfo": 1}', b'{"tcb_info": "x"}', b"\x30\x82\x01", b"not collateral"],
)
def test_unreadable_collateral_is_a_format_error(garbage: bytes) -> None:
    with pytest.raises(CollateralFormatError):
        _verify(PHALA_TDX, [garbage])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_collateral_is_refused_or_judged(data: st.DataObject) -> None:
    vector = data.draw(st.sampled_from(WITH_TCB), label="vector")
    files = collateral_bytes_for(vector)
    index = data.draw(st.integers(0, len(files) - 1), label="file")
    original = files[index]
    position = data.draw(st.integers(0, len(original) - 1), label="position")
    how = data.draw(st.sampled_from(["flip", "cut", "drop"]), label="how")
    if how == "flip":
        changed = (
            original[:position] + bytes([original[position] ^ 0x01]) + original[position + 1 :]
        )
    elif how == "cut":
        changed = original[:position]
    else:
        changed = original[:position] + original[position + 16 :]
    files = [*files[:index], changed, *files[index + 1 :]]
    try:
        report = _verify(vector, files)
    except CollateralFormatError as exc:
        message = str(exc)
        assert message.startswith("collateral file")
        return
    # A change that still parses is either harmless (a case change in hex, an unused field)
    # or caught by a named check: it never yields another verdict that passes.
    if report.valid:
        assert report.tcb_status == vector["expected"]["tcb"]["status"]
        assert report.advisory_ids == vector["expected"]["tcb"]["advisory_ids"]


def test_a_crl_claiming_an_unknown_version_is_a_format_error() -> None:
    # cryptography raises InvalidVersion (not a ValueError) for a CRL version field of 5.
    der = vector_bytes("collateral-go-tdx-guest-root-ca-crl.der")
    version = der.index(b"\x02\x01\x01") + 2  # INTEGER 1 (v2), the CRL's version
    bad = der[:version] + b"\x05" + der[version + 1 :]
    pem = b"-----BEGIN X509 CRL-----\n" + base64.encodebytes(bad) + b"-----END X509 CRL-----\n"
    with pytest.raises(CollateralFormatError, match="is not Intel collateral"):
        _verify(PHALA_TDX, [bad])
    with pytest.raises(CollateralFormatError, match="5 is not a valid CRL version"):
        _verify(PHALA_TDX, [pem])
