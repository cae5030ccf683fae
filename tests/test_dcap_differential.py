"""Differential: our verdict and TCB status equal dcap-qvl's on every vector with collateral."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from attestation.collateral import load_intel_collateral
from attestation.verifier import verify_evidence
from tests.dcap_collateral import TCB_SIGNING_CERT, collateral_bytes_for, collateral_files_for
from tests.manifest import at, vector_bytes, vector_ids, vectors

dcap_qvl = pytest.importorskip(
    "dcap_qvl", reason="dcap-qvl is a dev dependency (pip install -e '.[dev]')"
)

WITH_COLLATERAL = [
    v
    for v in vectors()
    # Vectors whose collateral is complete (TCB Info, QE Identity, both CRLs).
    if v["type"].startswith("intel-") and "tcb" in v["expected"]
]
INTEL_ROOT = "intel-sgx-root-ca.der"
PLATFORM_CA = "intel-sgx-pck-platform-ca.der"


def _pem(*names: str) -> str:
    return "".join(
        x509.load_der_x509_certificate(vector_bytes(name)).public_bytes(Encoding.PEM).decode()
        for name in names
    )


def reference_collateral(vector: dict[str, Any]) -> Any:
    """The same collateral as a dcap-qvl QuoteCollateralV3."""
    names = collateral_files_for(vector)
    if len(names) == 1:
        return dcap_qvl.QuoteCollateralV3.from_json(vector_bytes(names[0]).decode())
    bundle = load_intel_collateral(collateral_bytes_for(vector))
    assert bundle.tcb_info is not None and bundle.qe_identity is not None
    crls = {x509.load_der_x509_crl(der).issuer.rfc4514_string(): der for der in bundle.crls}
    root_crl = next(der for issuer, der in crls.items() if "Root CA" in issuer)
    pck_crl = next(der for issuer, der in crls.items() if "Root CA" not in issuer)
    return dcap_qvl.QuoteCollateralV3(
        pck_crl_issuer_chain=_pem(PLATFORM_CA, INTEL_ROOT),
        root_ca_crl=root_crl,
        pck_crl=pck_crl,
        tcb_info_issuer_chain=_pem(TCB_SIGNING_CERT, INTEL_ROOT),
        tcb_info=bundle.tcb_info.text.decode(),
        tcb_info_signature=bundle.tcb_info.signature,
        qe_identity_issuer_chain=_pem(TCB_SIGNING_CERT, INTEL_ROOT),
        qe_identity=bundle.qe_identity.text.decode(),
        qe_identity_signature=bundle.qe_identity.signature,
    )


def reference_verdict(vector: dict[str, Any], when: datetime) -> tuple[bool, str | None]:
    try:
        result = dcap_qvl.verify(
            vector_bytes(vector["file"]), reference_collateral(vector), int(when.timestamp())
        )
    except ValueError:
        return False, None
    return True, result.status


def _times(vector: dict[str, Any]) -> list[datetime]:
    verify_at = at(vector["expected"]["verify_at"])
    window = vector["expected"]["collateral"].get("collateral_validity_window")
    times = [verify_at]
    if window:
        times += [at(window[0]) - timedelta(days=1), at(window[1]) + timedelta(days=1)]
    return times


@pytest.mark.parametrize("vector", WITH_COLLATERAL, ids=vector_ids(WITH_COLLATERAL))
def test_verdict_and_tcb_status_match_dcap_qvl(vector: dict[str, Any]) -> None:
    for when in _times(vector):
        reference_valid, reference_status = reference_verdict(vector, when)
        report = verify_evidence(
            vector_bytes(vector["file"]), at=when, collateral=collateral_bytes_for(vector)
        )
        assert report.valid is reference_valid, (when, report.error)
        if reference_valid:
            assert report.tcb_status == reference_status, when


def test_the_differential_covers_every_collateral_set() -> None:
    assert {v["file"] for v in WITH_COLLATERAL} >= {
        "tdx-v4-phala-1.bin",
        "tdx-v5-phala-1.bin",
        "sgx-v3-phala-1.bin",
        "tdx-v4-automata-1.bin",
        "tdx-v4-go-tdx-guest-1.bin",
    }
    # At least one vector must verify on both sides, or the comparison proves little.
    assert any(reference_verdict(v, at(v["expected"]["verify_at"]))[0] for v in WITH_COLLATERAL)
