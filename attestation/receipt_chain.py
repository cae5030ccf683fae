"""Verification of a chain of decision receipts: signer, sequence, links, expected hashes.

Third parties check the receipts an agent published with `verify_receipts`: each must be
signed by the attested address, carry the next seq, and hold the previous receipt's digest
in its prev_hash; the report says, check by check, up to which receipt the chain holds.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from eth_utils import to_checksum_address
from pydantic import BaseModel, ConfigDict

from attestation.checks import CheckName
from attestation.errors import ReceiptFormatError, SignatureError
from attestation.ethereum import recover_address
from attestation.receipt import ZERO_HASH, Receipt, domain_separator, receipt_hash
from attestation.report import Check, CheckList

_OPTIONAL_CHECKS = (
    CheckName.RECEIPT_CONFIG_HASH,
    CheckName.RECEIPT_MODEL_HASH,
    CheckName.RECEIPT_HEAD,
)
_EXPECTED_FIELDS = {
    CheckName.RECEIPT_CONFIG_HASH: ("config_hash", "configHash"),
    CheckName.RECEIPT_MODEL_HASH: ("model_hash", "modelHash"),
}
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


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
    if address not in (to_checksum_address(attested), address.lower(), "0x" + address[2:].upper()):
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
        for name, expected in (
            (CheckName.RECEIPT_CONFIG_HASH, config_hash),
            (CheckName.RECEIPT_MODEL_HASH, model_hash),
        ):
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
        failure = Check(name=CheckName.RECEIPT_HEAD, passed=False, detail=detail)

    checks, optional = CheckList(), (config_hash, model_hash, expected_head_hash)
    names = [CheckName.RECEIPT_SIGNATURE, CheckName.RECEIPT_SEQUENCE, CheckName.RECEIPT_CHAIN]
    names += [n for n, v in zip(_OPTIONAL_CHECKS, optional, strict=True) if v is not None]
    stopped_early = failure is not None and failure.name != CheckName.RECEIPT_HEAD
    if stopped_early and CheckName.RECEIPT_HEAD in names:
        # The head is only compared once the whole chain verified.
        names.remove(CheckName.RECEIPT_HEAD)
    passed = "no receipt passed" if receipts else "no receipts to check"
    if verified:
        passed = f"seq {start_seq}..{start_seq + verified - 1} passed"
    if failure is not None and failure.name != CheckName.RECEIPT_HEAD:
        passed += f"; verification stopped at seq {start_seq + verified} ({failure.name})"
    for name in names:
        if failure is not None and failure.name == name:
            checks.append(failure)
        elif name == CheckName.RECEIPT_HEAD:
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
        signer = recover_address(digest, receipt.signature)
    except SignatureError as error:
        return Check(name=CheckName.RECEIPT_SIGNATURE, passed=False, detail=f"seq {seq}: {error}")
    if signer != attested:
        recovered, expected = to_checksum_address(signer), to_checksum_address(attested)
        detail = f"seq {seq} recovers to {recovered}, not the attested {expected}"
        return Check(name=CheckName.RECEIPT_SIGNATURE, passed=False, detail=detail)
    if seq != expected_seq:
        missing = f"{expected_seq}" if seq == expected_seq + 1 else f"{expected_seq}..{seq - 1}"
        kind = "reordered, repeated or replayed receipt"
        if seq > expected_seq:
            kind = f"gap: seq {missing} missing"
        detail = f"expected seq {expected_seq}, found {seq} ({kind})"
        return Check(name=CheckName.RECEIPT_SEQUENCE, passed=False, detail=detail)
    if receipt.prev_hash != prev:
        previous = f"the hash of seq {seq - 1}" if index else "the starting hash"
        detail = (
            f"seq {seq}'s prevHash 0x{receipt.prev_hash.hex()} does not match {previous} "
            f"(0x{prev.hex()}): an earlier receipt was edited or dropped"
        )
        return Check(name=CheckName.RECEIPT_CHAIN, passed=False, detail=detail)
    return None


def _expected_field(name: CheckName, receipt: Receipt, expected: bytes | None) -> Check | None:
    field, label = _EXPECTED_FIELDS[name]
    found: bytes = getattr(receipt, field)
    if expected is None or found == expected:
        return None
    detail = f"seq {receipt.seq} has {label} 0x{found.hex()}, expected 0x{expected.hex()}"
    return Check(name=name, passed=False, detail=detail)
