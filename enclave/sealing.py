"""Sealed state: AES-256-GCM under a key only this measurement on this platform can derive.

Blob layout (all of it but the ciphertext is authenticated as associated data):

    magic "TAS1" (4) | version (1) | SHA-256 of the measurement (32) | GCM nonce (12) |
    ciphertext with its 16-byte tag

The key is HKDF-SHA256(platform sealing key, salt = "tee-agent/seal/v1", info = the
measurement's canonical encoding). A blob from another measurement therefore names the
measurement it was sealed for and cannot be decrypted; a changed byte fails the GCM tag.
"""

from __future__ import annotations

import hashlib
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from enclave.platform.base import Measurement

MAGIC = b"TAS1"
VERSION = 1
_HKDF_SALT = b"tee-agent/seal/v1"
_NONCE_SIZE = 12
_TAG_SIZE = 16
_HEADER_SIZE = len(MAGIC) + 1 + 32 + _NONCE_SIZE
# Sealed state holds keys, counters and a bounded queue of outputs; far below this.
MAX_SEALED_BYTES = 16 << 20


class SealingError(Exception):
    """A sealed blob cannot be opened: garbage, truncated, tampered, or from elsewhere."""


class Sealer:
    """Seals and unseals bytes for one measurement on one platform."""

    def __init__(self, platform_key: bytes, measurement: Measurement) -> None:
        if len(platform_key) < 16:
            raise SealingError("the platform sealing key is shorter than 16 bytes")
        self._binding = measurement.digest_input()
        self.measurement_digest = hashlib.sha256(self._binding).digest()
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT, info=self._binding
        ).derive(platform_key)
        self._aead = AESGCM(key)

    def __repr__(self) -> str:  # the key never reaches a log
        return f"Sealer(measurement={self.measurement_digest.hex()[:16]}...)"

    def seal(self, plaintext: bytes) -> bytes:
        """Encrypt and authenticate `plaintext` for this measurement."""
        header = MAGIC + bytes([VERSION]) + self.measurement_digest
        nonce = secrets.token_bytes(_NONCE_SIZE)
        return header + nonce + self._aead.encrypt(nonce, plaintext, header + self._binding)

    def unseal(self, blob: bytes) -> bytes:
        """Decrypt a blob made by `seal` for this same measurement.

        Raises:
            SealingError: the blob is not a sealed state, was sealed for another measurement
                or version, or was modified.
        """
        if len(blob) > MAX_SEALED_BYTES:
            raise SealingError(
                f"sealed state is {len(blob)} bytes; the limit is {MAX_SEALED_BYTES}"
            )
        if len(blob) < _HEADER_SIZE + _TAG_SIZE or not blob.startswith(MAGIC):
            raise SealingError(
                f"not a tee-agent sealed state: expected at least {_HEADER_SIZE + _TAG_SIZE} "
                f"bytes starting with {MAGIC.decode()}, got {len(blob)} bytes starting with "
                f"{blob[:4].hex() or 'nothing'}"
            )
        version = blob[4]
        if version != VERSION:
            raise SealingError(
                f"sealed state version {version} is not supported (expected {VERSION})"
            )
        sealed_for = blob[5:37]
        if sealed_for != self.measurement_digest:
            raise SealingError(
                f"sealed state belongs to another measurement (sealed for {sealed_for.hex()}, "
                f"this enclave is {self.measurement_digest.hex()}): code, config or model changed"
            )
        header, nonce = blob[:37], blob[37:_HEADER_SIZE]
        try:
            return self._aead.decrypt(nonce, blob[_HEADER_SIZE:], header + self._binding)
        except InvalidTag:
            raise SealingError(
                "sealed state failed authentication: it was modified, truncated, or sealed "
                "on another platform"
            ) from None
