"""The agent's account key: EIP-1559 transactions, EIP-712 data and raw digests, signed fast.

Signatures are byte-identical to eth-account's (the same RFC 6979 nonces from
libsecp256k1 through coincurve, low-s), but the type-2 transaction is RLP-encoded by hand,
each field once, which makes signing several times faster than `Account.sign_transaction`.
The private key never appears in a repr, a string, an error or a log line.
"""

from __future__ import annotations

import re
from typing import Any

from coincurve import PrivateKey
from eth_account.messages import encode_typed_data
from eth_utils import to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from attestation.ethereum import SECP256K1_N
from attestation.keccak import keccak256 as keccak

# EIP-2718 / EIP-1559: the transaction type byte of a dynamic-fee transaction.
EIP1559_TX_TYPE = b"\x02"
# EIP-191 version byte 0x01 is EIP-712 structured data: "\x19\x01" ‖ domain ‖ hashStruct.
_EIP191_PREFIX = b"\x19"
_UINT256_MAX = 2**256 - 1
# EIP-2681 caps the nonce at 2**64 - 1; clients hold gas limits in a uint64 too.
_UINT64_MAX = 2**64 - 1
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


class SignerError(Exception):
    """A key or a value to sign is unusable; the message never includes the key."""


class Eip1559Transaction(BaseModel):
    """An EIP-1559 (type 2) call or transfer; contract creation is not allowed (`to` is set)."""

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")

    chain_id: int = Field(ge=1, le=_UINT256_MAX)
    nonce: int = Field(ge=0, le=_UINT64_MAX)
    max_priority_fee_per_gas: int = Field(ge=0, le=_UINT256_MAX)
    max_fee_per_gas: int = Field(ge=0, le=_UINT256_MAX)
    gas: int = Field(ge=0, le=_UINT64_MAX)
    to: bytes = Field(min_length=20, max_length=20)
    value: int = Field(ge=0, le=_UINT256_MAX)
    data: bytes = b""
    access_list: tuple[()] = ()  # EIP-2930 access lists are not supported: always empty

    @field_validator("to", mode="before")
    @classmethod
    def _address_from_hex(cls, to: Any) -> Any:
        """Accept "0x" + 40 hex digits too; a mixed-case spelling must pass EIP-55."""
        if not isinstance(to, str):
            return to
        if not _ADDRESS.fullmatch(to):
            raise ValueError(f"`to` is not 0x + 40 hex digits: {to!r}")
        raw = bytes.fromhex(to[2:])
        if to[2:] not in (to[2:].lower(), to[2:].upper()) and to_checksum_address(raw) != to:
            raise ValueError(f"`to` {to} fails its EIP-55 checksum")
        return raw

    @model_validator(mode="after")
    def _priority_fee_within_max_fee(self) -> Eip1559Transaction:
        # EIP-1559: a transaction with maxPriorityFeePerGas > maxFeePerGas is invalid.
        if self.max_priority_fee_per_gas > self.max_fee_per_gas:
            raise ValueError(
                f"max_priority_fee_per_gas {self.max_priority_fee_per_gas} exceeds "
                f"max_fee_per_gas {self.max_fee_per_gas}"
            )
        return self

    def unsigned_fields(self) -> list[int | bytes | list[Any]]:
        """The EIP-1559 payload fields in signing order, before yParity, r and s."""
        return [
            self.chain_id, self.nonce, self.max_priority_fee_per_gas, self.max_fee_per_gas,
            self.gas, self.to, self.value, self.data, [],
        ]  # fmt: skip

    def signing_hash(self) -> bytes:
        """keccak256(0x02 ‖ rlp(unsigned fields)): the digest the sender signs (EIP-1559)."""
        return keccak(EIP1559_TX_TYPE + rlp_encode(self.unsigned_fields()))


class SignedTransaction(BaseModel):
    """A signed type-2 transaction, ready for eth_sendRawTransaction."""

    model_config = ConfigDict(frozen=True)

    raw_transaction: bytes
    hash: bytes  # keccak256(raw_transaction): the transaction hash on chain
    r: int
    s: int
    v: int  # the y-parity, 0 or 1, as typed transactions carry it
    sender: str  # checksummed address of the signer


def rlp_encode(item: int | bytes | list[Any]) -> bytes:
    """Recursive-length-prefix encoding (Ethereum Yellow Paper, appendix B).

    Integers are big-endian with no leading zeros (0 is the empty string).

    Raises:
        SignerError: a negative integer or an unsupported type.
    """
    if type(item) is int and item >= 0:
        # A single byte below 0x80 is its own encoding; 0 is the empty string's, 0x80; any
        # other is its big-endian bytes (at least one, 0x80 or above) after their length.
        if item < 0x80:
            return bytes((item,)) if item else b"\x80"
        raw = item.to_bytes((item.bit_length() + 7) // 8, "big")
        return _rlp_length(len(raw), 0x80) + raw
    if isinstance(item, bytes):
        if len(item) == 1 and item[0] < 0x80:
            return item
        return _rlp_length(len(item), 0x80) + item
    if isinstance(item, int) and not isinstance(item, bool):
        if item < 0:
            raise SignerError(f"RLP cannot encode the negative integer {item}")
        return rlp_encode(item.to_bytes((item.bit_length() + 7) // 8, "big"))
    if isinstance(item, list):
        payload = b"".join(rlp_encode(element) for element in item)
        return _rlp_length(len(payload), 0xC0) + payload
    raise SignerError(f"RLP cannot encode a {type(item).__name__}")


def _rlp_length(length: int, offset: int) -> bytes:
    # Yellow Paper appendix B: short lengths fit in the prefix byte, longer ones follow it.
    if length <= 55:
        return bytes([offset + length])
    encoded = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([offset + 55 + len(encoded)]) + encoded


class AccountSigner:
    """A secp256k1 account key held in the enclave, and the address it controls."""

    __slots__ = ("_key", "address")

    def __init__(self, key: PrivateKey) -> None:
        self._key = key
        public = key.public_key.format(compressed=False)[1:]
        self.address: str = to_checksum_address(keccak(public)[12:])

    @classmethod
    def generate(cls) -> AccountSigner:
        """A new key from the operating system's CSPRNG (libsecp256k1 via coincurve)."""
        return cls(PrivateKey())

    @classmethod
    def from_bytes(cls, secret: bytes) -> AccountSigner:
        """The key whose 32-byte big-endian scalar is `secret` (as `secret_bytes` gave it).

        Raises:
            SignerError: `secret` is not 32 bytes, or is 0 or >= the curve order.
        """
        if not isinstance(secret, bytes) or len(secret) != 32:
            raise SignerError("an account key must be exactly 32 bytes")
        if not 0 < int.from_bytes(secret) < SECP256K1_N:
            raise SignerError("an account key must be in [1, n-1] for secp256k1")
        return cls(PrivateKey(secret))

    def secret_bytes(self) -> bytes:
        """The 32-byte private key, only so that the enclave can seal it.

        It must never leave the enclave unsealed: not to the host, a log, or an error.
        """
        return bytes(self._key.secret)

    def __repr__(self) -> str:
        return f"AccountSigner(address={self.address})"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("an AccountSigner cannot be pickled; seal secret_bytes() instead")

    def sign_digest(self, digest: bytes) -> bytes:
        """Sign a 32-byte digest as is: 65 bytes r ‖ s ‖ v with v 27 or 28 (ecrecover form).

        Raises:
            SignerError: `digest` is not 32 bytes.
        """
        if not isinstance(digest, bytes) or len(digest) != 32:
            raise SignerError("a digest to sign must be exactly 32 bytes")
        signature = self._key.sign_recoverable(digest, hasher=None)
        return signature[:64] + bytes([27 + signature[64]])

    def sign_transaction(self, tx: Eip1559Transaction) -> SignedTransaction:
        """Sign an EIP-1559 transaction; byte-identical to eth-account's result."""
        # Each field is RLP-encoded once: the signed payload is the unsigned list's items
        # followed by yParity, r and s, under a new list header.
        body = b"".join([rlp_encode(field) for field in tx.unsigned_fields()])
        digest = keccak(EIP1559_TX_TYPE + _rlp_length(len(body), 0xC0) + body)
        signature = self._key.sign_recoverable(digest, hasher=None)
        r, s = int.from_bytes(signature[:32]), int.from_bytes(signature[32:64])
        y_parity = signature[64]
        body += rlp_encode(y_parity) + rlp_encode(r) + rlp_encode(s)
        raw = EIP1559_TX_TYPE + _rlp_length(len(body), 0xC0) + body
        return SignedTransaction(
            raw_transaction=raw, hash=keccak(raw), r=r, s=s, v=y_parity, sender=self.address
        )

    def sign_typed_data(self, full_message: dict[str, Any]) -> bytes:
        """Sign EIP-712 typed data (types, primaryType, domain, message), e.g. an order.

        Returns 65 bytes r ‖ s ‖ v with v 27 or 28.

        Raises:
            SignerError: the message is not valid EIP-712 typed data.
        """
        try:
            signable = encode_typed_data(full_message=full_message)
        except Exception as error:  # eth-account raises many types; none carries our key
            raise SignerError(f"not valid EIP-712 typed data: {error}") from None
        preimage = _EIP191_PREFIX + signable.version + signable.header + signable.body
        return self.sign_digest(keccak(preimage))
