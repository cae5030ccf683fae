"""Decision receipts: the `Receipt` model, its EIP-712 digest, and its JSON codec.

Each decision the enclave takes is recorded in a `Receipt` signed by the attested account
key over EIP-712 typed data, so a contract can check it with ecrecover. Each receipt's
`prev_hash` holds the digest of the one before it (32 zero bytes for seq 1), so a gap, an
edit or a reordering breaks the chain. The enclave makes receipts with these functions;
third parties check a chain of them with `attestation.receipt_chain.verify_receipts`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from attestation.errors import ReceiptFormatError
from attestation.jsontext import loads_bounded
from attestation.keccak import keccak256 as keccak

# EIP-712 §"Definition of encodeType": the exact type strings hashed into typeHash.
RECEIPT_TYPE = (
    "Receipt(uint64 seq,bytes32 prevHash,bytes32 inputDigest,bytes32 modelHash,"
    "bytes32 configHash,bytes32 decisionHash,string verdict,bytes32 txHash,uint64 timestamp)"
)
DOMAIN_TYPE = "EIP712Domain(string name,string version,uint256 chainId)"
DOMAIN_NAME = "tee-agent receipts"
DOMAIN_VERSION = "1"
_RECEIPT_TYPE_HASH = keccak(RECEIPT_TYPE.encode())
_DOMAIN_TYPE_HASH = keccak(DOMAIN_TYPE.encode())
# EIP-712 §"Specification": the signed message is "\x19\x01" ‖ domainSeparator ‖ hashStruct.
_EIP712_PREFIX = b"\x19\x01"
_UINT64_MAX = 2**64 - 1
_UINT256_MAX = 2**256 - 1
MAX_VERDICT_LENGTH = 128
ZERO_HASH = bytes(32)

_HASH_FIELDS = (
    "prev_hash", "input_digest", "model_hash", "config_hash", "decision_hash", "tx_hash"
)  # fmt: skip
_SIGNED_FIELDS = ("seq", *_HASH_FIELDS[:5], "verdict", "tx_hash", "timestamp")
_FIELDS = (*_SIGNED_FIELDS, "signature")
_HEX = re.compile(r"0x([0-9a-fA-F]{2})*")
Hash32 = Annotated[bytes, Field(min_length=32, max_length=32)]


class Receipt(BaseModel):
    """One signed decision record; the 32-byte hashes are all zeros when there is none."""

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")

    seq: int = Field(ge=1, le=_UINT64_MAX)
    prev_hash: Hash32
    input_digest: Hash32
    model_hash: Hash32
    config_hash: Hash32
    decision_hash: Hash32
    # Machine-readable: "signed", "hold", "refused:max_notional_per_trade", "ticks_refused:3".
    verdict: str = Field(min_length=1, max_length=MAX_VERDICT_LENGTH)
    tx_hash: Hash32
    timestamp: int = Field(ge=0, le=_UINT64_MAX)  # unix seconds
    signature: bytes = Field(min_length=65, max_length=65)  # r ‖ s ‖ v, v in {27, 28}

    @field_validator("verdict")
    @classmethod
    def _printable_ascii(cls, verdict: str) -> str:
        if not (verdict.isascii() and verdict.isprintable()):
            raise ValueError("the verdict must be printable ASCII")
        return verdict

    @field_validator("signature")
    @classmethod
    def _v_is_27_or_28(cls, signature: bytes) -> bytes:
        if signature[64] not in (27, 28):
            raise ValueError(f"the signature's v is {signature[64]}, expected 27 or 28")
        return signature

    def to_json_dict(self) -> dict[str, Any]:
        """The receipt as JSON-ready values: numbers, the verdict, and 0x-prefixed hex."""
        return {
            "seq": self.seq,
            "prev_hash": "0x" + self.prev_hash.hex(),
            "input_digest": "0x" + self.input_digest.hex(),
            "model_hash": "0x" + self.model_hash.hex(),
            "config_hash": "0x" + self.config_hash.hex(),
            "decision_hash": "0x" + self.decision_hash.hex(),
            "verdict": self.verdict,
            "tx_hash": "0x" + self.tx_hash.hex(),
            "timestamp": self.timestamp,
            "signature": "0x" + self.signature.hex(),
        }

    @classmethod
    def from_json_dict(cls, data: Any) -> Receipt:
        """Parse what `to_json_dict` produced.

        Raises:
            ReceiptFormatError: not an object with exactly the receipt's fields, a hex value
                that is malformed or the wrong length, v not 27/28, numbers out of range.
        """
        if not isinstance(data, dict) or set(data) != set(_FIELDS):
            found = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise ReceiptFormatError(f"a receipt needs exactly the fields {_FIELDS}, got {found}")
        values = dict(data)
        for name in (*_HASH_FIELDS, "signature"):
            text = values[name]
            if not isinstance(text, str) or not _HEX.fullmatch(text):
                raise ReceiptFormatError(f"receipt field {name} is not 0x-prefixed hex: {text!r}")
            values[name] = bytes.fromhex(text[2:])
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()
            )
            raise ReceiptFormatError(f"invalid receipt (seq {data['seq']!r}): {problems}") from None


def receipts_to_json(receipts: Sequence[Receipt]) -> str:
    """A file of receipts (a JSON array, oldest first), as `tee-agent verify` reads it."""
    return json.dumps([receipt.to_json_dict() for receipt in receipts], indent=1) + "\n"


def receipts_from_json(text: str | bytes) -> list[Receipt]:
    """Parse a file written by `receipts_to_json`.

    Raises:
        ReceiptFormatError: not JSON, not an array, or any receipt in it is malformed.
    """
    try:
        data = loads_bounded(text)
    # Deep nesting is a ValueError from loads_bounded; RecursionError is the backstop.
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise ReceiptFormatError(f"the receipts file is not JSON: {error}") from None
    if not isinstance(data, list):
        raise ReceiptFormatError(f"the receipts file must be a JSON array, got {type(data)}")
    return [Receipt.from_json_dict(item) for item in data]


def domain_separator(chain_id: int) -> bytes:
    """EIP-712 hashStruct(EIP712Domain) for the receipts domain on `chain_id`.

    Raises:
        ReceiptFormatError: chain_id is not a positive uint256.
    """
    if type(chain_id) is not int or not 0 < chain_id <= _UINT256_MAX:
        raise ReceiptFormatError(f"chain ID must be a positive uint256, got {chain_id!r}")
    return _domain_separator(chain_id)


@lru_cache(maxsize=64)
def _domain_separator(chain_id: int) -> bytes:
    return keccak(
        _DOMAIN_TYPE_HASH
        + keccak(DOMAIN_NAME.encode())
        + keccak(DOMAIN_VERSION.encode())
        + chain_id.to_bytes(32, "big")
    )


def receipt_digest(
    *,
    seq: int,
    prev_hash: bytes,
    input_digest: bytes,
    model_hash: bytes,
    config_hash: bytes,
    decision_hash: bytes,
    verdict: str,
    tx_hash: bytes,
    timestamp: int,
    chain_id: int,
) -> bytes:
    """The EIP-712 digest a receipt's signature signs: keccak(0x1901 ‖ domain ‖ hashStruct).

    Raises:
        ReceiptFormatError: a hash is not 32 bytes, seq or timestamp is outside uint64, or
            chain_id is not a positive uint256.
    """
    return _receipt_digest(
        seq, prev_hash, input_digest, model_hash, config_hash, decision_hash, verdict, tx_hash,
        timestamp, chain_id,
    )  # fmt: skip


_FIVE_HASH_LENGTHS = [32] * 5


# The enclave hashes each receipt twice (to sign it, then as the chain's new head, or when
# it releases it): the second time comes from here. Positional, so the key is quick to make.
@lru_cache(maxsize=256)
def _receipt_digest(
    seq: int,
    prev_hash: bytes,
    input_digest: bytes,
    model_hash: bytes,
    config_hash: bytes,
    decision_hash: bytes,
    verdict: str,
    tx_hash: bytes,
    timestamp: int,
    chain_id: int,
) -> bytes:
    hashes = (prev_hash, input_digest, model_hash, config_hash, decision_hash)
    if list(map(len, hashes)) != _FIVE_HASH_LENGTHS or len(tx_hash) != 32:
        raise ReceiptFormatError("every receipt hash must be exactly 32 bytes")
    if not (0 <= seq <= _UINT64_MAX and 0 <= timestamp <= _UINT64_MAX):
        raise ReceiptFormatError(f"seq {seq} or timestamp {timestamp} is outside uint64")
    # EIP-712 encodeData: atomic values as 32-byte words, a string as the keccak of its UTF-8.
    words = (seq.to_bytes(32, "big"), *hashes, _string_hash(verdict), tx_hash)
    struct_hash = keccak(b"".join((_RECEIPT_TYPE_HASH, *words, timestamp.to_bytes(32, "big"))))
    return keccak(_EIP712_PREFIX + domain_separator(chain_id) + struct_hash)


@lru_cache(maxsize=256)
def _string_hash(text: str) -> bytes:
    # Cached: the verdicts are a few strings ("hold", "signed", "refused:<guardrail>"...).
    return keccak(text.encode())


def receipt_hash(receipt: Receipt, chain_id: int) -> bytes:
    """A receipt's EIP-712 digest on `chain_id`: what the next receipt's prev_hash holds.

    Raises:
        ReceiptFormatError: chain_id is not a positive uint256.
    """
    return _receipt_digest(
        receipt.seq, receipt.prev_hash, receipt.input_digest, receipt.model_hash,
        receipt.config_hash, receipt.decision_hash, receipt.verdict, receipt.tx_hash,
        receipt.timestamp, chain_id,
    )  # fmt: skip
