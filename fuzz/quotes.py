"""Target `quotes`: evidence bytes into the one verification entry point.

`verify_evidence` detects the format (Intel DCAP quote, AWS Nitro document, AMD SEV-SNP
report; raw, hex or base64) and verifies it. A quote is attacker-supplied by nature: it
comes from whoever claims to run the enclave. Documented outcomes: a report (valid or not)
or an `AttestationError` (EvidenceFormatError and its subclasses, CollateralFormatError).
"""

from __future__ import annotations

import contextlib

from attestation.errors import AttestationError
from attestation.verifier import verify_evidence
from fuzz.harness import VECTORS, VERIFY_AT

# Seeds: every real evidence vector of tests/vectors/attestation.
SEED_GLOBS = ("*.bin", "*.cbor")


def TestOneInput(data: bytes) -> None:
    with contextlib.suppress(AttestationError):
        verify_evidence(data, at=VERIFY_AT)


def seeds() -> list[bytes]:
    return [path.read_bytes() for glob in SEED_GLOBS for path in sorted(VECTORS.glob(glob))]
