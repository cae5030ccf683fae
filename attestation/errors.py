"""The ways attestation can fail, one named error each.

Every message names what was expected and what was found, so the person reading it knows
what broke. No message ever carries key material.
"""

from __future__ import annotations


class AttestationError(Exception):
    """Base class of every error raised by the `attestation` package."""


class EvidenceFormatError(AttestationError):
    """The evidence bytes cannot be parsed: truncated, oversized, malformed or unknown."""


class QuoteFormatError(EvidenceFormatError):
    """An Intel SGX/TDX DCAP quote (or a simulated one) is malformed."""


class NitroFormatError(EvidenceFormatError):
    """An AWS Nitro Enclaves attestation document is malformed."""


class SnpFormatError(EvidenceFormatError):
    """An AMD SEV-SNP attestation report is malformed."""


class CollateralFormatError(AttestationError):
    """Collateral (TCB Info, QE Identity, CRLs, issuer chains, VCEK) cannot be parsed."""


class SignatureError(AttestationError):
    """A signature does not verify with the key it must verify with."""


class CertificateChainError(AttestationError):
    """A certificate chain is broken, untrusted, revoked or not valid at the given time."""


class PolicyFormatError(AttestationError):
    """A validation policy file cannot be read or does not match the policy schema."""


class PolicyViolation(AttestationError):
    """Evidence verified, but its fields are not acceptable under the caller's policy."""


class ReceiptFormatError(AttestationError):
    """A decision receipt, or a file of them, is structurally invalid.

    A missing or unknown field, a hash that is not 32 bytes of hex, a signature that is not
    65 bytes ending in v 27/28, a number outside uint64, a verdict that is not short ASCII.
    """


class EventLogError(EvidenceFormatError):
    """A TDX event log (dstack's JSON form or the CCEL/TCG binary form) cannot be read."""


class EventLogTruncatedError(EventLogError):
    """The event log ends inside a structure: a field, a digest or an event's data."""


class EventLogSizeError(EventLogError):
    """The event log, or a part of it, is larger than any real log (a hostile size)."""


class EventLogMalformedError(EventLogError):
    """The event log is not of either form, or a field holds a value no log may hold."""
