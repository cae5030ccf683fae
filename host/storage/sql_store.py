"""The `Storage` methods written once in SQL, for SQLite and PostgreSQL alike.

A backend subclasses `SqlStorage` and supplies only the connection: how a write
transaction starts and which lock it takes (so that two writers, in two threads or on two
hosts, cannot both extend the chain from the same head), how a read runs, and how the
connection closes. The SQL here uses sqlite3's `?` placeholders; the PostgreSQL backend
translates them. Every value reaches the database as a parameter, never in the SQL text.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from types import TracebackType
from typing import Literal, Protocol, get_args

from attestation.receipt import ZERO_HASH
from host.storage.base import Row, StorageError, only_row
from host.storage.migrations import Dialect, apply_next_migration
from host.storage.rows import (
    INT64_MAX,
    check_int64,
    receipt_from_row,
    receipt_row,
    receipts_to_append,
    transaction_from_row,
)
from wire.records import ReceiptRecord, TransactionRecord, TxStatus

# What a write transaction must hold so that no other writer (thread or host) interleaves.
WriteLock = Literal["schema", "sealed_states", "receipts"] | None
KEEP_SEALED_STATES = 16
_TX_STATUSES: tuple[str, ...] = get_args(TxStatus)
# Statements written out in full (no string building), each value a placeholder.
_SELECT_RECEIPTS_FROM = (
    "SELECT seq, receipt_hash, prev_hash, verdict, tx_hash, timestamp, receipt_json,"
    " decision_json, input_json FROM receipts WHERE seq >= ? ORDER BY seq LIMIT ?"
)
_INSERT_RECEIPT = (
    "INSERT INTO receipts (seq, receipt_hash, prev_hash, verdict, tx_hash, timestamp,"
    " receipt_json, decision_json, input_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_TRANSACTION = (
    "INSERT INTO transactions (tx_hash, nonce, raw, receipt_seq, status, detail, updated_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tx_hash) DO NOTHING"
)
# Two statements, not one "WHERE status = ? OR ?": with the OR the planner cannot use the
# transactions_by_status index and scans the table on every broadcaster poll.
_SELECT_ALL_TRANSACTIONS = (
    "SELECT tx_hash, nonce, raw, receipt_seq, status, detail, updated_at FROM transactions"
    " ORDER BY nonce, tx_hash"
)
_SELECT_TRANSACTIONS_BY_STATUS = (
    "SELECT tx_hash, nonce, raw, receipt_seq, status, detail, updated_at FROM transactions"
    " WHERE status = ? ORDER BY nonce, tx_hash"
)
_SELECT_TRANSACTIONS_FROM_NONCE = (
    "SELECT tx_hash, nonce, raw, receipt_seq, status, detail, updated_at FROM transactions"
    " WHERE nonce >= ? ORDER BY nonce, tx_hash"
)


class SqlCursor(Protocol):
    """The part of a DB-API cursor the shared SQL uses (sqlite3's, or psycopg's adapted)."""

    @property
    def rowcount(self) -> int: ...

    def execute(self, sql: str, params: Sequence[object] = (), /) -> object: ...

    def executemany(self, sql: str, params: Iterable[Sequence[object]], /) -> object: ...

    def fetchone(self) -> Row | None: ...

    def fetchall(self) -> list[Row]: ...


class SqlStorage(ABC):
    """A `Storage` over one database connection, used by one thread at a time.

    Every call holds the store's lock for its whole transaction: threads take turns on the
    connection. Writers in other processes or on other hosts are kept out by the
    backend's `_transaction` lock.
    """

    _dialect: Dialect
    _db_errors: tuple[type[Exception], ...]

    def __init__(self, where: str, clock: Callable[[], float]) -> None:
        self._where = where  # for messages: a path, or a DSN without its password
        self._clock = clock
        self._lock = threading.Lock()
        self._closed = False

    @abstractmethod
    def _transaction(self, lock: WriteLock) -> AbstractContextManager[SqlCursor]:
        """A write transaction holding `lock`; committed on exit, rolled back on error."""

    @abstractmethod
    def _statements(self) -> AbstractContextManager[SqlCursor]:
        """A cursor whose statements each commit on their own (reads)."""

    @abstractmethod
    def _close_connection(self) -> None: ...

    @contextmanager
    def _write(self, what: str, lock: WriteLock = None) -> Iterator[SqlCursor]:
        with self._lock, self._translated(what), self._transaction(lock) as cursor:
            yield cursor

    @contextmanager
    def _read(self, what: str) -> Iterator[SqlCursor]:
        with self._lock, self._translated(what), self._statements() as cursor:
            yield cursor

    @contextmanager
    def _translated(self, what: str) -> Iterator[None]:
        """Turn the driver's errors into StorageError, saying what was being done where."""
        if self._closed:
            raise StorageError(f"{what}: the store {self._where} is closed")
        try:
            yield
        except self._db_errors as error:
            raise StorageError(f"{what} failed on {self._where}: {error}") from error

    def _migrate(self) -> None:
        """Bring the schema up to date, one migration per transaction.

        Raises:
            StorageError: the database's schema is newer than this code, or a step failed.
        """
        done = False
        while not done:
            with self._write("migrating the schema", "schema") as cursor:
                done = apply_next_migration(cursor, self._dialect, self._where, self._clock())

    def schema_version(self) -> int:
        """The schema version the database is at."""
        with self._read("reading the schema version") as cursor:
            query = "SELECT max(version) FROM schema_version"
            cursor.execute(query)
            return int(only_row(cursor.fetchone(), query)[0] or 0)

    def latest_sealed_state(self) -> tuple[int, bytes] | None:
        """The newest sealed state as (version, blob), or None before the first."""
        with self._read("reading the sealed state") as cursor:
            cursor.execute("SELECT version, blob FROM sealed_states ORDER BY version DESC LIMIT 1")
            row = cursor.fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]))

    def save_sealed_state(self, version: int, blob: bytes) -> None:
        """Store a sealed state durably, keeping the newest 16.

        Raises:
            StorageError: the version does not advance past the newest stored one, is not
                a 63-bit integer, or the write failed.
        """
        check_int64("a sealed state version", version)
        if not isinstance(blob, bytes):
            raise StorageError(f"a sealed state must be bytes, got {type(blob).__name__}")
        with self._write(f"saving sealed state version {version}", "sealed_states") as cursor:
            query = "SELECT max(version) FROM sealed_states"
            cursor.execute(query)
            newest = only_row(cursor.fetchone(), query)[0]
            if newest is not None and version <= newest:
                raise StorageError(
                    f"sealed state version {version} does not advance past the stored "
                    f"version {newest}: sealed state never goes back"
                )
            cursor.execute(
                "INSERT INTO sealed_states (version, blob, stored_at) VALUES (?, ?, ?)",
                (version, blob, self._clock()),
            )
            cursor.execute(
                "SELECT version FROM sealed_states ORDER BY version DESC LIMIT 1 OFFSET ?",
                (KEEP_SEALED_STATES,),
            )
            oldest_to_drop = cursor.fetchone()
            if oldest_to_drop is not None:
                cursor.execute("DELETE FROM sealed_states WHERE version <= ?", oldest_to_drop)

    def append_receipts(self, records: list[ReceiptRecord]) -> None:
        """Append receipts atomically (all or none); each must extend the chain.

        Raises:
            ChainViolation: a gap, a reordering, a different receipt at a stored seq, or a
                prevHash that is not the stored head's hash. Nothing of the batch is stored.
            StorageError: a receipt hash is not 32 bytes, a seq or timestamp is beyond
                2**63-1, or the write failed.
        """
        if not records:
            return
        for record in records:
            if len(record.receipt_hash) != 32:
                raise StorageError(f"the receipt hash of seq {record.receipt.seq} is not 32 bytes")
            check_int64("a receipt seq", record.receipt.seq, minimum=1)
            check_int64("a receipt timestamp", record.receipt.timestamp)
        seqs = [record.receipt.seq for record in records]
        first, last = min(seqs), max(seqs)
        with self._write(f"appending receipts seq {first}..{last}", "receipts") as cursor:
            head = self._head(cursor)
            stored: dict[int, bytes] = {}
            if first <= head[0]:
                cursor.execute(
                    "SELECT seq, receipt_hash FROM receipts WHERE seq >= ? AND seq <= ?",
                    (first, min(last, head[0])),
                )
                stored = {int(seq): bytes(digest) for seq, digest in cursor.fetchall()}
            new = receipts_to_append(records, head, stored)
            if new:
                cursor.executemany(_INSERT_RECEIPT, [receipt_row(record) for record in new])

    def receipts(self, from_seq: int, limit: int) -> list[ReceiptRecord]:
        """Up to `limit` receipts with seq >= from_seq, in order (none when limit <= 0)."""
        if limit <= 0 or from_seq > INT64_MAX:
            return []
        with self._read(f"reading receipts from seq {from_seq}") as cursor:
            cursor.execute(_SELECT_RECEIPTS_FROM, (max(from_seq, 0), min(limit, INT64_MAX)))
            rows = cursor.fetchall()
        return [receipt_from_row(row) for row in rows]

    def receipt(self, seq: int) -> ReceiptRecord | None:
        """The receipt at `seq`, or None when none is stored there."""
        if not 1 <= seq <= INT64_MAX:
            return None
        with self._read(f"reading receipt seq {seq}") as cursor:
            cursor.execute(_SELECT_RECEIPTS_FROM, (seq, 1))
            rows = cursor.fetchall()
        return receipt_from_row(rows[0]) if rows and rows[0][0] == seq else None

    def head(self) -> tuple[int, bytes]:
        """(seq, hash) of the newest receipt; (0, 32 zero bytes) when there is none."""
        with self._read("reading the receipt head") as cursor:
            return self._head(cursor)

    @staticmethod
    def _head(cursor: SqlCursor) -> tuple[int, bytes]:
        cursor.execute("SELECT seq, receipt_hash FROM receipts ORDER BY seq DESC LIMIT 1")
        row = cursor.fetchone()
        return (0, ZERO_HASH) if row is None else (int(row[0]), bytes(row[1]))

    def add_transactions(self, records: list[TransactionRecord]) -> None:
        """Store signed transactions; a stored tx_hash is skipped (replays are harmless).

        Raises:
            StorageError: a transaction names a receipt seq that is not stored, its hash is
                not 32 bytes, its nonce is beyond 2**63-1, or the write failed.
        """
        for record in records:
            if len(record.tx_hash) != 32:
                raise StorageError(f"transaction hash 0x{record.tx_hash.hex()} is not 32 bytes")
            check_int64("a transaction nonce", record.nonce)
            check_int64("a transaction's receipt seq", record.receipt_seq, minimum=1)
        if not records:
            return
        now = self._clock()
        with self._write(f"storing {len(records)} transactions") as cursor:
            for record in records:
                cursor.execute("SELECT 1 FROM receipts WHERE seq = ?", (record.receipt_seq,))
                if cursor.fetchone() is None:
                    raise StorageError(
                        f"transaction 0x{record.tx_hash.hex()} (nonce {record.nonce}) names "
                        f"receipt seq {record.receipt_seq}, which is not stored: "
                        "store the receipt first"
                    )
            rows = [
                (r.tx_hash, r.nonce, r.raw_transaction, r.receipt_seq, r.status, r.detail, now)
                for r in records
            ]
            cursor.executemany(_INSERT_TRANSACTION, rows)

    def set_transaction_status(self, tx_hash: bytes, status: TxStatus, detail: str = "") -> None:
        """Record what happened to a transaction on chain.

        Raises:
            StorageError: no such transaction, or `status` is not a TxStatus.
        """
        if status not in _TX_STATUSES:
            raise StorageError(f"transaction status must be one of {_TX_STATUSES}, got {status!r}")
        with self._write(f"setting the status of transaction 0x{tx_hash.hex()}") as cursor:
            cursor.execute(
                "UPDATE transactions SET status = ?, detail = ?, updated_at = ? WHERE tx_hash = ?",
                (status, detail, self._clock(), tx_hash),
            )
            if cursor.rowcount == 0:
                raise StorageError(f"no transaction 0x{tx_hash.hex()} is stored")

    def transactions(self, status: TxStatus | None = None) -> list[TransactionRecord]:
        """All transactions (or those with `status`), by nonce."""
        with self._read("reading transactions") as cursor:
            if status is None:
                cursor.execute(_SELECT_ALL_TRANSACTIONS)
            else:
                cursor.execute(_SELECT_TRANSACTIONS_BY_STATUS, (status,))
            rows = cursor.fetchall()
        return [transaction_from_row(row) for row in rows]

    def transactions_from_nonce(self, nonce: int) -> list[TransactionRecord]:
        """Every transaction with a nonce of `nonce` or more (all versions of each), by nonce."""
        check_int64("a transaction nonce", nonce)
        with self._read("reading transactions by nonce") as cursor:
            cursor.execute(_SELECT_TRANSACTIONS_FROM_NONCE, (nonce,))
            rows = cursor.fetchall()
        return [transaction_from_row(row) for row in rows]

    def get_meta(self, key: str) -> str | None:
        """The value stored under `key`, or None."""
        with self._read(f"reading meta {key!r}") as cursor:
            cursor.execute("SELECT value FROM meta WHERE key = ?", (key,))
            row = cursor.fetchone()
        return None if row is None else str(row[0])

    def put_meta(self, key: str, value: str) -> None:
        """Store `value` under `key`, replacing what was there."""
        with self._write(f"writing meta {key!r}") as cursor:
            cursor.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def close(self) -> None:
        """Close the connection; later calls raise StorageError. Closing twice is harmless."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._close_connection()

    def __enter__(self) -> SqlStorage:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
