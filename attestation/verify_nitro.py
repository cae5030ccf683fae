"""Verify an AWS Nitro Enclaves attestation document: COSE signature, then the AWS chain.

Checks, in order: `cose_algorithm` (the protected header names ES384), `cose_signature`
(ECDSA P-384 / SHA-384 over the RFC 9052 section 4.4 Sig_structure, with the key of the
document's `certificate`), then `nitro_chain_signatures`, `nitro_chain_root_pinned` and
`nitro_chain_validity` for the chain certificate <- cabundle[-1] <- ... <- cabundle[0], which
must end at a pinned AWS Nitro root (compared by bytes).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from attestation.checks import NITRO_CHAIN_CHECKS, CheckName
from attestation.ecdsa import verify_raw_signature
from attestation.formats.nitro import COSE_ALG_ES384, NitroDocument, parse_nitro_document
from attestation.report import CheckList, VerificationReport
from attestation.timefmt import format_time
from attestation.trust import TrustAnchors, quiet_serial_number_warning
from attestation.x509chain import add_chain_checks, assess_chain

# RFC 9052 section 4.4: Sig_structure context string for COSE_Sign1.
SIG_STRUCTURE_CONTEXT = "Signature1"
# RFC 9053 section 2.1: an ES384 signature is r || s, each 48 bytes big-endian.
ES384_COMPONENT_SIZE = 48
# The name cryptography gives the P-384 curve.
_P384 = "secp384r1"


def verify_nitro_document(
    evidence: bytes, *, at: datetime, anchors: TrustAnchors
) -> VerificationReport:
    """Verify a Nitro attestation document at time `at` against the pinned AWS roots.

    A document whose protected header names another algorithm than ES384 parses, and fails
    the `cose_algorithm` check.

    Raises:
        NitroFormatError: the evidence cannot be parsed as an attestation document.
        ValueError: `at` has no timezone (a caller error, not an evidence problem).
    Evidence that parses never makes this raise: every problem becomes a failed check.
    """
    if at.tzinfo is None:
        raise ValueError("verify_nitro_document: `at` must be timezone-aware (UTC)")
    document = parse_nitro_document(evidence)
    checks = CheckList()
    if document.algorithm == COSE_ALG_ES384:
        checks.add(CheckName.COSE_ALGORITHM, True, "protected header alg is -35 (ES384)")
    else:
        found = "absent" if document.algorithm is None else repr(document.algorithm)
        checks.add(
            CheckName.COSE_ALGORITHM,
            False,
            f"protected header alg is {found}; expected -35 (ES384)",
        )
    leaf, leaf_error = _load_certificate(document.certificate)
    passed, detail = _check_signature(document, leaf, leaf_error)
    checks.add(CheckName.COSE_SIGNATURE, passed, detail)
    _add_chain_checks(checks, document, anchors, at)
    return VerificationReport(
        valid=checks.all_passed,
        tee="nitro",
        version=None,
        report_data=document.user_data.hex() if document.user_data is not None else "",
        measurements={f"pcr{index}": value.hex() for index, value in document.pcrs.items()},
        debug=_pcr0_all_zero(document),
        fields=nitro_fields(document, leaf),
        tcb_status=None,
        advisory_ids=[],
        policy_ok=None,
        checks=checks.items,
        error=checks.first_failure(),
        evidence_time=document.timestamp // 1000,
    )


def nitro_fields(document: NitroDocument, leaf: x509.Certificate | None) -> dict[str, object]:
    """The document's fields as a report shows them (hex for bytes, None when absent)."""
    return {
        "module_id": document.module_id,
        "digest": document.digest,
        "timestamp_ms": document.timestamp,
        "timestamp_iso": _iso_from_ms(document.timestamp),
        "pcrs": {str(index): value.hex() for index, value in document.pcrs.items()},
        "public_key": _hex_or_none(document.public_key),
        "user_data": _hex_or_none(document.user_data),
        "nonce": _hex_or_none(document.nonce),
        "pcr0_all_zero_debug_mode": _pcr0_all_zero(document),
        "certificate_sha256": hashlib.sha256(document.certificate).hexdigest(),
        "certificate_subject": _subject(leaf),
        "cabundle_length": len(document.cabundle),
        "cabundle_sha256": [hashlib.sha256(der).hexdigest() for der in document.cabundle],
    }


def sig_structure(document: NitroDocument) -> bytes:
    """The bytes COSE_Sign1 signs: CBOR ["Signature1", protected, b"", payload]."""
    return bytes(
        cbor2.dumps([SIG_STRUCTURE_CONTEXT, document.protected_header, b"", document.payload])
    )


def _check_signature(
    document: NitroDocument, leaf: x509.Certificate | None, leaf_error: str
) -> tuple[bool, str]:
    if leaf is None:
        return False, f"the document's certificate cannot be read as DER X.509: {leaf_error}"
    subject = _subject(leaf)
    try:
        key = leaf.public_key()
    except Exception as exc:  # an unsupported or malformed key is a failed check
        return False, f"the key of certificate '{subject}' cannot be read: {exc}"
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != _P384:
        kind = key.curve.name if isinstance(key, ec.EllipticCurvePublicKey) else type(key).__name__
        return False, f"certificate '{subject}' has a {kind} key; ES384 needs an ECDSA P-384 key"
    signature = document.signature
    if len(signature) != 2 * ES384_COMPONENT_SIZE:
        return False, (
            f"signature is {len(signature)} bytes; ES384 needs {2 * ES384_COMPONENT_SIZE} "
            "(r || s, 48 bytes each)"
        )
    if not verify_raw_signature(key, signature, sig_structure(document), hashes.SHA384()):
        return False, (
            "ES384 signature over the COSE Sig_structure does not verify with the key of "
            f"certificate '{subject}'"
        )
    return True, (
        f"ES384 signature over the COSE Sig_structure verifies with the key of certificate "
        f"'{subject}'"
    )


def _add_chain_checks(
    checks: CheckList, document: NitroDocument, anchors: TrustAnchors, at: datetime
) -> None:
    # attestation_process.md 3.2.3: cabundle is [ROOT, INTERM_1, ..., INTERM_N]; the chain to
    # check is [certificate, INTERM_N, ..., INTERM_1, ROOT].
    chain = (document.certificate, *reversed(document.cabundle))
    trusted = anchors.nitro_trusted
    try:
        with quiet_serial_number_warning():
            assessment = assess_chain(chain, trusted)
    except Exception as exc:  # an unreadable certificate fails the chain, never the caller
        reason = f"a certificate of the chain cannot be read as DER X.509: {exc}"
        checks.add(NITRO_CHAIN_CHECKS.signatures, False, reason)
        pinned = chain[-1] in trusted
        checks.add(
            NITRO_CHAIN_CHECKS.root_pinned,
            pinned,
            "cabundle[0] is byte-identical to a trusted root"
            if pinned
            else "cabundle[0] is not one of the trusted roots (compared by bytes)",
        )
        checks.add(NITRO_CHAIN_CHECKS.validity, False, f"validity cannot be judged: {reason}")
        return
    add_chain_checks(checks, assessment, at, NITRO_CHAIN_CHECKS)


def _load_certificate(der: bytes) -> tuple[x509.Certificate | None, str]:
    try:
        with quiet_serial_number_warning():
            return x509.load_der_x509_certificate(der), ""
    except Exception as exc:  # malformed DER (or a warning raised as an error) is a failure
        return None, str(exc)[:200]


def _subject(certificate: x509.Certificate | None) -> str | None:
    if certificate is None:
        return None
    try:
        return certificate.subject.rfc4514_string()
    except Exception:  # a malformed name must not stop the report
        return None


def _pcr0_all_zero(document: NitroDocument) -> bool:
    # AWS: a debug-mode enclave reports PCR0 (and PCR1, PCR2) as all zeros.
    pcr0 = document.pcrs.get(0)
    return pcr0 is not None and not any(pcr0)


def _iso_from_ms(timestamp_ms: int) -> str | None:
    try:
        return format_time(datetime.fromtimestamp(timestamp_ms // 1000, tz=UTC))
    except (OverflowError, ValueError, OSError):
        return None


def _hex_or_none(value: bytes | None) -> str | None:
    return None if value is None else value.hex()
