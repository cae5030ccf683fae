"""Check Intel collateral against a quote's PCK chain at a given time, and derive the TCB status.

Everything that does not depend on time (CRL and document signatures, issuer chains,
revocation, parsing) is worked out once per (collateral, PCK chain, trusted roots) and
cached by content; each verification then only compares validity windows with its own
time and matches the quote's SVNs against the TCB levels (the match is cached by every
quote field it reads).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from attestation.checks import QE_IDENTITY_CHECKS, TCB_INFO_CHECKS, CheckName
from attestation.collateral import IntelCollateral, SignedDocument
from attestation.ecdsa import verify_raw_signature
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
    parse_collateral_document,
)
from attestation.timefmt import format_second, format_time, parse_time, whole_second
from attestation.x509chain import ChainAssessment, assess_chain, load_certificate, public_key_of


@dataclass(frozen=True)
class CollateralOutcome:
    checks: tuple[Check, ...]
    tcb_status: str | None
    advisory_ids: tuple[str, ...] = ()


def _static_check(name: CheckName, passed: bool, detail: str) -> Check:
    """A check whose outcome does not depend on time: made once, then shared."""
    return Check(name=name, passed=passed, detail=detail)


# Compared and hashed by identity: each lives in one cached `_Prepared`.
@dataclass(frozen=True, eq=False)
class _Window:
    """A check that passes when the verification time lies in [start, end]."""

    name: CheckName
    start: datetime
    end: datetime
    what: str

    @functools.cached_property
    def window(self) -> str:
        return f"{self.what} is valid from {format_time(self.start)} to {format_time(self.end)}"


@functools.lru_cache(maxsize=4096)
def _window_check(window: _Window, inside: bool, when: str) -> Check:
    # Made once per window, outcome and second: a busy verifier checks many quotes a second.
    return Check(
        name=window.name,
        passed=inside,
        detail=f"{window.window}; checked at {when}"
        + ("" if inside else ": outside that window, it has expired or is not yet valid"),
    )


@dataclass(frozen=True, eq=False)
class _Prepared:
    steps: tuple[Check | _Window, ...]
    windows: tuple[_Window, ...]  # the steps judged against the time, in order
    pck: PckTcb | None
    tcb_info: TcbInfo | None
    qe_identity: QeIdentity | None
    # TCB matching results by the quote fields they depend on (filled as quotes arrive).
    matches: dict[tuple[object, ...], CollateralOutcome] = field(default_factory=dict)


def evaluate_collateral(
    quote: DcapQuote,
    chain: ChainAssessment,
    collateral: IntelCollateral,
    *,
    roots: frozenset[bytes],
    at: datetime,
) -> CollateralOutcome:
    """Check the collateral against the quote's PCK chain at `at`, then match the TCB.

    The TCB status is derived only from TCB Info and QE Identity whose signatures verify
    with issuer chains ending at a trusted root; otherwise it stays None (unknown). An
    expired document or signer still yields the status, and fails its validity check.
    """
    prepared = _prepare(collateral, chain.certificates_der, roots)
    inside = tuple(window.start <= at <= window.end for window in prepared.windows)
    checks = _checks_at(prepared, inside, whole_second(at))
    pck, tcb_info, qe_identity = prepared.pck, prepared.tcb_info, prepared.qe_identity
    if pck is None or tcb_info is None or qe_identity is None:
        return CollateralOutcome(checks, None)
    key = _match_key(quote)
    matched = prepared.matches.get(key)
    if matched is None:
        matched = _match_tcb(quote, pck, tcb_info, qe_identity, CheckList())
        if len(prepared.matches) < 1024:
            prepared.matches[key] = matched
    return CollateralOutcome(checks + matched.checks, matched.tcb_status, matched.advisory_ids)


@functools.lru_cache(maxsize=1024)
def _checks_at(prepared: _Prepared, inside: tuple[bool, ...], second: int) -> tuple[Check, ...]:
    """The prepared steps as checks, each window judged `inside` or not (in order).

    Made once per collateral, outcomes and second of verification time (the second only
    names the time in the text); whether each window holds was decided from the exact time.
    `prepared` is compared by identity: it is `_prepare`'s one result for its exact inputs,
    and an entry here keeps it alive, so an entry never stands for other collateral.
    """
    when = format_second(second)
    judged = iter(inside)
    return tuple(
        step if isinstance(step, Check) else _window_check(step, next(judged), when)
        for step in prepared.steps
    )


def _match_key(quote: DcapQuote) -> tuple[object, ...]:
    """Every quote field TCB matching reads."""
    body, qe = quote.body, quote.qe_report
    module = (
        (body.tee_tcb_svn, body.mr_signer_seam, body.seam_attributes)
        if isinstance(body, TdReport10)
        else None
    )
    return (
        quote.body_type,
        module,
        qe.mr_signer,
        qe.isv_prod_id,
        qe.misc_select,
        qe.attributes,
        qe.isv_svn,
    )


def _match_tcb(
    quote: DcapQuote,
    pck: PckTcb,
    tcb_info: TcbInfo,
    qe_identity: QeIdentity,
    checks: CheckList,
) -> CollateralOutcome:
    tdx = quote.is_tdx
    expected_tcb_id, expected_qe_id = ("TDX", "TD_QE") if tdx else ("SGX", "QE")
    matches = (
        tcb_info.id.upper() == expected_tcb_id
        and tcb_info.fmspc.lower() == pck.fmspc.hex()
        and tcb_info.pce_id.lower() == pck.pce_id.hex()
    )
    checks.add(
        CheckName.COLLATERAL_TCB_INFO_MATCHES_PLATFORM,
        matches,
        f"TCB Info {tcb_info.id} for FMSPC {tcb_info.fmspc.lower()} PCE-ID "
        f"{tcb_info.pce_id.lower()}; the PCK certificate says {expected_tcb_id} FMSPC "
        f"{pck.fmspc.hex()} PCE-ID {pck.pce_id.hex()}",
    )
    checks.add(
        CheckName.COLLATERAL_QE_IDENTITY_MATCHES_QUOTE_TYPE,
        qe_identity.id.upper() == expected_qe_id,
        f"QE Identity {qe_identity.id}; a {'TDX' if tdx else 'SGX'} quote needs {expected_qe_id}",
    )
    if not matches:
        return CollateralOutcome(tuple(checks.items), None)

    body = quote.body
    tee_tcb_svn = body.tee_tcb_svn if isinstance(body, TdReport10) else None
    platform = match_platform_level(tcb_info, pck, tee_tcb_svn)
    checks.add(CheckName.TCB_LEVEL_MATCHED, platform.status != TCB_UNSUPPORTED, platform.detail)
    others = []
    if isinstance(body, TdReport10):
        module = match_tdx_module(tcb_info, body)
        if module is not None:
            checks.add(
                CheckName.TDX_MODULE_IDENTITY, module.status != TCB_UNSUPPORTED, module.detail
            )
            others.append(module)
    qe = match_qe_identity(qe_identity, quote.qe_report)
    checks.add(CheckName.QE_IDENTITY_LEVEL_MATCHED, qe.status != TCB_UNSUPPORTED, qe.detail)
    others.append(qe)
    if any(item.status == TCB_UNSUPPORTED for item in [platform, *others]):
        return CollateralOutcome(tuple(checks.items), TCB_UNSUPPORTED)
    status, advisories = converge(platform, others)
    checks.add(
        CheckName.TCB_NOT_REVOKED,
        status != REVOKED,
        "the TCB is revoked" if status == REVOKED else f"TCB status {status}",
    )
    return CollateralOutcome(tuple(checks.items), status, tuple(advisories))


@functools.lru_cache(maxsize=128)
def _prepare(
    collateral: IntelCollateral, pck_chain: tuple[bytes, ...], roots: frozenset[bytes]
) -> _Prepared:
    steps: list[Check | _Window] = []
    certificates = [load_certificate(der) for der in pck_chain]
    pck = _pck_tcb(pck_chain[0], steps)
    _crl_steps(collateral, certificates, steps)
    tcb_info = _document_steps(collateral.tcb_info, "tcb_info", collateral, roots, steps)
    qe_identity = _document_steps(collateral.qe_identity, "qe_identity", collateral, roots, steps)
    return _Prepared(
        tuple(steps),
        tuple(step for step in steps if isinstance(step, _Window)),
        pck,
        tcb_info if isinstance(tcb_info, TcbInfo) else None,
        qe_identity if isinstance(qe_identity, QeIdentity) else None,
    )


def _pck_tcb(leaf_der: bytes, steps: list[Check | _Window]) -> PckTcb | None:
    try:
        return parse_pck_extension(leaf_der)
    except Exception as exc:
        steps.append(_static_check(CheckName.PCK_SGX_EXTENSION, False, str(exc)))
        return None


def _crl_steps(
    collateral: IntelCollateral,
    certificates: list[x509.Certificate],
    steps: list[Check | _Window],
) -> None:
    crls = [x509.load_der_x509_crl(der) for der in collateral.crls]
    # (check name, the CA that issues the CRL, the certificate it must not revoke)
    below_root = certificates[-2] if len(certificates) > 1 else None
    roles = [(CheckName.COLLATERAL_ROOT_CA_CRL, certificates[-1], below_root)]
    if len(certificates) > 2:
        roles.append((CheckName.COLLATERAL_PCK_CRL, certificates[1], certificates[0]))
    for name, issuer, subject in roles:
        try:
            steps.append(_crl_step(name, crls, issuer, subject))
        except ValueError as exc:  # a CRL entry that does not parse
            steps.append(_static_check(name, False, f"a CRL is malformed: {exc}"))


def _crl_step(
    name: CheckName,
    crls: list[x509.CertificateRevocationList],
    issuer: x509.Certificate,
    subject: x509.Certificate | None,
) -> Check | _Window:
    issuer_name = _cn(issuer)
    crl = next((item for item in crls if item.issuer == issuer.subject), None)
    if crl is None:
        return _static_check(name, False, f"no CRL issued by '{issuer_name}' was given")
    key = public_key_of(issuer)
    if not isinstance(key, ec.EllipticCurvePublicKey) or not crl.is_signature_valid(key):
        return _static_check(name, False, f"the CRL signature does not verify with '{issuer_name}'")
    if subject is not None:
        revoked = crl.get_revoked_certificate_by_serial_number(subject.serial_number)
        if revoked is not None:
            return _static_check(
                name,
                False,
                (
                    f"'{_cn(subject)}' (serial {subject.serial_number:x}) is revoked since "
                    f"{format_time(revoked.revocation_date_utc)}"
                ),
            )
    if crl.next_update_utc is None:
        return _static_check(name, False, f"the CRL of '{issuer_name}' has no next update")
    what = f"the CRL of '{issuer_name}' (signature verifies" + (
        f", '{_cn(subject)}' not revoked)" if subject is not None else ")"
    )
    return _Window(name, crl.last_update_utc, crl.next_update_utc, what)


def _document_steps(
    document: SignedDocument | None,
    kind: str,
    collateral: IntelCollateral,
    roots: frozenset[bytes],
    steps: list[Check | _Window],
) -> TcbInfo | QeIdentity | None:
    label = "TCB Info" if kind == "tcb_info" else "QE Identity"
    names = TCB_INFO_CHECKS if kind == "tcb_info" else QE_IDENTITY_CHECKS
    if document is None:
        steps.append(_static_check(names.present, False, f"no {label} was given"))
        return None
    issuer_chain = document.issuer_chain or _issuer_from_pool(document, collateral)
    if not issuer_chain:
        steps.append(
            _static_check(
                names.signature,
                False,
                f"no certificate whose key verifies the {label} signature was given",
            )
        )
        return None
    assessment = assess_chain(_completed(issuer_chain, roots), roots)
    signer = _cn(assessment.leaf)
    signature_ok = _signature_valid(document.text, document.signature, issuer_chain[0])
    steps.append(
        _static_check(
            names.signature,
            signature_ok,
            f"{label} signed by '{signer}'"
            if signature_ok
            else f"the {label} signature does not verify with '{signer}'",
        )
    )
    chain_names = names.issuer_chain
    steps.append(
        _static_check(
            chain_names.signatures, assessment.signatures_ok, assessment.signatures_detail
        )
    )
    steps.append(
        _static_check(chain_names.root_pinned, assessment.root_pinned, assessment.root_detail)
    )
    steps.append(
        _Window(
            chain_names.validity,
            assessment.not_before,
            assessment.not_after,
            f"the {label} issuer chain",
        )
    )
    parsed = parse_collateral_document(document.text, kind)
    if isinstance(parsed, str):
        steps.append(
            _static_check(
                names.format,
                False,
                f"the {label} JSON does not fit its schema: {parsed}",
            )
        )
        return None
    steps.append(
        _Window(
            names.validity,
            parse_time(parsed.issue_date),
            parse_time(parsed.next_update),
            f"the {label} (issueDate to nextUpdate)",
        )
    )
    trusted = signature_ok and assessment.signatures_ok and assessment.root_pinned
    return parsed if trusted else None


@functools.lru_cache(maxsize=256)
def _signature_valid(text: bytes, signature: bytes, signer_der: bytes) -> bool:
    try:
        key = public_key_of(load_certificate(signer_der))
    except ValueError:
        return False
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return False
    return verify_raw_signature(key, signature, text)


def _issuer_from_pool(document: SignedDocument, collateral: IntelCollateral) -> tuple[bytes, ...]:
    for der in collateral.certificates:
        if _signature_valid(document.text, document.signature, der):
            return (der,)
    return ()


def _completed(chain: tuple[bytes, ...], roots: frozenset[bytes]) -> tuple[bytes, ...]:
    """Append the trusted root that issued the chain's last certificate, when it is missing."""
    last = load_certificate(chain[-1])
    if last.issuer == last.subject:
        return chain
    for root_der in sorted(roots):
        if load_certificate(root_der).subject == last.issuer:
            return (*chain, root_der)
    return chain


def _cn(certificate: x509.Certificate) -> str:
    return certificate.subject.rfc4514_string()
