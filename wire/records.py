"""Receipts and transactions on the wire: the `Receipt` and `Transaction` messages and the
values the host stores them as.

The enclave releases receipts and the transactions signed under them in these messages;
the host stores them as `ReceiptRecord` and `TransactionRecord`, serves them to clients in
the same messages, and the clients (`tee-agent receipts`, `verify agent`) read them back
here. Each direction of each conversion is written once, in this module.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError
from tee_agent_rpc.messages_pb2 import Receipt as ReceiptMessage
from tee_agent_rpc.messages_pb2 import Transaction as TransactionMessage

from attestation.receipt import Hash32, Receipt
from wire.errors import MalformedMessage

TxStatus = Literal["signed", "pending", "mined", "reverted", "dropped", "replaced"]


class ReceiptRecord(BaseModel):
    """A receipt with its hash and the decision and inputs it commits to."""

    model_config = ConfigDict(frozen=True)

    receipt: Receipt
    # keccak EIP-712 hash of `receipt` (what the next receipt's prevHash must hold).
    receipt_hash: Hash32
    decision_json: str
    input_json: str

    def to_file_dict(self) -> dict[str, object]:
        """What `tee-agent receipts --out` writes and `replay-decision` reads: the receipt's
        JSON fields, then decision_json and input_json."""
        return {
            **self.receipt.to_json_dict(),
            "decision_json": self.decision_json,
            "input_json": self.input_json,
        }


class TransactionRecord(BaseModel):
    """A transaction the enclave signed, and what became of it on chain."""

    model_config = ConfigDict(frozen=True)

    tx_hash: bytes
    nonce: int
    raw_transaction: bytes
    receipt_seq: int
    status: TxStatus = "signed"
    # Revert reason, RPC error, block number: what a person needs to understand the status.
    detail: str = ""


def receipt_message(record: ReceiptRecord) -> ReceiptMessage:
    """The `Receipt` message of `record`."""
    return ReceiptMessage(
        **record.receipt.model_dump(),
        receipt_hash=record.receipt_hash,
        decision_json=record.decision_json,
        input_json=record.input_json,
    )


def receipt_record(message: ReceiptMessage) -> ReceiptRecord:
    """The record a `Receipt` message carries.

    Raises:
        MalformedMessage: a field is out of range (a hash not 32 bytes, seq 0, a verdict
            that is empty or not printable ASCII, v not 27 or 28 ...).
    """
    fields = {name: getattr(message, name) for name in Receipt.model_fields}
    try:
        return ReceiptRecord(
            receipt=Receipt.model_validate(fields),
            receipt_hash=message.receipt_hash,
            decision_json=message.decision_json,
            input_json=message.input_json,
        )
    except ValidationError as exc:
        problems = "; ".join(f"{error['loc'][-1]}: {error['msg']}" for error in exc.errors())
        raise MalformedMessage(f"receipt seq {message.seq}: {problems}") from None


def transaction_message(record: TransactionRecord) -> TransactionMessage:
    """The `Transaction` message of `record`."""
    return TransactionMessage(**record.model_dump())


def transaction_record(message: TransactionMessage) -> TransactionRecord:
    """The record a `Transaction` message carries.

    Raises:
        MalformedMessage: the status is not one of "signed", "pending", "mined",
            "reverted", "dropped", "replaced".
    """
    try:
        return TransactionRecord(
            tx_hash=message.tx_hash,
            nonce=message.nonce,
            raw_transaction=message.raw_transaction,
            receipt_seq=message.receipt_seq,
            status=message.status,
            detail=message.detail,
        )
    except ValidationError as exc:
        raise MalformedMessage(
            f"transaction 0x{message.tx_hash.hex()}: {exc.errors()[0]['msg']}"
        ) from None
