"""Decision receipts: their format, their EIP-712 digest, and verification of a receipt chain.

Each decision the enclave takes is recorded in a `Receipt` signed by the attested account
key over EIP-712 typed data, so a contract can check it with ecrecover. Each receipt's
`prev_hash` holds the digest of the one before it (32 zero bytes for seq 1), so a gap, an
edit or a reordering breaks the chain. The enclave makes receipts with these functions;
third parties check them with `verify_receipts`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Annotated, Any

from coincurve import PublicKey
from eth_hash.auto import keccak
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from attestation.errors import ReceiptFormatError, SignatureError
from attestation.jsontext import loads_bounded
from attestation.report import Check, CheckList

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
# SEC 2 §2.4.1: the order n of secp256k1. EIP-2 and OpenZeppelin's ECDSA.recover accept
# only s <= n/2, so a malleated (high-s) copy of a signature is refused here too.
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_UINT64_MAX = 2**64 - 1
_UINT256_MAX = 2**256 - 1
MAX_VERDICT_LENGTH = 128
ZERO_HASH = bytes(32)

CHECK_SIGNATURE = "receipt_signature"
CHECK_SEQUENCE = "receipt_sequence"
CHECK_CHAIN = "receipt_chain"
CHECK_CONFIG_HASH = "receipt_config_hash"
CHECK_MODEL_HASH = "receipt_model_hash"
CHECK_HEAD = "receipt_head"
_OPTIONAL_CHECKS = (CHECK_CONFIG_HASH, CHECK_MODEL_HASH, CHECK_HEAD)
_EXPECTED_FIELDS = {
    CHECK_CONFIG_HASH: ("config_hash", "configHash"), CHECK_MODEL_HASH: ("model_hash", "modelHash")
}  # fmt: skip

_HASH_FIELDS = (
    "prev_hash", "input_digest", "model_hash", "config_hash", "decision_hash", "tx_hash"
)  # fmt: skip
_SIGNED_FIELDS = ("seq", *_HASH_FIELDS[:5], "verdict", "tx_hash", "timestamp")
_FIELDS = (*_SIGNED_FIELDS, "signature")
_HEX = re.compile(r"0x([0-9a-fA-F]{2})*")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
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
    # Machine-readable: "signed", "hold", "refused:max_notional_per_trade".
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
        out: dict[str, Any] = self.model_dump()
        for name in (*_HASH_FIELDS, "signature"):
            out[name] = "0x" + out[name].hex()
        return out

    @classmethod
    def from_message(cls, message: Any) -> Receipt:
        """The receipt carried by any object with the receipt's fields as attributes (the
        gRPC `Receipt` messages of both the enclave's and the public API).

        Raises:
            pydantic.ValidationError: a field is missing, the wrong type or out of range.
        """
        return cls.model_validate({name: getattr(message, name) for name in _FIELDS})

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


# The enclave hashes each receipt twice (to sign it, then as the chain's new head): the
# second time comes from here.
@lru_cache(maxsize=256)
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
    hashes = (prev_hash, input_digest, model_hash, config_hash, decision_hash)
    if any(len(value) != 32 for value in (*hashes, tx_hash)):
        raise ReceiptFormatError("every receipt hash must be exactly 32 bytes")
    if not (0 <= seq <= _UINT64_MAX and 0 <= timestamp <= _UINT64_MAX):
        raise ReceiptFormatError(f"seq {seq} or timestamp {timestamp} is outside uint64")
    # EIP-712 encodeData: atomic values as 32-byte words, a string as the keccak of its UTF-8.
    words = (seq.to_bytes(32, "big"), *hashes, keccak(verdict.encode()), tx_hash)
    struct_hash = keccak(b"".join((_RECEIPT_TYPE_HASH, *words, timestamp.to_bytes(32, "big"))))
    return keccak(_EIP712_PREFIX + domain_separator(chain_id) + struct_hash)


def receipt_hash(receipt: Receipt, chain_id: int) -> bytes:
    """A receipt's EIP-712 digest on `chain_id`: what the next receipt's prev_hash holds.

    Raises:
        ReceiptFormatError: chain_id is not a positive uint256.
    """
    return receipt_digest(
        **{name: getattr(receipt, name) for name in _SIGNED_FIELDS}, chain_id=chain_id
    )


def checksum_address(address20: bytes) -> str:
    """The EIP-55 mixed-case checksum spelling of a 20-byte address."""
    hex_address = address20.hex()
    nibbles = keccak(hex_address.encode()).hex()
    return "0x" + "".join(
        char.upper() if int(nibble, 16) >= 8 else char
        for char, nibble in zip(hex_address, nibbles, strict=False)
    )


def recover_signer(digest: bytes, signature: bytes) -> str:
    """The checksummed address whose key made `signature` (r ‖ s ‖ v) over `digest`.

    Raises:
        SignatureError: digest is not 32 bytes, the signature is not 65 bytes, v is not
            27/28, r or s is out of range (s above n/2 included), or no key recovers.
    """
    return checksum_address(_recover_address(digest, signature))


def _recover_address(digest: bytes, signature: bytes) -> bytes:
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


class ReceiptChainReport(BaseModel):
    """What a list of receipts proves, check by check.

    `count` is how many receipts were given, `verified` how many of them (from the first)
    passed every check, and `head_hash` the hash of the last of those (the starting
    prev_hash when none did): the point up to which the chain can be trusted.
    """

    model_config = ConfigDict(frozen=True)

    valid: bool
    count: int
    verified: int
    head_hash: str
    checks: list[Check]
    error: str | None

    def check(self, name: str) -> Check | None:
        """The check called `name`, or None when it did not run."""
        return next((check for check in self.checks if check.name == name), None)


def _expected_hash(name: str, value: bytes | None) -> bytes | None:
    if value is not None and len(value) != 32:
        raise ReceiptFormatError(f"the expected {name} must be 32 bytes, got {len(value)}")
    return value


def verify_receipts(
    receipts: Sequence[Receipt],
    *,
    address: str,
    chain_id: int,
    config_hash: bytes | None = None,
    model_hash: bytes | None = None,
    start_seq: int = 1,
    start_prev_hash: bytes = ZERO_HASH,
    expected_head_hash: bytes | None = None,
) -> ReceiptChainReport:
    """Check that `receipts` (oldest first) form an unbroken chain signed by `address`.

    Stops at the first receipt that fails and names the check and the seq. A chain that
    was cut short at its newest end is only detectable against `expected_head_hash` (the
    head the agent reports); without it the remaining prefix verifies.

    Raises:
        ReceiptFormatError: an item is not a `Receipt`, `address` is not a 20-byte hex
            address with a valid EIP-55 checksum, an expected hash is not 32 bytes, or
            chain_id is not a positive uint256.
    """
    if not _ADDRESS.fullmatch(address):
        raise ReceiptFormatError(f"the attested address {address!r} is not 0x + 40 hex digits")
    attested = bytes.fromhex(address[2:])
    if address not in (checksum_address(attested), address.lower(), "0x" + address[2:].upper()):
        raise ReceiptFormatError(f"the attested address {address} fails its EIP-55 checksum")
    config_hash = _expected_hash("config hash", config_hash)
    model_hash = _expected_hash("model hash", model_hash)
    expected_head_hash = _expected_hash("head hash", expected_head_hash)
    if len(start_prev_hash) != 32:
        raise ReceiptFormatError(f"start_prev_hash must be 32 bytes, got {len(start_prev_hash)}")
    domain_separator(chain_id)  # validates chain_id before any receipt is looked at
    receipts = list(receipts)
    if any(not isinstance(receipt, Receipt) for receipt in receipts):
        raise ReceiptFormatError("verify_receipts takes Receipt objects (see from_json_dict)")

    failure: Check | None = None
    head, verified = start_prev_hash, 0
    for receipt in receipts:
        digest = receipt_hash(receipt, chain_id)
        failure = _link_failure(receipt, digest, head, start_seq + verified, attested, verified)
        for name, expected in ((CHECK_CONFIG_HASH, config_hash), (CHECK_MODEL_HASH, model_hash)):
            failure = failure or _expected_field(name, receipt, expected)
        if failure is not None:
            break
        head, verified = digest, verified + 1
    if failure is None and expected_head_hash is not None and expected_head_hash != head:
        ends = f"ends at seq {start_seq + verified - 1}" if verified else "has no receipts"
        detail = (
            f"the chain {ends} (hash 0x{head.hex()}), but the agent's head is "
            f"0x{expected_head_hash.hex()}: newer receipts are missing"
        )
        failure = Check(name=CHECK_HEAD, passed=False, detail=detail)

    checks, optional = CheckList(), (config_hash, model_hash, expected_head_hash)
    names = [CHECK_SIGNATURE, CHECK_SEQUENCE, CHECK_CHAIN]
    names += [n for n, v in zip(_OPTIONAL_CHECKS, optional, strict=True) if v is not None]
    if failure is not None and failure.name != CHECK_HEAD and CHECK_HEAD in names:
        names.remove(CHECK_HEAD)  # the head is only compared once the whole chain verified
    passed = "no receipt passed" if receipts else "no receipts to check"
    if verified:
        passed = f"seq {start_seq}..{start_seq + verified - 1} passed"
    if failure is not None and failure.name != CHECK_HEAD:
        passed += f"; verification stopped at seq {start_seq + verified} ({failure.name})"
    for name in names:
        if failure is not None and failure.name == name:
            checks.append(failure)
        elif name == CHECK_HEAD:
            checks.add(name, True, f"the chain ends at the agent's head 0x{head.hex()}")
        else:
            checks.add(name, True, passed)
    return ReceiptChainReport(
        valid=failure is None,
        count=len(receipts),
        verified=verified,
        head_hash="0x" + head.hex(),
        checks=checks.items,
        error=checks.first_failure(),
    )


def _link_failure(
    receipt: Receipt, digest: bytes, prev: bytes, expected_seq: int, attested: bytes, index: int
) -> Check | None:
    """The first of signature, sequence and chain link that `receipt` fails, if any."""
    seq = receipt.seq
    try:
        signer = _recover_address(digest, receipt.signature)
    except SignatureError as error:
        return Check(name=CHECK_SIGNATURE, passed=False, detail=f"seq {seq}: {error}")
    if signer != attested:
        recovered, expected = checksum_address(signer), checksum_address(attested)
        detail = f"seq {seq} recovers to {recovered}, not the attested {expected}"
        return Check(name=CHECK_SIGNATURE, passed=False, detail=detail)
    if seq != expected_seq:
        missing = f"{expected_seq}" if seq == expected_seq + 1 else f"{expected_seq}..{seq - 1}"
        kind = "reordered, repeated or replayed receipt"
        if seq > expected_seq:
            kind = f"gap: seq {missing} missing"
        detail = f"expected seq {expected_seq}, found {seq} ({kind})"
        return Check(name=CHECK_SEQUENCE, passed=False, detail=detail)
    if receipt.prev_hash != prev:
        previous = f"the hash of seq {seq - 1}" if index else "the starting hash"
        detail = (
            f"seq {seq}'s prevHash 0x{receipt.prev_hash.hex()} does not match {previous} "
            f"(0x{prev.hex()}): an earlier receipt was edited or dropped"
        )
        return Check(name=CHECK_CHAIN, passed=False, detail=detail)
    return None


def _expected_field(name: str, receipt: Receipt, expected: bytes | None) -> Check | None:
    field, label = _EXPECTED_FIELDS[name]
    found: bytes = getattr(receipt, field)
    if expected is None or found == expected:
        return None
    detail = f"seq {receipt.seq} has {label} 0x{found.hex()}, expected 0x{expected.hex()}"
    return Check(name=name, passed=False, detail=detail)
