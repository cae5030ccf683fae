"""One entry point for every kind of evidence: detect the format, then verify it."""

from __future__ import annotations

from datetime import datetime

from attestation.encoding import decode_evidence
from attestation.errors import CertificateChainError, CollateralFormatError, EvidenceFormatError
from attestation.event_log import verify_event_log
from attestation.report import VerificationReport
from attestation.trust import TrustAnchors, certificates_from_bytes, default_trust_anchors
from attestation.verify_dcap import verify_dcap_quote
from attestation.verify_nitro import verify_nitro_document
from attestation.verify_snp import verify_snp_report

# First bytes that tell the formats apart. A DCAP quote starts with its version (u16 LE:
# 3, 4 or 5) and attestation key type 2; a Nitro document is a CBOR array of four (0x84)
# or that array under tag 18 (0xd2); an SEV-SNP report starts with its version (u32 LE,
# taken as 2 to 255 here). Only the first bytes decide: each parser then checks the size.
_DCAP_PREFIXES = (b"\x03\x00\x02\x00", b"\x04\x00\x02\x00", b"\x05\x00\x02\x00")
_NITRO_PREFIXES = (b"\x84", b"\xd2\x84")


def detect_kind(evidence: bytes) -> str:
    """Name the evidence format: "dcap", "nitro" or "sev-snp".

    Raises:
        EvidenceFormatError: the bytes start like none of the supported formats.
    """
    if evidence.startswith(_DCAP_PREFIXES):
        return "dcap"
    if evidence.startswith(_NITRO_PREFIXES):
        return "nitro"
    if len(evidence) >= 4 and 2 <= int.from_bytes(evidence[:4], "little") <= 255:
        return "sev-snp"
    raise EvidenceFormatError(
        f"unrecognized evidence: the first bytes {evidence[:8].hex()!r} start no Intel DCAP "
        "quote (version 3-5, key type 2), AWS Nitro document (CBOR COSE_Sign1) or AMD SEV-SNP "
        "report (version >= 2)"
    )


def verify_evidence(
    evidence: bytes,
    *,
    at: datetime,
    anchors: TrustAnchors | None = None,
    collateral: list[bytes] | None = None,
    event_log: bytes | None = None,
) -> VerificationReport:
    """Verify signatures and certificate chains of any supported evidence at time `at`.

    `evidence` may be raw bytes, hex text or base64 text, with trailing bytes after the
    structure. `collateral` holds the files that go with it: Intel collateral (a dcap-qvl
    QuoteCollateralV3 JSON, or PCS TCB Info / QE Identity bodies, CRLs and issuer
    certificates) for DCAP quotes, the VCEK certificate for SEV-SNP. `event_log` is a TDX
    event log (dstack's JSON form or CCEL binary; `attestation.event_log`): it must replay
    to the quote's RTMRs, else the report is invalid. No policy is applied: the report's
    `policy_ok` is None.

    Raises:
        EvidenceFormatError: the evidence cannot be parsed (the subclass names the format);
            EventLogError when it is the event log.
        CollateralFormatError: a collateral file cannot be read.
        ValueError: `at` has no timezone (a caller error, not an evidence problem).
    """
    # Checked here, before the format is known, so every kind of evidence refuses a naive
    # time the same way (DCAP would otherwise fail comparing it with certificate times).
    if at.tzinfo is None:
        raise ValueError("verify_evidence: `at` must be timezone-aware (UTC)")
    anchors = anchors or default_trust_anchors()
    data = decode_evidence(evidence)
    kind = detect_kind(data)
    if kind == "dcap":
        report = verify_dcap_quote(data, at=at, anchors=anchors, collateral=collateral or [])
    elif kind == "nitro":
        report = verify_nitro_document(data, at=at, anchors=anchors)
    else:
        vcek = _vcek_der(collateral or [])
        report = verify_snp_report(data, at=at, anchors=anchors, vcek_der=vcek)
    return report if event_log is None else verify_event_log(report, event_log)


def _vcek_der(collateral: list[bytes]) -> bytes | None:
    """The VCEK certificate (DER or PEM) that goes with an SEV-SNP report, if one was given."""
    if not collateral:
        return None
    if len(collateral) > 1:
        raise CollateralFormatError(
            f"an SEV-SNP report takes one collateral file (its VCEK), {len(collateral)} were given"
        )
    try:
        return certificates_from_bytes(collateral[0], source="VCEK collateral")[0]
    except CertificateChainError as exc:
        raise CollateralFormatError(str(exc)) from None
