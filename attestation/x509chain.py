"""Certificate chains up to a pinned root, judged once per chain and cached by content.

A chain is given leaf first. Its links are checked by signature and name, its last
certificate must be one of the trusted roots (compared by DER bytes, never by name), and
every certificate must be valid at the caller's time. Signature results do not depend on
time, so they are cached by the chain's bytes; validity is recomputed for every call.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtensionOID

from attestation.report import CheckList
from attestation.timefmt import format_time as _iso


@dataclass(frozen=True)
class ChainAssessment:
    """What a chain proves independently of time."""

    certificates: tuple[x509.Certificate, ...]
    signatures_ok: bool
    signatures_detail: str
    root_pinned: bool
    root_detail: str
    not_before: datetime
    not_after: datetime

    @property
    def leaf(self) -> x509.Certificate:
        return self.certificates[0]

    @property
    def root(self) -> x509.Certificate:
        return self.certificates[-1]

    def valid_at(self, at: datetime) -> bool:
        return self.not_before <= at <= self.not_after


def fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER encoding, lowercase hex."""
    return hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest()


def describe(certificate: x509.Certificate) -> str:
    return certificate.subject.rfc4514_string() or "(empty subject)"


def assess_chain(
    chain_der: tuple[bytes, ...],
    trusted_roots_der: frozenset[bytes],
    *,
    require_ca: bool = True,
) -> ChainAssessment:
    """Judge a chain (leaf first, DER) against the trusted roots; cached by content."""
    return _assess_chain_cached(chain_der, trusted_roots_der, require_ca)


@functools.lru_cache(maxsize=256)
def _assess_chain_cached(
    chain_der: tuple[bytes, ...], trusted_roots_der: frozenset[bytes], require_ca: bool
) -> ChainAssessment:
    certificates = tuple(x509.load_der_x509_certificate(der) for der in chain_der)
    signatures_ok, signatures_detail = _check_links(certificates, require_ca)
    root = certificates[-1]
    root_pinned = chain_der[-1] in trusted_roots_der
    if root_pinned:
        root_detail = f"chain ends at trusted root '{describe(root)}' (sha256 {fingerprint(root)})"
    else:
        root_detail = (
            f"chain ends at '{describe(root)}' (sha256 {fingerprint(root)}), which is not one "
            f"of the {len(trusted_roots_der)} trusted root(s); roots are compared by their "
            "bytes, not by name"
        )
    return ChainAssessment(
        certificates=certificates,
        signatures_ok=signatures_ok,
        signatures_detail=signatures_detail,
        root_pinned=root_pinned,
        root_detail=root_detail,
        not_before=max(cert.not_valid_before_utc for cert in certificates),
        not_after=min(cert.not_valid_after_utc for cert in certificates),
    )


def _check_links(
    certificates: Sequence[x509.Certificate], require_ca: bool
) -> tuple[bool, str]:
    for position, (child, issuer) in enumerate(
        zip(certificates, [*certificates[1:], certificates[-1]], strict=True)
    ):
        if require_ca and child is not issuer and not _is_ca(issuer):
            return False, (
                f"certificate {position + 1} ('{describe(issuer)}') signs another certificate "
                "but is not marked as a CA (basicConstraints cA=TRUE expected)"
            )
        try:
            child.verify_directly_issued_by(issuer)
        except InvalidSignature:
            return False, (
                f"signature of certificate {position} ('{describe(child)}') does not verify "
                f"with the key of '{describe(issuer)}'"
            )
        except (ValueError, TypeError) as exc:
            what = "is not self-signed" if child is issuer else "is not issued by the next one"
            return False, f"certificate {position} ('{describe(child)}') {what}: {exc}"
    return True, f"{len(certificates)} certificate(s), every signature verifies up to the root"


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        constraints = certificate.extensions.get_extension_for_oid(
            ExtensionOID.BASIC_CONSTRAINTS
        ).value
    except x509.ExtensionNotFound:
        return False
    return bool(getattr(constraints, "ca", False))


def add_chain_checks(
    checks: CheckList,
    assessment: ChainAssessment,
    at: datetime,
    prefix: str,
    *,
    untrusted_hint: str | None = None,
) -> bool:
    """Record the three chain checks (signatures, pinned root, validity at `at`).

    `untrusted_hint` is appended to the pinned-root failure, to tell the reader what to do.
    """
    ok = checks.add(
        f"{prefix}_chain_signatures", assessment.signatures_ok, assessment.signatures_detail
    )
    root_detail = assessment.root_detail
    if not assessment.root_pinned and untrusted_hint:
        root_detail = f"{root_detail}; {untrusted_hint}"
    ok &= checks.add(f"{prefix}_chain_root_pinned", assessment.root_pinned, root_detail)
    window = f"[{_iso(assessment.not_before)}, {_iso(assessment.not_after)}]"
    valid = assessment.valid_at(at)
    detail = (
        f"every certificate is valid at {_iso(at)} (chain window {window})"
        if valid
        else f"not every certificate is valid at {_iso(at)}: the chain is valid only in {window}"
    )
    ok &= checks.add(f"{prefix}_chain_validity", valid, detail)
    return ok


