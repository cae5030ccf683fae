"""Verify Intel DCAP quotes (SGX v3, TDX v4/v5, and tee-agent's simulated TDX quotes).

The checks follow Intel's quote verification flow (and go-tdx-guest's `verify` package):
1. the quote signature by the attestation key over header and body (v5: with descriptor);
2. the QE report's report_data binds SHA-256(attestation key || QE authentication data);
3. the QE report signature by the PCK leaf certificate;
4. the PCK chain up to a pinned root, every certificate valid at the caller's time;
5. with collateral: its signatures, chains, CRLs and validity, then the TCB status.
Steps 2 to 4 cover bytes a platform's QE repeats in every quote (the key certification),
and step 5 the collateral: their outcome is worked out once per exact bytes and cached, so
a quote from a known platform costs one ECDSA verification (step 1) and the time checks,
which are judged against the caller's time on every call.
Verification applies no policy: whether a TCB status or measurement is acceptable is
decided in `attestation.policy`.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
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
    KeyCertification,
    SgxReportBody,
    TdReport10,
    parse_dcap_quote,
    parse_key_certification,
)
from attestation.report import Check, CheckList, TeeKind, VerificationReport
from attestation.trust import MALFORMED_X509, TrustAnchors
from attestation.x509chain import (
    ChainAssessment,
    assess_chain,
    chain_validity_check,
    load_certificate,
    public_key_of,
    static_chain_checks,
)

_ZERO32 = bytes(32)
_TD_MEASUREMENTS = ("mr_td", "rtmr0", "rtmr1", "rtmr2", "rtmr3")
_SGX_MEASUREMENTS = ("mr_enclave", "mr_signer")
_SIMULATED_ROOT_HINT = (
    "this is a tee-agent simulated root: it is trusted only when passed "
    "explicitly (--trust-root <sim dir>/root.pem)"
)


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
    certified = _certified_key(
        quote.key_certification.raw, quote.header.version, pck_chain_pem, anchors.dcap_roots
    )
    checks = CheckList()
    checks.append(_quote_signature_check(quote, certified.attestation_key))
    checks.extend(certified.checks)
    chain = certified.chain
    tee: TeeKind = "tdx" if quote.is_tdx else "sgx"
    if chain is not None:
        checks.append(chain_validity_check(chain, at, CheckName.PCK_CHAIN_VALIDITY))
        if chain.simulated:
            tee = "sim"

    tcb_status: str | None = None
    advisory_ids: list[str] = []
    if collateral:
        bundle = load_intel_collateral(collateral)
        if chain is None:
            checks.add(CheckName.COLLATERAL_APPLICABLE, False, "collateral needs the PCK chain")
        else:
            outcome = evaluate_collateral(quote, chain, bundle, roots=anchors.dcap_roots, at=at)
            checks.extend(outcome.checks)
            tcb_status, advisory_ids = outcome.tcb_status, list(outcome.advisory_ids)

    fields = quote_fields(quote)
    return VerificationReport(
        valid=checks.all_passed,
        tee=tee,
        version=quote.header.version,
        report_data=fields["report_data"],
        measurements=_measurements(quote, fields),
        debug=quote.body.debug,
        fields=fields,
        tcb_status=tcb_status,
        advisory_ids=advisory_ids,
        policy_ok=None,
        checks=checks.items,
        error=checks.first_failure(),
    )


def _quote_signature_check(quote: DcapQuote, key: ec.EllipticCurvePublicKey | None) -> Check:
    signed = len(quote.signed_region)
    if key is None:
        return Check(
            name=CheckName.QUOTE_SIGNATURE,
            passed=False,
            detail="the attestation public key is not a point on P-256",
        )
    if verify_raw_signature(key, quote.quote_signature, quote.signed_region):
        return _quote_signature_verified(signed)
    return Check(
        name=CheckName.QUOTE_SIGNATURE,
        passed=False,
        detail="the quote signature does not verify with the attestation key over the header "
        f"and report body (bytes [0, {signed}))",
    )


@functools.lru_cache(maxsize=8)
def _quote_signature_verified(signed: int) -> Check:
    # One passed check per length of the signed region (checks are immutable, so shared).
    return Check(
        name=CheckName.QUOTE_SIGNATURE,
        passed=True,
        detail=f"attestation key signs bytes [0, {signed}) of the quote",
    )


@dataclass(frozen=True)
class _CertifiedKey:
    """What a quote's key certification proves, whatever the quote body and the time."""

    attestation_key: ec.EllipticCurvePublicKey | None
    # The QE report binding, then PCK_CHAIN_PRESENT (failed) or the QE report signature and
    # the PCK chain's signature and pinned-root checks; its validity depends on the time.
    checks: tuple[Check, ...]
    chain: ChainAssessment | None


@functools.lru_cache(maxsize=256)
def _certified_key(
    raw: bytes, version: int, supplied_pem: bytes | None, roots: frozenset[bytes]
) -> _CertifiedKey:
    """Judge a quote's key certification (signature data after the quote signature).

    Cached by its exact bytes, the supplied chain and the roots: a platform's QE repeats the
    bytes in every quote, so the QE report signature and the PCK chain are verified once per
    platform. Only results are cached: an input that raises (a PCK chain that cannot be
    read) raises again on every call, and a failed check is cached as that failed check.

    Raises:
        QuoteFormatError: the bytes cannot be parsed, or the PCK chain cannot be read.
    """
    certification = parse_key_certification(raw, version)
    checks = CheckList()
    checks.add(*_qe_binding_check(certification))
    chain = _pck_chain(certification, supplied_pem, roots)
    if chain is None:
        checks.add(
            CheckName.PCK_CHAIN_PRESENT,
            False,
            f"certification data type {certification.certification_data_type} carries no PCK "
            f"certificate chain (type {CERT_TYPE_PCK_CHAIN} expected), and none was supplied",
        )
    else:
        checks.add(*_qe_report_signature_check(certification, chain))
        hint = _SIMULATED_ROOT_HINT if chain.simulated else None
        checks.extend(static_chain_checks(chain, PCK_CHAIN_CHECKS, hint))
    return _CertifiedKey(
        attestation_key=_attestation_key(certification.attestation_key),
        checks=tuple(checks.items),
        chain=chain,
    )


def _qe_binding_check(certification: KeyCertification) -> tuple[CheckName, bool, str]:
    expected = hashlib.sha256(certification.attestation_key + certification.qe_auth_data).digest()
    found = certification.qe_report.report_data
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
    certification: KeyCertification, chain: ChainAssessment
) -> tuple[CheckName, bool, str]:
    leaf_key = public_key_of(chain.leaf)
    if isinstance(leaf_key, ec.EllipticCurvePublicKey) and verify_raw_signature(
        leaf_key, certification.qe_report_signature, certification.qe_report_raw
    ):
        return (CheckName.QE_REPORT_SIGNATURE, True, "the PCK leaf certificate signs the QE report")
    return (
        CheckName.QE_REPORT_SIGNATURE,
        False,
        "the QE report signature does not verify with the PCK leaf certificate's key",
    )


def _pck_chain(
    certification: KeyCertification, supplied_pem: bytes | None, roots: frozenset[bytes]
) -> ChainAssessment | None:
    if certification.certification_data_type == CERT_TYPE_PCK_CHAIN:
        pem = certification.certification_data
    elif supplied_pem is not None:
        pem = supplied_pem
    else:
        return None
    return assess_chain(_pem_chain_der(pem), roots)


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


def _attestation_key(raw_xy: bytes) -> ec.EllipticCurvePublicKey | None:
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + raw_xy)
    except ValueError:
        return None


def _measurements(quote: DcapQuote, fields: dict[str, Any]) -> dict[str, str]:
    """The measurement registers, as hex: taken from the quote's `fields` (`quote_fields`)."""
    names = _TD_MEASUREMENTS if isinstance(quote.body, TdReport10) else _SGX_MEASUREMENTS
    return {name: fields[name] for name in names}


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
    for name, value in vars(quote.body).items():
        fields[name] = value.hex() if isinstance(value, bytes) else value
    debug_name = (
        "attributes_debug" if isinstance(quote.body, SgxReportBody) else "td_attributes_debug"
    )
    fields[debug_name] = quote.body.debug
    return fields
