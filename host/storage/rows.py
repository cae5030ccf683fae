"""How records become table rows and back, and the rule a batch of receipts must meet.

Both backends use these inside their write transactions, so SQLite and PostgreSQL store
the same bytes and refuse the same chains.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from attestation.receipt import Receipt
from host.storage.base import ChainViolation, Row, StorageError
from wire.records import ReceiptRecord, TransactionRecord

# Both databases store integers as signed 64-bit: a uint64 above this cannot be stored.
INT64_MAX = 2**63 - 1


def check_int64(what: str, value: int, minimum: int = 0) -> int:
    """`value`, if it is an int in [minimum, INT64_MAX].

    Raises:
        StorageError: it is not, naming `what` and the value.
    """
    if type(value) is not int or not minimum <= value <= INT64_MAX:
        raise StorageError(f"{what} must be an integer in [{minimum}, 2**63-1], got {value!r}")
    return value


def receipt_row(record: ReceiptRecord) -> tuple[object, ...]:
    """The receipts table's columns for `record`, in their declared order."""
    receipt = record.receipt
    receipt_json = json.dumps(receipt.to_json_dict(), sort_keys=True, separators=(",", ":"))
    return (
        receipt.seq, record.receipt_hash, receipt.prev_hash, receipt.verdict, receipt.tx_hash,
        receipt.timestamp, receipt_json, record.decision_json, record.input_json,
    )  # fmt: skip


def receipt_from_row(row: Row) -> ReceiptRecord:
    """The record a receipts row holds.

    Raises:
        StorageError: the stored receipt JSON does not parse as a receipt.
    """
    seq, receipt_hash, _, _, _, _, receipt_json, decision_json, input_json = row
    try:
        receipt = Receipt.from_json_dict(json.loads(receipt_json))
    except ValueError as error:  # ReceiptFormatError and JSONDecodeError are ValueErrors
        raise StorageError(f"the stored receipt at seq {seq} is unreadable: {error}") from None
    return ReceiptRecord(
        receipt=receipt,
        receipt_hash=bytes(receipt_hash),
        decision_json=decision_json,
        input_json=input_json,
    )


def transaction_from_row(row: Row) -> TransactionRecord:
    """The record a transactions row holds."""
    tx_hash, nonce, raw, receipt_seq, status, detail, _ = row
    return TransactionRecord.model_validate(
        {"tx_hash": bytes(tx_hash), "nonce": nonce, "raw_transaction": bytes(raw),
         "receipt_seq": receipt_seq, "status": status, "detail": detail}
    )  # fmt: skip


def receipts_to_append(
    records: Sequence[ReceiptRecord],
    head: tuple[int, bytes],
    stored_hashes: Mapping[int, bytes],
) -> list[ReceiptRecord]:
    """The records of a batch that extend the chain ending at `head`, in order.

    `stored_hashes` maps each stored seq the batch mentions to its hash. Records already
    stored with the same hash (a replay) are left out.

    Raises:
        ChainViolation: the batch is not consecutive, leaves a gap after the head, holds
            a different receipt for a stored seq, or has a prevHash that is not its
            predecessor's hash. The message names the seq and both hashes.
    """
    head_seq, head_hash = head
    new: list[ReceiptRecord] = []
    previous: ReceiptRecord | None = None
    for record in records:
        seq, found = record.receipt.seq, record.receipt_hash
        if previous is not None and seq != previous.receipt.seq + 1:
            raise ChainViolation(
                f"receipt seq {seq} (prevHash 0x{record.receipt.prev_hash.hex()}) follows seq "
                f"{previous.receipt.seq} (hash 0x{previous.receipt_hash.hex()}) in the batch: "
                "receipts must be consecutive and in order (reordered or missing receipt)"
            )
        previous = record
        if seq <= head_seq:
            stored = stored_hashes.get(seq)
            if stored != found:
                stored_text = "nothing" if stored is None else f"hash 0x{stored.hex()}"
                raise ChainViolation(
                    f"seq {seq} is stored with {stored_text}, but the receipt given for seq "
                    f"{seq} has hash 0x{found.hex()}: a different receipt for a stored seq"
                )
            continue  # a replay of what is stored
        if seq != head_seq + 1:
            raise ChainViolation(
                f"gap: receipt seq {seq} (hash 0x{found.hex()}) does not follow the head seq "
                f"{head_seq} (hash 0x{head_hash.hex()}): seq {head_seq + 1}..{seq - 1} missing"
            )
        if record.receipt.prev_hash != head_hash:
            raise ChainViolation(
                f"seq {seq}'s prevHash 0x{record.receipt.prev_hash.hex()} is not the hash "
                f"0x{head_hash.hex()} of seq {head_seq}, the receipt before it"
            )
        new.append(record)
        head_seq, head_hash = seq, found
    return new
