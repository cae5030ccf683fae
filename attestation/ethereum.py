"""Ethereum account helpers: which address signed a digest, as ecrecover answers it.

Recovery follows what a contract accepts through OpenZeppelin's ECDSA.recover: v is 27 or
28 and s at most n/2 (EIP-2), so a malleated copy of a signature recovers nothing.
"""

from __future__ import annotations

from coincurve import PublicKey
from eth_hash.auto import keccak
from eth_utils import to_checksum_address

from attestation.errors import SignatureError

# SEC 2 §2.4.1: the order n of secp256k1. EIP-2 and OpenZeppelin's ECDSA.recover accept
# only s <= n/2, so a malleated (high-s) copy of a signature is refused here too.
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def recover_signer(digest: bytes, signature: bytes) -> str:
    """The checksummed address whose key made `signature` (r ‖ s ‖ v) over `digest`.

    Raises:
        SignatureError: digest is not 32 bytes, the signature is not 65 bytes, v is not
            27/28, r or s is out of range (s above n/2 included), or no key recovers.
    """
    return to_checksum_address(recover_address(digest, signature))


def recover_address(digest: bytes, signature: bytes) -> bytes:
    """The 20-byte address whose key made `signature` (r ‖ s ‖ v) over `digest`.

    Raises:
        SignatureError: digest is not 32 bytes, the signature is not 65 bytes, v is not
            27/28, r or s is out of range (s above n/2 included), or no key recovers.
    """
    if len(digest) != 32 or len(signature) != 65:
        lengths = f"{len(digest)} and {len(signature)} bytes"
        raise SignatureError(f"expected a 32-byte digest and a 65-byte signature, got {lengths}")
    r, s, v = int.from_bytes(signature[:32]), int.from_bytes(signature[32:64]), signature[64]
    if v not in (27, 28):
        raise SignatureError(f"the signature's v is {v}, expected 27 or 28")
    if not (0 < r < SECP256K1_N and 0 < s <= SECP256K1_N // 2):
        raise SignatureError("the signature's r or s is out of range (s must be at most n/2)")
    try:
        key = PublicKey.from_signature_and_message(signature[:64] + bytes([v - 27]), digest, None)
    except (ValueError, TypeError) as error:
        raise SignatureError(f"no public key recovers from the signature: {error}") from None
    return keccak(key.format(compressed=False)[1:])[12:]
