"""ECDSA checks over raw r||s signatures, the encoding Intel, AWS and AMD evidence use."""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


def verify_raw_signature(
    key: ec.EllipticCurvePublicKey,
    raw_signature: bytes,
    message: bytes,
    algorithm: hashes.HashAlgorithm | None = None,
) -> bool:
    """True when `raw_signature` (r||s, big-endian halves) signs `message` under `key`.

    The hash defaults to SHA-256 (DCAP); pass SHA-384 for Nitro and SEV-SNP.
    """
    half = len(raw_signature) // 2
    if half == 0:
        return False
    signature = encode_dss_signature(
        int.from_bytes(raw_signature[:half], "big"), int.from_bytes(raw_signature[half:], "big")
    )
    try:
        key.verify(signature, message, _ECDSA_SHA256 if algorithm is None else ec.ECDSA(algorithm))
    # ValueError too: a signature the backend refuses to even check is still one that does
    # not verify, and callers turn the answer into a failed check rather than an error.
    except (InvalidSignature, ValueError):
        return False
    return True
