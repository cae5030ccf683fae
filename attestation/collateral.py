"""Intel DCAP collateral: read it in any common form, check it, and derive the TCB status.

Accepted inputs (any mix, one file each):
- a dcap-qvl / Intel PCCS `QuoteCollateralV3` JSON bundle (signed JSON texts, hex
  signatures, PEM issuer chains, hex DER CRLs);
- Intel PCS response bodies: `{"tcbInfo": {...}, "signature": "..."}` and
  `{"enclaveIdentity": {...}, "signature": "..."}`, where the signature covers the exact
  text of the inner object;
- CRLs (DER or PEM) and certificates (DER or PEM) such as the Intel SGX TCB Signing
  certificate, for collateral whose issuer chains travelled separately.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from pydantic import ValidationError

from attestation.ecdsa import verify_raw_signature
from attestation.errors import CollateralFormatError
from attestation.formats.dcap import DcapQuote, TdReport10
from attestation.formats.pck_extension import PckTcb, parse_pck_extension
from attestation.report import Check, CheckList
from attestation.tcb import (
    REVOKED,
    TCB_UNSUPPORTED,
    QeIdentity,
    TcbInfo,
    converge,
    match_platform_level,
    match_qe_identity,
    match_tdx_module,
    normalize_v2_levels,
)
from attestation.timefmt import format_time, parse_time
from attestation.trust import TrustAnchors
from attestation.x509chain import ChainAssessment, add_chain_checks, assess_chain

MAX_COLLATERAL_FILE_BYTES = 4 << 20


@dataclass(frozen=True)
class SignedDocument:
    """A signed JSON text (TCB Info or QE Identity) with its raw r||s signature."""

    text: bytes
    signature: bytes
    issuer_chain: tuple[bytes, ...]


@dataclass(frozen=True)
class IntelCollateral:
    """Collateral pieces as given; any of them may be missing."""

    tcb_info: SignedDocument | None = None
    qe_identity: SignedDocument | None = None
    crls: tuple[bytes, ...] = ()
    certificates: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class CollateralOutcome:
    checks: list[Check]
    tcb_status: str | None
    advisory_ids: list[str] = field(default_factory=list)


def load_intel_collateral(files: list[bytes]) -> IntelCollateral:
    """Combine collateral files (see the module docstring for the forms) into one set.

    Raises:
        CollateralFormatError: a file is none of the accepted forms, or a piece is given twice.
    """
    tcb_info: SignedDocument | None = None
    qe_identity: SignedDocument | None = None
    crls: list[bytes] = []
    certificates: list[bytes] = []
    for index, data in enumerate(files, start=1):
        name = f"collateral file {index}"
        if len(data) > MAX_COLLATERAL_FILE_BYTES:
            raise CollateralFormatError(
                f"{name} is {len(data)} bytes; the limit is {MAX_COLLATERAL_FILE_BYTES}"
            )
        pieces = _read_collateral_file(data, name)
        for kind, piece in pieces:
            if kind == "tcb_info":
                if tcb_info is not None:
                    raise CollateralFormatError(f"{name}: a second TCB Info was given")
                tcb_info = piece  # type: ignore[assignment]
            elif kind == "qe_identity":
                if qe_identity is not None:
                    raise CollateralFormatError(f"{name}: a second QE Identity was given")
                qe_identity = piece  # type: ignore[assignment]
            elif kind == "crl":
                crls.append(piece)  # type: ignore[arg-type]
            else:
                certificates.append(piece)  # type: ignore[arg-type]
    return IntelCollateral(tcb_info, qe_identity, tuple(crls), tuple(certificates))


def _read_collateral_file(data: bytes, name: str) -> list[tuple[str, object]]:
    stripped = data.lstrip()
    if stripped.startswith(b"{"):
        return _read_json_collateral(data, name)
    if b"-----BEGIN X509 CRL-----" in data:
        try:
            crl = x509.load_pem_x509_crl(data)
        except ValueError as exc:
            raise CollateralFormatError(f"{name}: PEM CRL cannot be read: {exc}") from None
        return [("crl", crl.public_bytes(Encoding.DER))]
    if b"-----BEGIN CERTIFICATE-----" in data:
        return [("certificate", der) for der in _pem_certificates(data.decode("latin-1"), name)]
    try:
        x509.load_der_x509_crl(data)
        return [("crl", data)]
    except ValueError:
        pass
    try:
        x509.load_der_x509_certificate(data)
        return [("certificate", data)]
    except ValueError:
        pass
    raise CollateralFormatError(
        f"{name} is not Intel collateral: expected QuoteCollateralV3 JSON, a PCS TCB Info or "
        "QE Identity body, or a CRL or certificate in DER or PEM"
    )


def _read_json_collateral(data: bytes, name: str) -> list[tuple[str, object]]:
    try:
        text = data.decode("utf-8")
        document = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise CollateralFormatError(f"{name} is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise CollateralFormatError(f"{name}: expected a JSON object at the top level")
    if "tcb_info" in document or "qe_identity" in document:
        return _read_bundle(document, name)
    for key, kind in (("tcbInfo", "tcb_info"), ("enclaveIdentity", "qe_identity"),
                      ("qeIdentity", "qe_identity")):
        if key in document:
            inner = _raw_member_text(text, key, name)
            signature = _hex_field(document, "signature", name, size=64)
            return [(kind, SignedDocument(inner.encode("utf-8"), signature, ()))]
    raise CollateralFormatError(
        f"{name}: JSON has none of the keys tcb_info/qe_identity (QuoteCollateralV3), tcbInfo "
        f"or enclaveIdentity (PCS); found {sorted(document)[:8]}"
    )


def _read_bundle(document: dict[str, object], name: str) -> list[tuple[str, object]]:
    pieces: list[tuple[str, object]] = []
    for kind in ("tcb_info", "qe_identity"):
        text = document.get(kind)
        if not isinstance(text, str):
            raise CollateralFormatError(f"{name}: '{kind}' must be the signed JSON text")
        chain = document.get(f"{kind}_issuer_chain")
        if not isinstance(chain, str):
            raise CollateralFormatError(f"{name}: '{kind}_issuer_chain' must be PEM text")
        pieces.append((kind, SignedDocument(
            text.encode("utf-8"),
            _hex_field(document, f"{kind}_signature", name, size=64),
            tuple(_pem_certificates(chain, name)),
        )))
    for key in ("root_ca_crl", "pck_crl"):
        if key in document:
            pieces.append(("crl", _hex_field(document, key, name)))
    chain_text = document.get("pck_crl_issuer_chain")
    if isinstance(chain_text, str):
        pieces.extend(("certificate", der) for der in _pem_certificates(chain_text, name))
    return pieces


def _hex_field(document: dict[str, object], key: str, name: str, size: int | None = None) -> bytes:
    value = document.get(key)
    try:
        if not isinstance(value, str):
            raise ValueError("missing or not a string")
        raw = bytes.fromhex(value)
    except ValueError as exc:
        raise CollateralFormatError(f"{name}: '{key}' must be hex text ({exc})") from None
    if size is not None and len(raw) != size:
        raise CollateralFormatError(f"{name}: '{key}' must be {size} bytes, found {len(raw)}")
    return raw


def _pem_certificates(text: str, name: str) -> list[bytes]:
    try:
        certificates = x509.load_pem_x509_certificates(text.encode("latin-1"))
    except ValueError as exc:
        raise CollateralFormatError(f"{name}: certificate PEM cannot be read: {exc}") from None
    return [cert.public_bytes(Encoding.DER) for cert in certificates]


def _raw_member_text(text: str, key: str, name: str) -> str:
    """The exact source text of a top-level member's value: that is what Intel signed."""
    decoder = json.JSONDecoder()
    position = text.index("{") + 1
    while True:
        position = _skip_space(text, position)
        member, position = decoder.raw_decode(text, position)
        position = _skip_space(text, position)
        if text[position] != ":":
            break
        start = _skip_space(text, position + 1)
        _, end = decoder.raw_decode(text, start)
        if member == key:
            return text[start:end]
        position = _skip_space(text, end)
        if text[position] != ",":
            break
        position += 1
    raise CollateralFormatError(f"{name}: cannot locate the text of '{key}'")


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def evaluate_collateral(
    quote: DcapQuote,
    chain: ChainAssessment,
    collateral: IntelCollateral,
    *,
    anchors: TrustAnchors,
    at: datetime,
) -> CollateralOutcome:
    """Check the collateral against the quote's PCK chain at `at`, then match the TCB.

    The TCB status is derived only from TCB Info and QE Identity whose signatures verify
    with issuer chains ending at a trusted root; otherwise it stays None (unknown).
    """
    checks = CheckList()
    pck = _pck_tcb(chain, checks)
    _check_crls(collateral, chain, at, checks)
    tcb_info = _checked_document(
        collateral.tcb_info, "tcb_info", collateral, anchors, at, checks, TcbInfo
    )
    qe_identity = _checked_document(
        collateral.qe_identity, "qe_identity", collateral, anchors, at, checks, QeIdentity
    )
    if pck is None or tcb_info is None or qe_identity is None:
        return CollateralOutcome(checks.items, None)
    assert isinstance(tcb_info, TcbInfo) and isinstance(qe_identity, QeIdentity)

    tdx = quote.is_tdx
    expected_tcb_id, expected_qe_id = ("TDX", "TD_QE") if tdx else ("SGX", "QE")
    matches = (
        tcb_info.id.upper() == expected_tcb_id
        and bytes.fromhex(tcb_info.fmspc) == pck.fmspc
        and bytes.fromhex(tcb_info.pce_id) == pck.pce_id
    )
    checks.add(
        "collateral_tcb_info_matches_platform",
        matches,
        f"TCB Info {tcb_info.id} for FMSPC {tcb_info.fmspc.lower()} PCE-ID "
        f"{tcb_info.pce_id.lower()}; the PCK certificate says {expected_tcb_id} FMSPC "
        f"{pck.fmspc.hex()} PCE-ID {pck.pce_id.hex()}",
    )
    checks.add(
        "collateral_qe_identity_matches_quote_type",
        qe_identity.id.upper() == expected_qe_id,
        f"QE Identity {qe_identity.id}; a {'TDX' if tdx else 'SGX'} quote needs {expected_qe_id}",
    )
    if not matches:
        return CollateralOutcome(checks.items, None)

    body = quote.body
    tee_tcb_svn = body.tee_tcb_svn if isinstance(body, TdReport10) else None
    platform = match_platform_level(tcb_info, pck, tee_tcb_svn)
    checks.add("tcb_level_matched", platform.status != TCB_UNSUPPORTED, platform.detail)
    others = []
    if isinstance(body, TdReport10):
        module = match_tdx_module(tcb_info, body)
        if module is not None:
            checks.add("tdx_module_identity", module.status != TCB_UNSUPPORTED, module.detail)
            others.append(module)
    qe = match_qe_identity(qe_identity, quote.qe_report)
    checks.add("qe_identity_level_matched", qe.status != TCB_UNSUPPORTED, qe.detail)
    others.append(qe)
    if any(item.status == TCB_UNSUPPORTED for item in [platform, *others]):
        return CollateralOutcome(checks.items, TCB_UNSUPPORTED)
    status, advisories = converge(platform, others)
    checks.add(
        "tcb_not_revoked",
        status != REVOKED,
        "the TCB is revoked" if status == REVOKED else f"TCB status {status}",
    )
    return CollateralOutcome(checks.items, status, advisories)


def _pck_tcb(chain: ChainAssessment, checks: CheckList) -> PckTcb | None:
    try:
        pck = parse_pck_extension(chain.leaf.public_bytes(Encoding.DER))
    except Exception as exc:  # noqa: BLE001 - any malformed extension is reported as a check
        checks.add("pck_sgx_extension", False, str(exc))
        return None
    return pck


def _check_crls(
    collateral: IntelCollateral, chain: ChainAssessment, at: datetime, checks: CheckList
) -> None:
    certificates = chain.certificates
    crls = [x509.load_der_x509_crl(der) for der in collateral.crls]
    # (name, the CA that issues this CRL, the certificate it must not revoke)
    roles = [("root_ca_crl", certificates[-1], certificates[-2] if len(certificates) > 1 else None)]
    if len(certificates) > 2:
        roles.append(("pck_crl", certificates[1], certificates[0]))
    for name, issuer, subject in roles:
        crl = next((item for item in crls if item.issuer == issuer.subject), None)
        if crl is None:
            checks.add(
                f"collateral_{name}",
                False,
                f"no CRL issued by '{issuer.subject.rfc4514_string()}' was given",
            )
            continue
        checks.add(*_crl_check(name, crl, issuer, subject, at))


def _crl_check(
    name: str,
    crl: x509.CertificateRevocationList,
    issuer: x509.Certificate,
    subject: x509.Certificate | None,
    at: datetime,
) -> tuple[str, bool, str]:
    check = f"collateral_{name}"
    if not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
        return check, False, f"the CRL signature does not verify with '{_cn(issuer)}'"
    this_update = crl.last_update_utc
    next_update = crl.next_update_utc
    if next_update is None or not this_update <= at <= next_update:
        return check, False, (
            f"the CRL of '{_cn(issuer)}' is valid from {format_time(this_update)} to "
            f"{format_time(next_update) if next_update else 'never'}, not at {format_time(at)}"
        )
    if subject is not None:
        revoked = crl.get_revoked_certificate_by_serial_number(subject.serial_number)
        if revoked is not None:
            return check, False, (
                f"'{_cn(subject)}' (serial {subject.serial_number:x}) is revoked since "
                f"{format_time(revoked.revocation_date_utc)}"
            )
    return check, True, (
        f"signed by '{_cn(issuer)}', valid at {format_time(at)}"
        + (f", '{_cn(subject)}' not revoked" if subject is not None else "")
    )


def _checked_document(
    document: SignedDocument | None,
    kind: str,
    collateral: IntelCollateral,
    anchors: TrustAnchors,
    at: datetime,
    checks: CheckList,
    model: type[TcbInfo] | type[QeIdentity],
) -> TcbInfo | QeIdentity | None:
    label = "TCB Info" if kind == "tcb_info" else "QE Identity"
    if document is None:
        checks.add(f"collateral_{kind}", False, f"no {label} was given")
        return None
    issuer_chain = document.issuer_chain or _issuer_chain_from_pool(document, collateral, anchors)
    if not issuer_chain:
        checks.add(
            f"collateral_{kind}_signature",
            False,
            f"no certificate whose key verifies the {label} signature was given",
        )
        return None
    assessment = assess_chain(_completed(issuer_chain, anchors), anchors.dcap_roots)
    signature_ok = _signature_valid(document.text, document.signature, issuer_chain[0])
    checks.add(
        f"collateral_{kind}_signature",
        signature_ok,
        f"{label} signed by '{_cn(assessment.leaf)}'"
        if signature_ok
        else f"the {label} signature does not verify with '{_cn(assessment.leaf)}'",
    )
    add_chain_checks(checks, assessment, at, prefix=f"collateral_{kind}_issuer")
    parsed = _parse_document(document.text, model, label)
    if parsed is None:
        checks.add(f"collateral_{kind}_format", False, f"the {label} JSON does not fit its schema")
        return None
    issue, next_update = parse_time(parsed.issue_date), parse_time(parsed.next_update)
    checks.add(
        f"collateral_{kind}_validity",
        issue <= at <= next_update,
        f"{label} issued {format_time(issue)}, next update {format_time(next_update)}; "
        f"checked at {format_time(at)}"
        + ("" if issue <= at <= next_update else " (outside that window: it has expired)"),
    )
    # A status is derived only from a document whose signature chains to a trusted root;
    # an expired signer or document still fails its own check above.
    trusted = signature_ok and assessment.signatures_ok and assessment.root_pinned
    return parsed if trusted else None


@functools.lru_cache(maxsize=64)
def _parse_document(
    text: bytes, model: type[TcbInfo] | type[QeIdentity], label: str
) -> TcbInfo | QeIdentity | None:
    try:
        raw = json.loads(text)
        if model is TcbInfo:
            raw = normalize_v2_levels(raw)
        return model.model_validate(raw)
    except (ValueError, ValidationError, AttributeError, TypeError):
        return None


@functools.lru_cache(maxsize=256)
def _signature_valid(text: bytes, signature: bytes, signer_der: bytes) -> bool:
    key = x509.load_der_x509_certificate(signer_der).public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return False
    return verify_raw_signature(key, signature, text)


def _issuer_chain_from_pool(
    document: SignedDocument, collateral: IntelCollateral, anchors: TrustAnchors
) -> tuple[bytes, ...]:
    for der in collateral.certificates:
        if _signature_valid(document.text, document.signature, der):
            return (der,)
    return ()


def _completed(chain: tuple[bytes, ...], anchors: TrustAnchors) -> tuple[bytes, ...]:
    """Append the trusted root that issued the chain's last certificate, when it is missing."""
    last = x509.load_der_x509_certificate(chain[-1])
    if last.issuer == last.subject:
        return chain
    for root_der in sorted(anchors.dcap_roots):
        root = x509.load_der_x509_certificate(root_der)
        if root.subject == last.issuer:
            return (*chain, root_der)
    return chain


def _cn(certificate: x509.Certificate) -> str:
    return certificate.subject.rfc4514_string()
