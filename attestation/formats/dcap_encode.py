"""Models back to bytes: TD reports, enclave reports, and a signed TDX v4 quote.

The inverse of `attestation.formats.dcap` for the one layout tee-agent makes itself: the
simulated TEE signs its quotes here exactly as a DCAP quoting enclave does (attestation key
over header and body; QE report binding the attestation key, signed by the PCK key), so
that the verifier checks them on the same path as real quotes.
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from attestation.formats.dcap import (
    ATT_KEY_TYPE_ECDSA_P256,
    CERT_TYPE_PCK_CHAIN,
    CERT_TYPE_QE_REPORT,
    SGX_REPORT_BODY_SIZE,
    TD_REPORT10_SIZE,
    TEE_TYPE_TDX,
    SgxReportBody,
    TdReport10,
)

# Intel's QE vendor ID (ECDSA Quote Library API A.4.1): what a DCAP quoting enclave puts in
# every quote header.
INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")


def encode_td_report10(body: TdReport10) -> bytes:
    """The 584-byte TD quote body for TDX 1.0."""
    encoded = b"".join(
        getattr(body, name)
        for name in (
            "tee_tcb_svn",
            "mr_seam",
            "mr_signer_seam",
            "seam_attributes",
            "td_attributes",
            "xfam",
            "mr_td",
            "mr_config_id",
            "mr_owner",
            "mr_owner_config",
            "rtmr0",
            "rtmr1",
            "rtmr2",
            "rtmr3",
            "report_data",
        )
    )
    if len(encoded) != TD_REPORT10_SIZE:
        raise ValueError(f"TD report fields add up to {len(encoded)} bytes, not {TD_REPORT10_SIZE}")
    return encoded


def encode_sgx_report_body(body: SgxReportBody) -> bytes:
    """The 384-byte SGX enclave report body."""
    encoded = b"".join(
        (
            body.cpu_svn,
            body.misc_select,
            bytes(12),
            body.isv_ext_prod_id,
            body.attributes,
            body.mr_enclave,
            bytes(32),
            body.mr_signer,
            bytes(32),
            body.config_id,
            body.isv_prod_id.to_bytes(2, "little"),
            body.isv_svn.to_bytes(2, "little"),
            body.config_svn.to_bytes(2, "little"),
            bytes(42),
            body.isv_family_id,
            body.report_data,
        )
    )
    if len(encoded) != SGX_REPORT_BODY_SIZE:
        raise ValueError(
            f"enclave report fields add up to {len(encoded)} bytes, not {SGX_REPORT_BODY_SIZE}"
        )
    return encoded


def build_tdx_v4_quote(
    *,
    body: TdReport10,
    attestation_key: ec.EllipticCurvePrivateKey,
    qe_report: SgxReportBody,
    pck_key: ec.EllipticCurvePrivateKey,
    pck_chain_pem: bytes,
    qe_auth_data: bytes = bytes(range(32)),
    header_user_data: bytes = bytes(20),
    qe_svn: int = 0,
    pce_svn: int = 0,
) -> bytes:
    """A TDX v4 quote over `body`, signed as a DCAP quoting enclave signs it.

    `qe_report`'s report_data is replaced by the binding of the attestation key
    (SHA-256(attestation key || QE authentication data) || 32 zero bytes) before the PCK key
    signs it. `pck_chain_pem` is the PEM chain, leaf first, that ends at the trust root.

    Raises:
        ValueError: a field has the wrong size, or a key is not on P-256.
    """
    if not isinstance(attestation_key.curve, ec.SECP256R1) or not isinstance(
        pck_key.curve, ec.SECP256R1
    ):
        raise ValueError("the attestation key and the PCK key must be P-256 keys")
    if len(header_user_data) != 20:
        raise ValueError(f"header user data must be 20 bytes, got {len(header_user_data)}")
    header = b"".join(
        (
            (4).to_bytes(2, "little"),
            ATT_KEY_TYPE_ECDSA_P256.to_bytes(2, "little"),
            TEE_TYPE_TDX.to_bytes(4, "little"),
            qe_svn.to_bytes(2, "little"),
            pce_svn.to_bytes(2, "little"),
            INTEL_QE_VENDOR_ID,
            header_user_data,
        )
    )
    signed_region = header + encode_td_report10(body)
    attestation_public = _raw_public_key(attestation_key)
    binding = hashlib.sha256(attestation_public + qe_auth_data).digest() + bytes(32)
    qe_report_raw = encode_sgx_report_body(qe_report.model_copy(update={"report_data": binding}))
    pck_certification = _certification_data(CERT_TYPE_PCK_CHAIN, pck_chain_pem)
    qe_certification = b"".join(
        (
            qe_report_raw,
            _raw_signature(pck_key, qe_report_raw),
            len(qe_auth_data).to_bytes(2, "little"),
            qe_auth_data,
            pck_certification,
        )
    )
    signature_data = b"".join(
        (
            _raw_signature(attestation_key, signed_region),
            attestation_public,
            _certification_data(CERT_TYPE_QE_REPORT, qe_certification),
        )
    )
    return signed_region + len(signature_data).to_bytes(4, "little") + signature_data


def _certification_data(kind: int, data: bytes) -> bytes:
    return kind.to_bytes(2, "little") + len(data).to_bytes(4, "little") + data


def _raw_public_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    numbers = key.public_key().public_numbers()
    return numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")


def _raw_signature(key: ec.EllipticCurvePrivateKey, message: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(message, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")
