"""Verify Intel DCAP quotes (SGX v3, TDX v4/v5, and tee-agent's simulated TDX quotes).

The checks follow Intel's quote verification flow (and go-tdx-guest's `verify` package):
1. the quote signature by the attestation key over header and body (v5: with descriptor);
2. the QE report's report_data binds SHA-256(attestation key || QE authentication data);
3. the QE report signature by the PCK leaf certificate;
4. the PCK chain up to a pinned root, every certificate valid at the caller's time;
5. with collateral: its signatures, chains, CRLs and validity, then the TCB status.
Verification applies no policy: whether a TCB status or measurement is acceptable is
decided in `attestation.policy`.
"""

from __future__ import annotations

import functools
import hashlib
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from attestation.checks import PCK_CHAIN_CHECKS, CheckName
from attestation.collateral import load_intel_collateral
from attestation.collateral_checks import evaluate_collateral
from attestation.ecdsa import verify_raw_signature
from attestation.errors import QuoteFormatError
from attestation.formats.dcap import (
    CERT_TYPE_PCK_CHAIN,
    DcapQuote,
    SgxReportBody,
    TdReport10,
    parse_dcap_quote,
)
from attestation.report import CheckList, TeeKind, VerificationReport
from attestation.trust import MALFORMED_X509, TrustAnchors
from attestation.x509chain import (
    ChainAssessment,
    add_chain_checks,
    assess_chain,
    load_certificate,
    public_key_of,
)

_ZERO32 = bytes(32)


def verify_dcap_quote(
    data: bytes,
    *,
    at: datetime,
    anchors: TrustAnchors,
    collateral: list[bytes],
    pck_chain_pem: bytes | None = None,
) -> VerificationReport:
    """Verify a DCAP quote's signatures and PCK chain at `at`, and its collateral if given.

    `pck_chain_pem` supplies the PCK chain (leaf first) for quotes whose certification data
    does not carry it (types 1 to 4); a chain inside the quote always takes precedence.

    Raises:
        QuoteFormatError: the quote cannot be parsed, or its PCK chain cannot be read.
        CollateralFormatError: a collateral file cannot be read.
    """
    quote = parse_dcap_quote(data)
    checks = CheckList()
    checks.add(*_quote_signature_check(quote))
    checks.add(*_qe_binding_check(quote))

    chain = _pck_chain(quote, pck_chain_pem, anchors)
    if chain is None:
        checks.add(
            CheckName.PCK_CHAIN_PRESENT,
            False,
            f"certification data type {quote.certification_data_type} carries no PCK "
            f"certificate chain (type {CERT_TYPE_PCK_CHAIN} expected), and none was supplied",
        )
        tee: TeeKind = "tdx" if quote.is_tdx else "sgx"
    else:
        checks.add(*_qe_report_signature_check(quote, chain))
        simulated = chain.simulated
        tee = "sim" if simulated else ("tdx" if quote.is_tdx else "sgx")
        add_chain_checks(
            checks,
            chain,
            at,
            PCK_CHAIN_CHECKS,
            untrusted_hint=(
                "this is a tee-agent simulated root: it is trusted only when passed "
                "explicitly (--trust-root <sim dir>/root.pem)"
                if simulated
                else None
            ),
        )

    tcb_status: str | None = None
    advisory_ids: list[str] = []
    if collateral:
        bundle = load_intel_collateral(collateral)
        if chain is None:
            checks.add(CheckName.COLLATERAL_APPLICABLE, False, "collateral needs the PCK chain")
        else:
            outcome = evaluate_collateral(quote, chain, bundle, roots=anchors.dcap_roots, at=at)
            for check in outcome.checks:
                checks.append(check)
            tcb_status, advisory_ids = outcome.tcb_status, outcome.advisory_ids

    return VerificationReport(
        valid=checks.all_passed,
        tee=tee,
        version=quote.header.version,
        report_data=quote.body.report_data.hex(),
        measurements=_measurements(quote),
        debug=quote.body.debug,
        fields=quote_fields(quote),
        tcb_status=tcb_status,
        advisory_ids=advisory_ids,
        policy_ok=None,
        checks=checks.items,
        error=checks.first_failure(),
    )


def _quote_signature_check(quote: DcapQuote) -> tuple[CheckName, bool, str]:
    key = _attestation_key(quote.attestation_key)
    if key is None:
        return (
            CheckName.QUOTE_SIGNATURE,
            False,
            "the attestation public key is not a point on P-256",
        )
    if verify_raw_signature(key, quote.quote_signature, quote.signed_region):
        return (
            CheckName.QUOTE_SIGNATURE,
            True,
            f"attestation key signs bytes [0, {len(quote.signed_region)}) of the quote",
        )
    return (
        CheckName.QUOTE_SIGNATURE,
        False,
        "the quote signature does not verify with the attestation key over the header and "
        f"report body (bytes [0, {len(quote.signed_region)}))",
    )


def _qe_binding_check(quote: DcapQuote) -> tuple[CheckName, bool, str]:
    expected = hashlib.sha256(quote.attestation_key + quote.qe_auth_data).digest()
    found = quote.qe_report.report_data
    if found[:32] == expected and found[32:] == _ZERO32:
        return (
            CheckName.QE_REPORT_DATA_BINDS_ATTESTATION_KEY,
            True,
            "QE report_data = SHA-256(attestation key || QE authentication data) || zeros",
        )
    return (
        CheckName.QE_REPORT_DATA_BINDS_ATTESTATION_KEY,
        False,
        "QE report_data does not match SHA-256 over the concatenation of the attestation key "
        f"and QE authentication data: expected {expected.hex()} followed by 32 zero bytes, "
        f"found {found.hex()}",
    )


def _qe_report_signature_check(
    quote: DcapQuote, chain: ChainAssessment
) -> tuple[CheckName, bool, str]:
    if _qe_report_signed_by(quote.qe_report_raw, quote.qe_report_signature, chain):
        return (CheckName.QE_REPORT_SIGNATURE, True, "the PCK leaf certificate signs the QE report")
    return (
        CheckName.QE_REPORT_SIGNATURE,
        False,
        "the QE report signature does not verify with the PCK leaf certificate's key",
    )


@functools.lru_cache(maxsize=1024)
def _qe_report_signed_by(report: bytes, signature: bytes, chain: ChainAssessment) -> bool:
    """The QE report's signature check, cached: a platform's QE report repeats across quotes."""
    leaf_key = public_key_of(chain.leaf)
    if not isinstance(leaf_key, ec.EllipticCurvePublicKey):
        return False
    return verify_raw_signature(leaf_key, signature, report)


def _pck_chain(
    quote: DcapQuote, supplied_pem: bytes | None, anchors: TrustAnchors
) -> ChainAssessment | None:
    if quote.certification_data_type == CERT_TYPE_PCK_CHAIN:
        pem = quote.certification_data
    elif supplied_pem is not None:
        pem = supplied_pem
    else:
        return None
    return assess_chain(_pem_chain_der(pem), anchors.dcap_roots)


@functools.lru_cache(maxsize=256)
def _pem_chain_der(pem: bytes) -> tuple[bytes, ...]:
    try:
        certificates = x509.load_pem_x509_certificates(pem.rstrip(b"\x00"))
        chain = tuple(cert.public_bytes(Encoding.DER) for cert in certificates)
        for der in chain:
            load_certificate(der)
    except MALFORMED_X509 as exc:
        raise QuoteFormatError(f"the PCK certificate chain cannot be read as PEM: {exc}") from None
    return chain


@functools.lru_cache(maxsize=1024)
def _attestation_key(raw_xy: bytes) -> ec.EllipticCurvePublicKey | None:
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + raw_xy)
    except ValueError:
        return None


def _measurements(quote: DcapQuote) -> dict[str, str]:
    body = quote.body
    if isinstance(body, TdReport10):
        return {
            "mr_td": body.mr_td.hex(),
            "rtmr0": body.rtmr0.hex(),
            "rtmr1": body.rtmr1.hex(),
            "rtmr2": body.rtmr2.hex(),
            "rtmr3": body.rtmr3.hex(),
        }
    return {"mr_enclave": body.mr_enclave.hex(), "mr_signer": body.mr_signer.hex()}


def quote_fields(quote: DcapQuote) -> dict[str, Any]:
    """Every field of the header and report body by its specification name (bytes as hex)."""
    header = quote.header
    fields: dict[str, Any] = {
        "version": header.version,
        "att_key_type": header.att_key_type,
        "tee_type": hex(header.tee_type),
        "qe_svn": header.qe_svn,
        "pce_svn": header.pce_svn,
        "qe_vendor_id": header.qe_vendor_id.hex(),
        "header_user_data": header.user_data.hex(),
    }
    if header.version == 5:
        fields["body_type"] = quote.body_type
    for name, value in quote.body:
        fields[name] = value.hex() if isinstance(value, bytes) else value
    debug_name = (
        "attributes_debug" if isinstance(quote.body, SgxReportBody) else "td_attributes_debug"
    )
    fields[debug_name] = quote.body.debug
    return fields
