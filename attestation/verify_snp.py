"""Verify an AMD SEV-SNP attestation report with its VCEK certificate and the AMD chain.

Checks, in order: `report_signature` (ECDSA P-384 / SHA-384 over report bytes [0, 0x2A0) with
the VCEK key), `vcek_chain_signatures`, `vcek_chain_root_pinned` and `vcek_chain_validity`
for VCEK <- ASK <- ARK (the ASK and ARK come from the trust anchors; the ARK is pinned by
bytes), `vcek_chip_id` (the VCEK's hwID extension equals the report's CHIP_ID) and `vcek_tcb`
(the VCEK's TCB extensions equal the report's REPORTED_TCB). Without a VCEK only
`report_signature` runs, and fails.

The AMD certificate extensions are from "Versioned Chip Endorsement Key (VCEK) Certificate
and KDS Interface Specification" (AMD publication 57230), section 3.1 "VCEK Certificate
Extensions".
"""

from __future__ import annotations

import functools
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from attestation.checks import VCEK_CHAIN_CHECKS, CheckName
from attestation.ecdsa import verify_raw_signature
from attestation.errors import CertificateChainError
from attestation.formats.der import (
    TAG_INTEGER,
    TAG_OCTET_STRING,
    DerError,
    decode_integer,
    decode_single,
)
from attestation.formats.snp import (
    SIGNATURE_ALGO_ECDSA_P384_SHA384,
    SnpReport,
    parse_snp_report,
)
from attestation.report import CheckList, VerificationReport
from attestation.trust import TrustAnchors, certificates_from_bytes, quiet_serial_number_warning
from attestation.x509chain import add_chain_checks, assess_chain

NO_VCEK_DETAIL = (
    "no VCEK certificate was given: pass it with --collateral (DER or PEM from AMD KDS)"
)

# AMD 57230 section 3.1: VCEK extension OIDs.
OID_BL_SPL = "1.3.6.1.4.1.3704.1.3.1"  # blSPL, INTEGER
OID_TEE_SPL = "1.3.6.1.4.1.3704.1.3.2"  # teeSPL, INTEGER
OID_SNP_SPL = "1.3.6.1.4.1.3704.1.3.3"  # snpSPL, INTEGER
OID_UCODE_SPL = "1.3.6.1.4.1.3704.1.3.8"  # ucodeSPL, INTEGER
OID_FMC_SPL = "1.3.6.1.4.1.3704.1.3.9"  # fmcSPL, INTEGER (Turin and later only)
OID_HW_ID = "1.3.6.1.4.1.3704.1.4"  # hwID: the CHIP_ID (64 bytes; 8 bytes on Turin)

# Byte index of each SPL in the 8-byte TCB_VERSION (SNP ABI spec, TCB_VERSION structure).
# Milan and Genoa: BOOT_LOADER 0, TEE 1, SNP 6, MICROCODE 7. Turin (recognised by the
# fmcSPL extension): FMC 0, BOOT_LOADER 1, TEE 2, SNP 3, MICROCODE 7.
_TCB_LAYOUT_MILAN_GENOA = (
    ("blSPL", OID_BL_SPL, 0),
    ("teeSPL", OID_TEE_SPL, 1),
    ("snpSPL", OID_SNP_SPL, 6),
    ("ucodeSPL", OID_UCODE_SPL, 7),
)
_TCB_LAYOUT_TURIN = (
    ("fmcSPL", OID_FMC_SPL, 0),
    ("blSPL", OID_BL_SPL, 1),
    ("teeSPL", OID_TEE_SPL, 2),
    ("snpSPL", OID_SNP_SPL, 3),
    ("ucodeSPL", OID_UCODE_SPL, 7),
)
# SIGNING_KEY 7: the report is not signed (SNP ABI spec, ATTESTATION_REPORT bits 4:2 at 48h).
_SIGNING_KEY_NONE = 7
_P384 = "secp384r1"
# hwID sizes: the 64-byte CHIP_ID (Milan, Genoa), its first 8 bytes (Turin).
_HW_ID_SIZES = (64, 8)


def verify_snp_report(
    evidence: bytes, *, at: datetime, anchors: TrustAnchors, vcek_der: bytes | None
) -> VerificationReport:
    """Verify an SEV-SNP report at time `at` with its VCEK (DER or PEM) and the AMD roots.

    Raises:
        SnpFormatError: the evidence cannot be parsed as an attestation report.
        ValueError: `at` has no timezone (a caller error, not an evidence problem).
    A report that parses never makes this raise: every problem becomes a failed check.
    """
    if at.tzinfo is None:
        raise ValueError("verify_snp_report: `at` must be timezone-aware (UTC)")
    report = parse_snp_report(evidence)
    checks = CheckList()
    if vcek_der is None:
        checks.add(CheckName.REPORT_SIGNATURE, False, NO_VCEK_DETAIL)
    else:
        vcek, vcek_bytes, problem = _load_vcek(vcek_der)
        if vcek is None:
            checks.add(
                CheckName.REPORT_SIGNATURE, False, f"the VCEK certificate cannot be read: {problem}"
            )
        else:
            checks.add(CheckName.REPORT_SIGNATURE, *_check_report_signature(report, vcek))
            _add_vcek_chain_checks(checks, vcek_bytes, anchors, at)
            checks.add(CheckName.VCEK_CHIP_ID, *_check_chip_id(report, vcek))
            checks.add(CheckName.VCEK_TCB, *_check_tcb(report, vcek))
    return VerificationReport(
        valid=checks.all_passed,
        tee="sev-snp",
        version=report.version,
        report_data=report.report_data.hex(),
        measurements={"measurement": report.measurement.hex()},
        debug=report.debug_allowed,
        fields=snp_fields(report),
        tcb_status=None,
        advisory_ids=[],
        policy_ok=None,
        checks=checks.items,
        error=checks.first_failure(),
    )


def snp_fields(report: SnpReport) -> dict[str, object]:
    """The report's fields as a report shows them: bytes as hex, TCBs as their raw bytes."""
    return {
        "version": report.version,
        "guest_svn": report.guest_svn,
        "policy_hex": hex(report.policy),
        "family_id": report.family_id.hex(),
        "image_id": report.image_id.hex(),
        "vmpl": report.vmpl,
        "signature_algo": report.signature_algo,
        "current_tcb_hex": report.current_tcb.hex(),
        "platform_info_hex": hex(report.platform_info),
        "author_key_en": report.author_key_en,
        "mask_chip_key": report.mask_chip_key,
        "signing_key": report.signing_key,
        "report_data": report.report_data.hex(),
        "measurement": report.measurement.hex(),
        "host_data": report.host_data.hex(),
        "id_key_digest": report.id_key_digest.hex(),
        "author_key_digest": report.author_key_digest.hex(),
        "report_id": report.report_id.hex(),
        "report_id_ma": report.report_id_ma.hex(),
        "reported_tcb_hex": report.reported_tcb.hex(),
        "cpuid_fam_id": report.cpuid_fam_id,
        "cpuid_mod_id": report.cpuid_mod_id,
        "cpuid_step": report.cpuid_step,
        "chip_id": report.chip_id.hex(),
        "committed_tcb_hex": report.committed_tcb.hex(),
        "current_build": report.current_build,
        "current_minor": report.current_minor,
        "current_major": report.current_major,
        "committed_build": report.committed_build,
        "committed_minor": report.committed_minor,
        "committed_major": report.committed_major,
        "launch_tcb_hex": report.launch_tcb.hex(),
        "launch_mit_vector_hex": _hex_or_none(report.launch_mit_vector),
        "current_mit_vector_hex": _hex_or_none(report.current_mit_vector),
    }


def _load_vcek(data: bytes) -> tuple[x509.Certificate | None, bytes, str]:
    """The VCEK (first certificate of DER or PEM input), its DER, or why it cannot be read."""
    try:
        with quiet_serial_number_warning():
            der = certificates_from_bytes(data, source="VCEK")[0]
            return x509.load_der_x509_certificate(der), der, ""
    except CertificateChainError as exc:
        return None, b"", str(exc)
    except Exception as exc:  # e.g. a warning raised as an error; never escape
        return None, b"", f"{type(exc).__name__}: {str(exc)[:200]}"


def _check_report_signature(report: SnpReport, vcek: x509.Certificate) -> tuple[bool, str]:
    if report.signing_key == _SIGNING_KEY_NONE:
        return False, "SIGNING_KEY is 7: the firmware did not sign this report"
    if report.signature_algo != SIGNATURE_ALGO_ECDSA_P384_SHA384:
        return False, (
            f"signature_algo is {report.signature_algo}; only "
            f"{SIGNATURE_ALGO_ECDSA_P384_SHA384} (ECDSA P-384 with SHA-384) is supported"
        )
    try:
        key = vcek.public_key()
    except Exception as exc:  # an unsupported or malformed key is a failed check
        return False, f"the VCEK key cannot be read: {exc}"
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != _P384:
        kind = key.curve.name if isinstance(key, ec.EllipticCurvePublicKey) else type(key).__name__
        return False, f"the VCEK has a {kind} key; the report needs an ECDSA P-384 key"
    # The report stores r and s little-endian (72 bytes each); r||s big-endian is what
    # verify_raw_signature reads, so each half is byte-reversed.
    raw_signature = report.signature_r[::-1] + report.signature_s[::-1]
    if not verify_raw_signature(key, raw_signature, report.signed_bytes, hashes.SHA384()):
        return False, (
            "ECDSA P-384/SHA-384 signature over report bytes [0, 0x2A0) does not verify with "
            "the VCEK key"
        )
    return True, (
        "ECDSA P-384/SHA-384 signature over report bytes [0, 0x2A0) verifies with the VCEK key"
    )


def _add_vcek_chain_checks(
    checks: CheckList, vcek_der: bytes, anchors: TrustAnchors, at: datetime
) -> None:
    try:
        chain = _vcek_chain(vcek_der, anchors.amd_asks, anchors.amd_trusted)
        with quiet_serial_number_warning():
            assessment = assess_chain(chain, anchors.amd_trusted, require_ca=True)
    except Exception as exc:  # never escape: an unreadable chain is a failed chain
        reason = f"the VCEK chain cannot be assessed: {type(exc).__name__}: {str(exc)[:200]}"
        checks.add(VCEK_CHAIN_CHECKS.signatures, False, reason)
        checks.add(VCEK_CHAIN_CHECKS.root_pinned, False, reason)
        checks.add(VCEK_CHAIN_CHECKS.validity, False, reason)
        return
    add_chain_checks(checks, assessment, at, VCEK_CHAIN_CHECKS)


@functools.lru_cache(maxsize=64)
def _vcek_chain(
    vcek_der: bytes, asks: tuple[bytes, ...], roots: frozenset[bytes]
) -> tuple[bytes, ...]:
    """VCEK, the ASK that issued it, and the trusted ARK that issued that ASK (leaf first).

    When no ASK verifies the VCEK, the first ASK is used (the chain then fails on its
    signatures). When no trusted root issued the ASK, the chain ends at the ASK, so it fails
    `vcek_chain_root_pinned` (and its signatures: an ASK is not self-signed).
    """
    with quiet_serial_number_warning():
        vcek = x509.load_der_x509_certificate(vcek_der)
        ask_certs = [(der, x509.load_der_x509_certificate(der)) for der in asks]
        root_certs = [(der, x509.load_der_x509_certificate(der)) for der in sorted(roots)]
    if not ask_certs:
        return (vcek_der,)
    ask_der, ask = next(
        ((der, cert) for der, cert in ask_certs if _issued_by(vcek, cert)), ask_certs[0]
    )
    ark_der = next((der for der, cert in root_certs if _issued_by(ask, cert)), None)
    return (vcek_der, ask_der) if ark_der is None else (vcek_der, ask_der, ark_der)


def _issued_by(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(issuer)
    except Exception:  # InvalidSignature, name mismatch, unsupported key: not the issuer
        return False
    return True


def _extension_bytes(vcek: x509.Certificate, oid: str) -> bytes | None:
    """The raw value of a private VCEK extension, or None when absent or unreadable."""
    try:
        value = vcek.extensions.get_extension_for_oid(x509.ObjectIdentifier(oid)).value
    except Exception:  # ExtensionNotFound, or a malformed extension list
        return None
    return value.value if isinstance(value, x509.UnrecognizedExtension) else None


def _check_chip_id(report: SnpReport, vcek: x509.Certificate) -> tuple[bool, str]:
    extension = _extension_bytes(vcek, OID_HW_ID)
    if extension is None:
        return False, f"the VCEK has no hwID extension ({OID_HW_ID})"
    # Real VCEKs carry the raw chip id bytes as the extension value; a DER OCTET STRING
    # wrapping them is accepted too.
    hw_id = extension
    if len(hw_id) not in _HW_ID_SIZES:
        try:
            hw_id = decode_single(extension, TAG_OCTET_STRING)
        except DerError:
            hw_id = b""
    if len(hw_id) not in _HW_ID_SIZES:
        return False, (
            f"the VCEK hwID extension is {len(extension)} bytes; expected 64 (8 on Turin), "
            "raw or as a DER OCTET STRING"
        )
    if report.mask_chip_key and not any(report.chip_id):
        return False, "MASK_CHIP_KEY is set: the report's chip_id is all zero, so it cannot match"
    # Turin VCEKs name the chip by the first 8 bytes of CHIP_ID.
    if hw_id == report.chip_id[: len(hw_id)]:
        return True, f"VCEK hwID equals the report's chip_id ({len(hw_id)} bytes)"
    return False, (
        f"VCEK hwID {hw_id.hex()} does not equal the report's chip_id {report.chip_id.hex()}"
    )


def _check_tcb(report: SnpReport, vcek: x509.Certificate) -> tuple[bool, str]:
    turin = _extension_bytes(vcek, OID_FMC_SPL) is not None
    layout = _TCB_LAYOUT_TURIN if turin else _TCB_LAYOUT_MILAN_GENOA
    found: list[str] = []
    problems: list[str] = []
    for name, oid, index in layout:
        raw = _extension_bytes(vcek, oid)
        if raw is None:
            problems.append(f"{name} ({oid}) is missing")
            continue
        try:
            value = decode_integer(decode_single(raw, TAG_INTEGER))
        except DerError as exc:
            problems.append(f"{name} ({oid}) is not a DER INTEGER: {exc}")
            continue
        found.append(f"{name}={value}")
        if value != report.reported_tcb[index]:
            problems.append(
                f"{name} is {value} in the VCEK but {report.reported_tcb[index]} in "
                f"reported_tcb byte {index}"
            )
    generation = "Turin" if turin else "Milan/Genoa"
    if problems:
        return False, f"VCEK TCB does not match reported_tcb: {'; '.join(problems)}"
    return True, (
        f"VCEK TCB {' '.join(found)} matches reported_tcb {report.reported_tcb.hex()} "
        f"({generation} layout)"
    )


def _hex_or_none(value: int | None) -> str | None:
    return None if value is None else hex(value)
