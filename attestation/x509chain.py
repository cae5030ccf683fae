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
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtensionOID

from attestation.checks import ChainCheckNames
from attestation.report import Check, CheckList
from attestation.timefmt import format_second, whole_second
from attestation.timefmt import format_time as _iso
from attestation.trust import MALFORMED_X509, is_simulated_root, strict_x509_parsing


@dataclass(frozen=True, eq=False)
class ChainAssessment:
    """What a chain proves independently of time."""

    certificates: tuple[x509.Certificate, ...]
    certificates_der: tuple[bytes, ...]
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

    @functools.cached_property
    def window(self) -> str:
        """The validity window of the whole chain, as text."""
        return f"[{_iso(self.not_before)}, {_iso(self.not_after)}]"

    @functools.cached_property
    def simulated(self) -> bool:
        """True when the chain ends at a tee-agent simulated root (a label, not trust)."""
        return is_simulated_root(self.root)

    def valid_at(self, at: datetime) -> bool:
        return self.not_before <= at <= self.not_after


def fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER encoding, lowercase hex."""
    return hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest()


def load_certificate(der: bytes) -> x509.Certificate:
    """Load a DER certificate and parse every field verification reads, up front.

    cryptography parses names, validity and extensions lazily; touching them here turns a
    malformed certificate into one ValueError at load time instead of a surprise later.

    Raises:
        ValueError: the bytes are not a well-formed certificate.
    """
    try:
        with strict_x509_parsing():
            certificate = x509.load_der_x509_certificate(der)
            certificate.subject.rfc4514_string()
            certificate.issuer.rfc4514_string()
            _ = certificate.not_valid_before_utc, certificate.not_valid_after_utc
            list(certificate.extensions)
            _ = certificate.signature_algorithm_oid, certificate.serial_number
    except MALFORMED_X509 as exc:
        raise ValueError(f"malformed certificate: {exc}") from None
    return certificate


def public_key_of(certificate: x509.Certificate) -> object | None:
    """The certificate's public key, or None when its key cannot be loaded."""
    try:
        return certificate.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return None


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
    certificates = tuple(load_certificate(der) for der in chain_der)
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
        certificates_der=chain_der,
        signatures_ok=signatures_ok,
        signatures_detail=signatures_detail,
        root_pinned=root_pinned,
        root_detail=root_detail,
        not_before=max(cert.not_valid_before_utc for cert in certificates),
        not_after=min(cert.not_valid_after_utc for cert in certificates),
    )


def _check_links(certificates: Sequence[x509.Certificate], require_ca: bool) -> tuple[bool, str]:
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
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            what = "is not self-signed" if child is issuer else "is not issued by the next one"
            return False, f"certificate {position} ('{describe(child)}') {what}: {exc}"
    return True, f"{len(certificates)} certificate(s), every signature verifies up to the root"


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        constraints = certificate.extensions.get_extension_for_oid(
            ExtensionOID.BASIC_CONSTRAINTS
        ).value
    except (x509.ExtensionNotFound, x509.DuplicateExtension, ValueError):
        # Absent, or an extension list that does not parse: either way not a usable CA.
        return False
    return bool(getattr(constraints, "ca", False))


@functools.lru_cache(maxsize=512)
def static_chain_checks(
    assessment: ChainAssessment, names: ChainCheckNames, untrusted_hint: str | None = None
) -> tuple[Check, Check]:
    """The time-independent chain checks (signatures, pinned root), made once per chain.

    `untrusted_hint` is appended to the pinned-root failure, to tell the reader what to do.
    """
    root_detail = assessment.root_detail
    if not assessment.root_pinned and untrusted_hint:
        root_detail = f"{root_detail}; {untrusted_hint}"
    return (
        Check(
            name=names.signatures,
            passed=assessment.signatures_ok,
            detail=assessment.signatures_detail,
        ),
        Check(name=names.root_pinned, passed=assessment.root_pinned, detail=root_detail),
    )


def chain_validity_check(assessment: ChainAssessment, at: datetime, name: str) -> Check:
    """Whether every certificate of the chain is valid at `at`, judged on every call."""
    return _validity_check(assessment, name, assessment.valid_at(at), whole_second(at))


@functools.lru_cache(maxsize=1024)
def _validity_check(assessment: ChainAssessment, name: str, valid: bool, second: int) -> Check:
    # Made once per chain, outcome and second: a busy verifier checks many quotes a second.
    # Only its text depends on the second; `valid` comes from the exact time.
    window, when = assessment.window, format_second(second)
    if valid:
        detail = f"every certificate is valid at {when} (chain window {window})"
    else:
        detail = f"not every certificate is valid at {when}: the chain is valid only in {window}"
    return Check(name=name, passed=valid, detail=detail)


def add_chain_checks(
    checks: CheckList,
    assessment: ChainAssessment,
    at: datetime,
    names: ChainCheckNames,
    *,
    untrusted_hint: str | None = None,
) -> bool:
    """Record the three chain checks `names` (signatures, pinned root, validity at `at`).

    `untrusted_hint` is appended to the pinned-root failure, to tell the reader what to do.
    """
    signatures, root = static_chain_checks(assessment, names, untrusted_hint)
    ok = checks.append(signatures) & checks.append(root)
    ok &= checks.append(chain_validity_check(assessment, at, names.validity))
    return ok
