"""The storage schema, as an ordered list of migrations shared by SQLite and PostgreSQL.

Each migration is applied in its own transaction, together with the `schema_version` row
that records it, so a crash leaves the database at one version or the next, never between.
The SQL is portable but for a few type names, written as `{placeholders}` and filled in per
dialect, and uses sqlite3's `?` parameters (the PostgreSQL backend translates them). Never
edit a released migration: add the next one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from host.storage.base import Row, StorageError, only_row

Dialect = Literal["sqlite", "postgres"]

# Type names that differ between the dialects; everything else is common SQL.
_TYPES: dict[Dialect, dict[str, str]] = {
    "sqlite": {"blob": "BLOB"},
    "postgres": {"blob": "BYTEA"},
}

# Made before any migration, in the same transaction as the first: it says which ran.
SCHEMA_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version ("
    " version INTEGER PRIMARY KEY,"
    " description TEXT NOT NULL,"
    " applied_at DOUBLE PRECISION NOT NULL)"
)


@dataclass(frozen=True)
class Migration:
    """One step of the schema: its version, what it does, and its statements."""

    version: int
    description: str
    statements: tuple[str, ...]

    def sql(self, dialect: Dialect) -> list[str]:
        """The statements with the dialect's type names filled in."""
        return [statement.format(**_TYPES[dialect]) for statement in self.statements]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "sealed states, receipts, transactions, meta",
        (
            # Opaque blobs from the enclave; only the newest few are kept.
            "CREATE TABLE sealed_states ("
            " version BIGINT PRIMARY KEY CHECK (version >= 0),"
            " blob {blob} NOT NULL,"
            " stored_at DOUBLE PRECISION NOT NULL)",
            # Append-only hash chain; receipt_json is the signed receipt as verifiers read it.
            "CREATE TABLE receipts ("
            " seq BIGINT PRIMARY KEY CHECK (seq >= 1),"
            " receipt_hash {blob} NOT NULL UNIQUE CHECK (length(receipt_hash) = 32),"
            " prev_hash {blob} NOT NULL CHECK (length(prev_hash) = 32),"
            " verdict TEXT NOT NULL,"
            " tx_hash {blob} NOT NULL CHECK (length(tx_hash) = 32),"
            " timestamp BIGINT NOT NULL,"
            " receipt_json TEXT NOT NULL,"
            " decision_json TEXT NOT NULL,"
            " input_json TEXT NOT NULL)",
            "CREATE INDEX receipts_by_tx_hash ON receipts (tx_hash)",
            # Every transaction traces back to the receipt that recorded its decision.
            "CREATE TABLE transactions ("
            " tx_hash {blob} PRIMARY KEY CHECK (length(tx_hash) = 32),"
            " nonce BIGINT NOT NULL CHECK (nonce >= 0),"
            " raw {blob} NOT NULL,"
            " receipt_seq BIGINT NOT NULL REFERENCES receipts (seq),"
            " status TEXT NOT NULL"
            "  CHECK (status IN ('signed', 'pending', 'mined', 'reverted', 'dropped')),"
            " detail TEXT NOT NULL,"
            " updated_at DOUBLE PRECISION NOT NULL)",
            "CREATE INDEX transactions_by_nonce ON transactions (nonce)",
            "CREATE INDEX transactions_by_status ON transactions (status, nonce)",
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        ),
    ),
    Migration(
        2,
        "transactions: status 'replaced' (another transaction of the same nonce was mined)",
        (
            # Neither SQLite nor a portable ALTER can widen a CHECK: the table is rebuilt.
            "CREATE TABLE transactions_v2 ("
            " tx_hash {blob} PRIMARY KEY CHECK (length(tx_hash) = 32),"
            " nonce BIGINT NOT NULL CHECK (nonce >= 0),"
            " raw {blob} NOT NULL,"
            " receipt_seq BIGINT NOT NULL REFERENCES receipts (seq),"
            " status TEXT NOT NULL"
            "  CHECK (status IN ('signed', 'pending', 'mined', 'reverted', 'dropped',"
            " 'replaced')),"
            " detail TEXT NOT NULL,"
            " updated_at DOUBLE PRECISION NOT NULL)",
            "INSERT INTO transactions_v2"
            " (tx_hash, nonce, raw, receipt_seq, status, detail, updated_at)"
            " SELECT tx_hash, nonce, raw, receipt_seq, status, detail, updated_at"
            " FROM transactions",
            "DROP TABLE transactions",
            "ALTER TABLE transactions_v2 RENAME TO transactions",
            "CREATE INDEX transactions_by_nonce ON transactions (nonce)",
            "CREATE INDEX transactions_by_status ON transactions (status, nonce)",
        ),
    ),
    Migration(
        3,
        "agent_lease: which host drives the agent, until when, and its fencing token",
        (
            # host/storage/lease.py: times are seconds since the epoch by the database's
            # clock; holder '' means released. Unused on SQLite (one host by definition).
            "CREATE TABLE agent_lease ("
            " name TEXT PRIMARY KEY,"
            " holder TEXT NOT NULL,"
            " token BIGINT NOT NULL CHECK (token >= 1),"
            " expires_at DOUBLE PRECISION NOT NULL,"
            " acquired_at DOUBLE PRECISION NOT NULL)",
        ),
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version


def _check_order(migrations: tuple[Migration, ...]) -> None:
    """Versions must run 1, 2, 3 … with no gap, or a database could skip a step."""
    versions = [migration.version for migration in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise RuntimeError(f"migration versions must be 1..{len(versions)}, got {versions}")


_check_order(MIGRATIONS)


class _Cursor(Protocol):
    def execute(self, sql: str, params: Sequence[object] = (), /) -> object: ...

    def fetchone(self) -> Row | None: ...


def apply_next_migration(cursor: _Cursor, dialect: Dialect, where: str, now: float) -> bool:
    """Inside one write transaction: apply the first migration not yet applied, if any.

    The caller holds a lock that keeps other processes from migrating at the same time.
    Returns True when the schema was already at LATEST_VERSION (nothing left to do).

    Raises:
        StorageError: the database's schema is newer than this code knows.
    """
    cursor.execute(SCHEMA_VERSION_TABLE)
    query = "SELECT max(version) FROM schema_version"
    cursor.execute(query)
    current = only_row(cursor.fetchone(), query)[0] or 0
    if current > LATEST_VERSION:
        raise StorageError(
            f"{where} has schema version {current}, newer than version {LATEST_VERSION} "
            "that this tee-agent knows: upgrade tee-agent"
        )
    if current == LATEST_VERSION:
        return True
    migration = MIGRATIONS[current]
    for statement in migration.sql(dialect):
        cursor.execute(statement)
    cursor.execute(
        "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
        (migration.version, migration.description, now),
    )
    return False
