"""PostgreSQL storage, for several hosts sharing one agent's state (psycopg 3).

Threads: each store holds ONE connection and a lock; calls from several threads take turns
on it. Hosts: each host has its own store (its own connection). Their writes to the
receipt chain and to the sealed states are serialized by a table lock taken at the start
of the write transaction (`SHARE ROW EXCLUSIVE`: it excludes the other writers, not the
readers). Under READ COMMITTED each statement after the lock sees every commit made
before it was granted, so the chain check and the insert act on the true head: two hosts
racing to append the same seq cannot both succeed, nor can a sealed state go back.

Fencing: once `fence` is called with the lease this host holds (host/storage/lease.py),
every write transaction also reads the lease row `FOR SHARE` and goes on only if it still
holds this host's token and has not expired by the database's clock; else it is refused
(`FencedOut`) and rolled back. A session left idle inside a transaction (a host paused
mid-write) is ended by the server after a few seconds, so it cannot hold that row lock and
stall a takeover.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow

from host.storage.base import Fence, FencedOut, StorageError
from host.storage.sql_store import SqlCursor, SqlStorage, WriteLock

# pg_advisory_xact_lock key held while migrating ("tAgtSchm" as 8 bytes), so that hosts
# starting together apply each migration once. Advisory, because before the first
# migration there is no table to lock.
_SCHEMA_LOCK_KEY = int.from_bytes(b"tAgtSchm", "big", signed=True)
_TABLE_LOCKS = {
    "sealed_states": "LOCK TABLE sealed_states IN SHARE ROW EXCLUSIVE MODE",
    "receipts": "LOCK TABLE receipts IN SHARE ROW EXCLUSIVE MODE",
}
log = logging.getLogger("tee_agent.host.storage")
_DEFAULT_CONNECT_TIMEOUT = 10  # seconds, unless the DSN says otherwise
# A write transaction holds no lock longer than a few statements: a session idle inside
# one for this long belongs to a paused or wedged host, and the server ends it.
_IDLE_IN_TRANSACTION_MS = 5000
_FENCE_CHECK = (
    "SELECT holder, token, expires_at - extract(epoch FROM now()) FROM agent_lease"
    " WHERE name = %s FOR SHARE"
)


@lru_cache(maxsize=128)
def _pyformat(sql: str) -> str:
    # The shared SQL holds no literal '?' or '%': only placeholders change.
    return sql.replace("?", "%s")


class _QmarkCursor:
    """A psycopg cursor that takes the shared SQL's `?` placeholders."""

    def __init__(self, cursor: psycopg.Cursor[TupleRow]) -> None:
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    def execute(self, sql: str, params: Sequence[object] = (), /) -> object:
        return self._cursor.execute(_pyformat(sql), params)

    def executemany(self, sql: str, params: Iterable[Sequence[object]], /) -> object:
        self._cursor.executemany(_pyformat(sql), params)
        return self

    def fetchone(self) -> TupleRow | None:
        return self._cursor.fetchone()

    def fetchall(self) -> list[TupleRow]:
        return self._cursor.fetchall()


def describe_dsn(dsn: str) -> str:
    """The DSN's host, port, database and user, for messages (never the password).

    Raises:
        StorageError: `dsn` is not a PostgreSQL connection string or URL.
    """
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error:
        # libpq's text quotes the part it could not parse, which may be the password.
        raise StorageError(
            "not a PostgreSQL connection string (check its form: "
            "postgresql://user:password@host/db, with %XX escapes valid)"
        ) from None
    shown = ("host", "port", "dbname", "user")
    return "postgresql " + " ".join(f"{key}={params[key]}" for key in shown if key in params)


class PostgresStorage(SqlStorage):
    """A `Storage` in a PostgreSQL database (the tables go in the DSN's search_path)."""

    _dialect = "postgres"
    _db_errors = (psycopg.Error,)

    def __init__(self, dsn: str, *, clock: Callable[[], float] = time.time) -> None:
        """Connect to `dsn` and bring the schema up to date.

        Raises:
            StorageError: the DSN is malformed, the server cannot be reached, the schema
                is newer than this code, or a migration failed.
        """
        super().__init__(describe_dsn(dsn), clock)
        self._dsn = dsn
        self._fence: Fence | None = None
        # Why every write is refused without asking the database (the lease was lost).
        self._fenced_out = ""
        self._connection = self._connect()
        try:
            self._migrate()
        except BaseException:
            self._connection.close()
            raise

    def _connect(self) -> psycopg.Connection[TupleRow]:
        options: dict[str, Any] = {}
        if "connect_timeout" not in conninfo_to_dict(self._dsn):
            options["connect_timeout"] = _DEFAULT_CONNECT_TIMEOUT
        try:
            # autocommit: reads commit on their own; writes open explicit transactions.
            connection = psycopg.connect(self._dsn, autocommit=True, **options)
            connection.execute(
                f"SET idle_in_transaction_session_timeout = {_IDLE_IN_TRANSACTION_MS:d}"
            )
            return connection
        except psycopg.Error as error:
            raise StorageError(f"cannot connect to {self._where}: {error}") from None

    def fence(self, fence: Fence) -> None:
        """From now on, refuse every write unless the lease row still holds `fence`."""
        with self._lock:
            self._fence = fence
            self._fenced_out = ""

    def fence_out(self, reason: str) -> None:
        """Refuse every write from now on, without asking the database (the lease is lost)."""
        with self._lock:
            self._fenced_out = reason

    def _check_fence(self, cursor: psycopg.Cursor[TupleRow]) -> None:
        """Inside a write transaction: the lease row, share-locked to the commit, must hold
        this store's fence.

        Raises:
            FencedOut: it does not (taken over, expired, released), or the lease was lost.
        """
        fence = self._fence
        if fence is None:
            if self._fenced_out:
                raise FencedOut(f"write refused: {self._fenced_out}")
            return
        cursor.execute(_FENCE_CHECK, (fence.name,))
        row = cursor.fetchone()
        if row is None or row[0] != fence.holder or row[1] != fence.token or row[2] <= 0:
            now = "no lease row" if row is None else (
                f"holder {row[0] or '(released)'}, token {row[1]}, "
                f"{'expired' if row[2] <= 0 else f'{row[2]:.1f} s left'}"
            )  # fmt: skip
            refused = FencedOut(
                f"write refused by the fencing token: this host ({fence.holder}) writes "
                f"with token {fence.token} but the lease of {fence.name!r} has {now}; "
                "another host drives the agent now (or may): this one must stop"
            )
            log.error("%s", refused)
            raise refused
        if self._fenced_out:  # the database still says ours, but this host gave it up
            raise FencedOut(f"write refused: {self._fenced_out}")

    def _live_connection(self) -> psycopg.Connection[TupleRow]:
        """The connection, made again if the server dropped it (restart, failover)."""
        if self._connection.broken or self._connection.closed:
            self._connection.close()
            self._connection = self._connect()
        return self._connection

    @contextmanager
    def _transaction(self, lock: WriteLock) -> Iterator[SqlCursor]:
        connection = self._live_connection()
        with connection.transaction(), connection.cursor() as cursor:
            if lock == "schema":
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))
            else:
                if lock is not None:
                    cursor.execute(_TABLE_LOCKS[lock])
                self._check_fence(cursor)
            yield _QmarkCursor(cursor)

    @contextmanager
    def _statements(self) -> Iterator[SqlCursor]:
        with self._live_connection().cursor() as cursor:
            yield _QmarkCursor(cursor)

    def _close_connection(self) -> None:
        self._connection.close()
