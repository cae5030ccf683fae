"""What the agent's changes come to: counts per batch, released outputs, and refusals."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc

from wire.records import ReceiptRecord, TransactionRecord


class AgentError(Exception):
    """A request the agent refuses; `code` is the gRPC status to answer with."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class BatchResult:
    """One batch's outcome: ticks accepted, ticks refused (seq, reason), and the receipts
    and transactions released and stored along with it."""

    accepted: int
    refused: tuple[tuple[int, str], ...]
    receipts: int
    transactions: int


@dataclass(frozen=True)
class Released:
    """Receipts the enclave released, in order, and the transactions signed under them."""

    receipts: list[ReceiptRecord] = field(default_factory=list)
    transactions: list[TransactionRecord] = field(default_factory=list)
    # More outputs of the version asked for wait in the enclave: store these, ask again.
    more: bool = False


def refuse_when_following(following: str) -> None:
    """Refuse a change or an enclave call on a host that follows (`following`: who leads).

    Raises:
        AgentError: FAILED_PRECONDITION, naming the leader, when `following` is set.
    """
    if following:
        raise AgentError(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"this host follows and does not drive the agent: the lease is {following}; "
            "send this to the leader",
        )
