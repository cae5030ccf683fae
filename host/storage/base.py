"""What the host stores, and the one interface every storage backend implements.

The host keeps everything the enclave hands it: sealed states (opaque blobs, versioned),
receipts (append-only, each checked to extend the chain before it is stored), and the
transactions the enclave signed with their status on chain. A sealed state is durable
(fsynced) when `save_sealed_state` returns: only then may the host release outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from wire.records import ReceiptRecord, TransactionRecord, TxStatus


class StorageError(Exception):
    """The store cannot do what was asked: unreachable, corrupt, or newer than this code."""


class ChainViolation(StorageError):
    """A receipt does not extend the stored chain (gap, reorder, or wrong previous hash)."""


class FencedOut(StorageError):
    """A write by a host whose lease (fencing token) is no longer the live one: refused,
    nothing of it stored. The host must stop driving the agent (host/storage/lease.py)."""


@dataclass(frozen=True)
class Fence:
    """The lease a fenced store's writes must still hold: its row, holder and token."""

    name: str
    holder: str
    token: int


@runtime_checkable
class FencedStorage(Protocol):
    """A store whose writes can be fenced by the agent's lease (PostgreSQL)."""

    def fence(self, fence: Fence) -> None:
        """From now on, refuse every write unless the lease row still holds `fence`."""
        ...

    def fence_out(self, reason: str) -> None:
        """Refuse every write from now on, without asking the database."""
        ...


# A table row as the database driver returns it: its columns' types are the schema's
# (host/storage/migrations.py), which the driver does not know.
Row = tuple[Any, ...]


def only_row(row: Row | None, query: str) -> Row:
    """The row an aggregate query (max, count) always returns.

    Raises:
        StorageError: there is none (a broken driver or database).
    """
    if row is None:
        raise StorageError(f"the database returned no row for {query!r}")
    return row


class Storage(Protocol):
    """A storage backend. Every method is safe to call from several threads."""

    def latest_sealed_state(self) -> tuple[int, bytes] | None:
        """The newest sealed state as (version, blob), or None before the first."""
        ...

    def save_sealed_state(self, version: int, blob: bytes) -> None:
        """Store a sealed state durably (written atomically, fsynced) before returning.

        Saving a version at or below the newest stored one is refused: state never goes back.

        Raises:
            StorageError: the version does not advance, or the write failed.
        """
        ...

    def append_receipts(self, records: list[ReceiptRecord]) -> None:
        """Append receipts atomically (all or none); each must extend the chain.

        A record whose seq is already stored with the same hash is skipped (a replay after a
        restart delivers the same receipts again); one with another hash is a violation.

        Raises:
            ChainViolation: a gap, a reordering, a different receipt at a stored seq, or a
                prevHash that is not the stored head's hash.
        """
        ...

    def receipts(self, from_seq: int, limit: int) -> list[ReceiptRecord]:
        """Up to `limit` receipts with seq >= from_seq, in order."""
        ...

    def receipt(self, seq: int) -> ReceiptRecord | None: ...

    def head(self) -> tuple[int, bytes]:
        """(seq, hash) of the newest receipt; (0, 32 zero bytes) when there is none."""
        ...

    def add_transactions(self, records: list[TransactionRecord]) -> None:
        """Store signed transactions (a stored tx_hash is skipped: replays are harmless)."""
        ...

    def set_transaction_status(self, tx_hash: bytes, status: TxStatus, detail: str = "") -> None:
        """Record what happened to a transaction on chain.

        Raises:
            StorageError: no such transaction.
        """
        ...

    def transactions(self, status: TxStatus | None = None) -> list[TransactionRecord]:
        """All transactions (or those with `status`), by nonce."""
        ...

    def transactions_from_nonce(self, nonce: int) -> list[TransactionRecord]:
        """Every transaction with a nonce of `nonce` or more (a replaced one and its
        replacements share a nonce), by nonce."""
        ...

    def get_meta(self, key: str) -> str | None: ...

    def put_meta(self, key: str, value: str) -> None: ...

    def close(self) -> None: ...
