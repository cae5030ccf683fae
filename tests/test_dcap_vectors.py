"""Every real DCAP quote of the vector set verifies to what the manifest says."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from attestation.formats.dcap import parse_dcap_quote
from attestation.tcb import TCB_UNSUPPORTED
from attestation.trust import default_trust_anchors
from attestation.verifier import verify_evidence
from attestation.verify_dcap import verify_dcap_quote
from tests.dcap_collateral import collateral_bytes_for, collateral_files_for
from tests.manifest import at, vector_bytes, vector_ids, vectors

DCAP = [v for v in vectors() if v["type"] in ("intel-tdx-quote", "intel-sgx-quote")]
GENUINE = [v for v in DCAP if v["origin"].startswith("real hardware")]
WITH_TCB = [v for v in GENUINE if "tcb" in v["expected"]]

# The manifest writes the no-match outcome as a sentence; the report uses one word.
_MANIFEST_STATUS = {"TCB level not supported (no matching TCB level)": TCB_UNSUPPORTED}


def _verify(vector: dict[str, Any], when: str, collateral: list[bytes] | None = None):  # type: ignore[no-untyped-def]
    return verify_evidence(vector_bytes(vector["file"]), at=at(when), collateral=collateral)


@pytest.mark.parametrize("vector", DCAP, ids=vector_ids(DCAP))
def test_parser_extracts_every_field(vector: dict[str, Any]) -> None:
    quote = parse_dcap_quote(vector_bytes(vector["file"]))
    assert quote.length == vector["layout"]["quote_length"]
    assert quote.header.version == vector["version"]
    assert quote.header.qe_vendor_id.hex() == vector["header"]["qe_vendor_id"]
    assert quote.header.user_data.hex() == vector["header"]["header_user_data"]
    assert hex(quote.header.tee_type) == vector["header"]["tee_type"]
    assert quote.certification_data_type == vector["layout"]["certification_data_type"]
    assert quote.attestation_key.hex() == vector["signature_data"]["attestation_public_key_p256_xy"]
    assert quote.qe_report.mr_enclave.hex() == vector["signature_data"]["qe_report"]["mr_enclave"]
    assert quote.qe_report.isv_svn == vector["signature_data"]["qe_report"]["isv_svn"]


@pytest.mark.parametrize("vector", DCAP, ids=vector_ids(DCAP))
def test_report_fields_equal_the_manifest(vector: dict[str, Any]) -> None:
    report = _verify(vector, vector["expected"]["verify_at"])
    for name, expected in vector["expected_fields"].items():
        assert report.fields[name] == expected, name
    assert report.report_data == vector["expected_fields"]["report_data"]
    if vector["type"] == "intel-tdx-quote":
        assert report.tee == "tdx"
        assert report.measurements["mr_td"] == vector["expected_fields"]["mr_td"]
        assert report.measurements["rtmr3"] == vector["expected_fields"]["rtmr3"]
        assert report.debug is vector["expected_fields"]["td_attributes_debug"]
    else:
        assert report.tee == "sgx"
        assert report.measurements["mr_enclave"] == vector["expected_fields"]["mr_enclave"]
        assert report.measurements["mr_signer"] == vector["expected_fields"]["mr_signer"]


@pytest.mark.parametrize("vector", GENUINE, ids=vector_ids(GENUINE))
def test_signatures_and_chain_at_verify_time(vector: dict[str, Any]) -> None:
    expected = vector["expected"]
    report = _verify(vector, expected["verify_at"])
    assert report.valid is expected["overall_signature_and_chain_verdict_at_verify_at"]
    checks = {check.name: check.passed for check in report.checks}
    assert checks["quote_signature"] is expected["quote_signature_valid"]
    assert (
        checks["qe_report_data_binds_attestation_key"]
        is expected["qe_report_data_binds_attestation_key"]
    )
    assert checks["qe_report_signature"] is expected["qe_report_signature_valid_with_pck_leaf"]
    assert checks["pck_chain_signatures"] is expected["pck_chain_signatures_valid"]
    assert checks["pck_chain_root_pinned"] is expected["pck_chain_root_is_intel_sgx_root_ca"]
    assert report.tcb_status is None, "no collateral: the TCB status is unknown, not guessed"
    assert report.policy_ok is None
    assert report.error is None


@pytest.mark.parametrize("vector", GENUINE, ids=vector_ids(GENUINE))
def test_chain_validity_at_each_listed_time(vector: dict[str, Any]) -> None:
    for when, valid in vector["expected"]["chain_valid_at"].items():
        report = _verify(vector, when)
        check = report.check("pck_chain_validity")
        assert check is not None and check.passed is valid, when
        assert report.valid is valid, when


@pytest.mark.parametrize("vector", WITH_TCB, ids=vector_ids(WITH_TCB))
def test_tcb_status_from_collateral(vector: dict[str, Any]) -> None:
    expected = vector["expected"]
    report = _verify(vector, expected["verify_at"], collateral_bytes_for(vector))
    status = expected["tcb"]["status"]
    assert report.tcb_status == _MANIFEST_STATUS.get(status, status)
    assert report.advisory_ids == expected["tcb"]["advisory_ids"]
    checks = {check.name: check for check in report.checks}
    assert checks["collateral_pck_crl"].passed is expected["collateral"]["pck_not_revoked"]
    assert checks["collateral_tcb_info_signature"].passed
    assert checks["collateral_qe_identity_signature"].passed
    assert checks["collateral_tcb_info_validity"].passed
    assert checks["collateral_qe_identity_validity"].passed
    assert checks["qe_identity_level_matched"].passed
    if status in _MANIFEST_STATUS:
        assert not checks["tcb_level_matched"].passed
        assert report.valid is False
    elif expected["collateral"]["collateral_valid_at_verify_at"]:
        assert report.valid is True, report.error


def test_collateral_outside_its_window_fails_on_validity() -> None:
    vector = next(v for v in WITH_TCB if v["file"] == "tdx-v4-phala-1.bin")
    window = vector["expected"]["collateral"]["collateral_validity_window"]
    late = at(window[1]) + timedelta(days=1)
    report = verify_evidence(
        vector_bytes(vector["file"]), at=late, collateral=collateral_bytes_for(vector)
    )
    assert report.valid is False
    failed = {check.name for check in report.failed_checks()}
    assert "collateral_tcb_info_validity" in failed
    assert "collateral_pck_crl" in failed
    assert "pck_chain_validity" not in failed
    assert report.tcb_status == "UpToDate", "the status still derives from signed collateral"


def test_go_tdx_guest_collateral_has_expired_in_2053() -> None:
    vector = next(v for v in WITH_TCB if v["file"] == "tdx-v4-go-tdx-guest-1.bin")
    report = verify_evidence(
        vector_bytes(vector["file"]),
        at=at("2053-07-01T00:00:00Z"),
        collateral=collateral_bytes_for(vector),
    )
    check = report.check("collateral_tcb_info_validity")
    assert check is not None and not check.passed
    assert "expired" in check.detail


def test_partial_collateral_gives_no_status() -> None:
    vector = next(v for v in DCAP if v["file"] == "tdx-v5-go-tdx-guest-1.bin")
    assert collateral_files_for(vector)[0] == "collateral-go-tdx-guest-tcbinfo-90c06f000000.json"
    report = _verify(vector, vector["expected"]["verify_at"], collateral_bytes_for(vector))
    assert report.tcb_status is None
    failed = {check.name for check in report.failed_checks()}
    assert {"collateral_qe_identity", "collateral_pck_crl", "collateral_root_ca_crl"} <= failed


class TestIntelSampleWithTestRoot:
    """The Intel sample quote is signed under a test root named like the real one."""

    vector = next(v for v in DCAP if v["file"] == "sgx-v3-intel-sample-1.bin")
    sample_chain = vector_bytes("intel-sample-pck-cert.pem") + vector_bytes(
        "intel-sample-pck-sign-chain.pem"
    )

    def test_quote_without_chain_is_refused(self) -> None:
        report = _verify(self.vector, self.vector["expected"]["verify_at"])
        assert report.valid is False
        check = report.check("pck_chain_present")
        assert check is not None and not check.passed
        assert "type 1" in check.detail
        quote_signature = report.check("quote_signature")
        assert quote_signature is not None and quote_signature.passed

    def test_same_named_test_root_is_not_trusted(self) -> None:
        report = verify_dcap_quote(
            vector_bytes(self.vector["file"]),
            at=at(self.vector["expected"]["verify_at"]),
            anchors=default_trust_anchors(),
            collateral=[],
            pck_chain_pem=self.sample_chain,
        )
        checks = {check.name: check for check in report.checks}
        assert checks["quote_signature"].passed
        assert checks["qe_report_signature"].passed
        assert checks["pck_chain_signatures"].passed
        assert not checks["pck_chain_root_pinned"].passed
        assert "CN=Intel SGX Root CA" in checks["pck_chain_root_pinned"].detail
        assert self.vector["expected"]["sample_root_sha256_of_der"] in (
            checks["pck_chain_root_pinned"].detail
        )
        assert report.valid is False

    def test_test_root_passes_only_when_named_explicitly(self) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding

        test_root = x509.load_pem_x509_certificates(self.sample_chain)[-1]
        anchors = default_trust_anchors().with_extra_roots([test_root.public_bytes(Encoding.DER)])
        report = verify_dcap_quote(
            vector_bytes(self.vector["file"]),
            at=at(self.vector["expected"]["verify_at"]),
            anchors=anchors,
            collateral=[],
            pck_chain_pem=self.sample_chain,
        )
        assert report.valid is True, report.error
