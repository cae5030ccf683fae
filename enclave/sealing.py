"""Sealed state: AES-256-GCM under a key only this measurement, config and model can derive.

Blob layout, version 2 (everything but the ciphertext is authenticated as associated data):

    magic "TAS1" (4) | version 2 (1) | SHA-256 of the measurement (32) | config hash (32) |
    model hash (32, zeros without a model) | GCM nonce (12) | ciphertext with its 16-byte tag

The key is HKDF-SHA256(platform sealing key, salt = "tee-agent/seal/v2", info = the
measurement's canonical encoding || "config=" config hash ";" || "model=" model hash ";").
The config and model are bound explicitly, whatever the platform's registers cover: on TDX
and SGX the measurement alone did not always cover them (issue 14), and a state sealed under
one enclave.toml must never open under another (say one whose per-trade limit is 10^9). The
header names what the blob was sealed for, so a refusal says which of the three changed.

Version 1 blobs (magic | 1 | measurement digest | nonce | ciphertext; key from salt
"tee-agent/seal/v1" and the measurement alone) bound only the measurement. On the simulated
platform the measurement covers config (rtmr0) and model (rtmr1), so they still open there
(`opens_version_1`) and the next seal rewrites them as version 2; elsewhere they are refused.
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
VERSION = 2
UNBOUND_VERSION = 1  # measurement only: see the module docstring
_HKDF_SALT = b"tee-agent/seal/v2"
_V1_HKDF_SALT = b"tee-agent/seal/v1"
_HASH_SIZE = 32  # SHA-256: the measurement digest, the config hash, the model hash
_NONCE_SIZE = 12
_TAG_SIZE = 16
_PREFIX = len(MAGIC) + 1  # magic and version
_HEADER_SIZE = _PREFIX + 3 * _HASH_SIZE + _NONCE_SIZE
_V1_HEADER_SIZE = _PREFIX + _HASH_SIZE + _NONCE_SIZE
# Sealed state holds keys, counters and a bounded queue of outputs; far below this.
MAX_SEALED_BYTES = 16 << 20


class SealingError(Exception):
    """A sealed blob cannot be opened: garbage, truncated, tampered, or from elsewhere."""


class SealedForAnotherConfig(SealingError):
    """The blob was sealed under another measured config (enclave.toml changed)."""


class SealedForAnotherModel(SealingError):
    """The blob was sealed for another model file."""


class SealedForAnotherMeasurement(SealingError):
    """The blob was sealed for another measurement (code, registers or platform changed)."""


class UnboundSealedState(SealingError):
    """A version 1 blob, which did not bind config and model, on a platform where its
    measurement did not cover them either."""


class Sealer:
    """Seals and unseals bytes for one measurement, config and model on one platform.

    opens_version_1: accept version 1 blobs (measurement-bound only). Pass True only where
    the measurement itself covers config and model (the simulated platform).

    Raises (constructor):
        SealingError: the platform key is shorter than 16 bytes, or a hash is not 32 bytes.
    """

    def __init__(
        self,
        platform_key: bytes,
        measurement: Measurement,
        *,
        config_hash: bytes,
        model_hash: bytes,
        opens_version_1: bool = False,
    ) -> None:
        if len(platform_key) < 16:
            raise SealingError("the platform sealing key is shorter than 16 bytes")
        if len(config_hash) != _HASH_SIZE or len(model_hash) != _HASH_SIZE:
            raise SealingError(
                f"config and model hashes are {_HASH_SIZE} bytes; got {len(config_hash)} "
                f"and {len(model_hash)}"
            )
        measured = measurement.digest_input()
        self.measurement_digest = hashlib.sha256(measured).digest()
        self.config_hash = config_hash
        self.model_hash = model_hash
        self._binding = measured + b"config=" + config_hash + b";model=" + model_hash + b";"
        self._aead = AESGCM(_derive(platform_key, _HKDF_SALT, self._binding))
        self._v1: tuple[bytes, AESGCM] | None = None
        if opens_version_1:
            self._v1 = (measured, AESGCM(_derive(platform_key, _V1_HKDF_SALT, measured)))

    def __repr__(self) -> str:  # the key never reaches a log
        return (
            f"Sealer(measurement={self.measurement_digest.hex()[:16]}..., "
            f"config={self.config_hash.hex()[:16]}...)"
        )

    def seal(self, plaintext: bytes) -> bytes:
        """Encrypt and authenticate `plaintext` for this measurement, config and model."""
        header = (
            MAGIC + bytes([VERSION]) + self.measurement_digest + self.config_hash + self.model_hash
        )
        nonce = secrets.token_bytes(_NONCE_SIZE)
        return header + nonce + self._aead.encrypt(nonce, plaintext, header + self._binding)

    def unseal(self, blob: bytes) -> bytes:
        """Decrypt a blob made by `seal` for this same measurement, config and model.

        Raises:
            SealedForAnotherConfig: it was sealed under another config.
            SealedForAnotherModel: it was sealed for another model.
            SealedForAnotherMeasurement: it was sealed for another measurement.
            UnboundSealedState: a version 1 blob where version 1 is not accepted.
            SealingError: not a sealed state, an unknown version, or modified.
        """
        if len(blob) > MAX_SEALED_BYTES:
            raise SealingError(
                f"sealed state is {len(blob)} bytes; the limit is {MAX_SEALED_BYTES}"
            )
        if len(blob) < _PREFIX or not blob.startswith(MAGIC):
            raise SealingError(
                f"not a tee-agent sealed state: expected bytes starting with "
                f"{MAGIC.decode()}, got {len(blob)} bytes starting with "
                f"{blob[:4].hex() or 'nothing'}"
            )
        version = blob[4]
        if version == UNBOUND_VERSION:
            return self._unseal_v1(blob)
        if version != VERSION:
            raise SealingError(
                f"sealed state version {version} is not supported (expected {VERSION})"
            )
        if len(blob) < _HEADER_SIZE + _TAG_SIZE:
            raise SealingError(
                f"sealed state is truncated: {len(blob)} bytes, a version {VERSION} blob has "
                f"at least {_HEADER_SIZE + _TAG_SIZE}"
            )
        sealed_for = blob[_PREFIX : _PREFIX + _HASH_SIZE]
        config = blob[_PREFIX + _HASH_SIZE : _PREFIX + 2 * _HASH_SIZE]
        model = blob[_PREFIX + 2 * _HASH_SIZE : _PREFIX + 3 * _HASH_SIZE]
        # Config first: it is the cause an operator can act on, and on the simulated
        # platform a changed config also changes the measurement.
        if config != self.config_hash:
            raise SealedForAnotherConfig(
                f"sealed state belongs to another config (sealed under config hash "
                f"{config.hex()}, this enclave runs {self.config_hash.hex()}): the measured "
                "enclave config changed, and state never carries over to another config"
            )
        if model != self.model_hash:
            raise SealedForAnotherModel(
                f"sealed state belongs to another model (sealed for model hash {model.hex()}, "
                f"this enclave runs {self.model_hash.hex()})"
            )
        if sealed_for != self.measurement_digest:
            raise SealedForAnotherMeasurement(
                f"sealed state belongs to another measurement (sealed for "
                f"{sealed_for.hex()}, this enclave is {self.measurement_digest.hex()}): "
                "enclave code or the platform's registers changed"
            )
        header, nonce = (
            blob[: _HEADER_SIZE - _NONCE_SIZE],
            blob[_HEADER_SIZE - _NONCE_SIZE : _HEADER_SIZE],
        )
        return _open(self._aead, nonce, blob[_HEADER_SIZE:], header + self._binding)

    def _unseal_v1(self, blob: bytes) -> bytes:
        if self._v1 is None:
            raise UnboundSealedState(
                f"sealed state is version {UNBOUND_VERSION}, which bound neither the config "
                "nor the model on this platform: it cannot be proven to belong to this "
                "config, so it is refused. Start from empty state (new keys) and move funds "
                "with the vault owner's key, or open it once with the release that sealed it "
                "and the same config"
            )
        measured, aead = self._v1
        if len(blob) < _V1_HEADER_SIZE + _TAG_SIZE:
            raise SealingError(
                f"sealed state is truncated: {len(blob)} bytes, a version {UNBOUND_VERSION} "
                f"blob has at least {_V1_HEADER_SIZE + _TAG_SIZE}"
            )
        sealed_for = blob[_PREFIX : _PREFIX + _HASH_SIZE]
        if sealed_for != self.measurement_digest:
            raise SealedForAnotherMeasurement(
                f"sealed state belongs to another measurement (sealed for "
                f"{sealed_for.hex()}, this enclave is {self.measurement_digest.hex()}): "
                "code, config or model changed"
            )
        header = blob[: _PREFIX + _HASH_SIZE]
        nonce = blob[_PREFIX + _HASH_SIZE : _V1_HEADER_SIZE]
        return _open(aead, nonce, blob[_V1_HEADER_SIZE:], header + measured)


def _derive(platform_key: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(platform_key)


def _open(aead: AESGCM, nonce: bytes, ciphertext: bytes, associated: bytes) -> bytes:
    try:
        return aead.decrypt(nonce, ciphertext, associated)
    except InvalidTag:
        raise SealingError(
            "sealed state failed authentication: it was modified, truncated, or sealed "
            "on another platform (or under another platform sealing key)"
        ) from None
