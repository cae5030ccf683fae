"""SQLite storage: one file, WAL journal, every commit fsynced before it returns.

Threads: the store holds ONE connection and a lock; each call takes the lock for its whole
transaction, so calls from several threads run one after another. (SQLite allows one
writer at a time anyway, and the reads here are single indexed look-ups.) Other processes
opening the same file are kept out of a write by `BEGIN IMMEDIATE` and wait up to the busy
timeout for it.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from host.storage.base import StorageError
from host.storage.sql_store import SqlCursor, SqlStorage, WriteLock

# SQLite file format §1.3 "The Database Header", offset 68: the application ID, here "tAgt",
# so that `file` and this code can tell our database from another program's.
APPLICATION_ID = 0x74416774
# PRAGMA synchronous values (https://sqlite.org/pragma.html#pragma_synchronous): FULL = 2.
_SYNCHRONOUS_FULL = 2
# Result codes that mean the file is not an SQLite database, or a damaged one.
_NOT_A_DATABASE = {"SQLITE_NOTADB", "SQLITE_CORRUPT"}


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class SqliteStorage(SqlStorage):
    """A `Storage` in an SQLite file, created with mode 0600 when it does not exist."""

    _dialect = "sqlite"
    _db_errors = (sqlite3.Error,)

    def __init__(
        self, path: Path, *, busy_timeout: float = 10.0, clock: Callable[[], float] = time.time
    ) -> None:
        """Open (or create) the database at `path` and bring its schema up to date.

        Raises:
            StorageError: the directory is missing, the file cannot be created or opened,
                it is not a tee-agent database ("not a tee-agent database: ..."), its schema
                is newer than this code, or WAL mode is unavailable.
        """
        self._path = Path(path)
        super().__init__(str(self._path), clock)
        self._connection = self._connect(busy_timeout)
        try:
            self._check_identity()
            self._use_wal()
            self._migrate()
            self._claim()
        except BaseException:
            self._connection.close()
            raise

    def _connect(self, busy_timeout: float) -> sqlite3.Connection:
        path = self._path
        if not path.parent.is_dir():
            raise StorageError(f"cannot open {path}: the directory {path.parent} does not exist")
        try:
            # Created here rather than by SQLite so that it is never readable by others,
            # whatever the umask; SQLite gives its -wal and -shm files the same mode.
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
            _fsync_directory(path.parent)  # the new name itself survives a power cut
        except FileExistsError:
            pass
        except OSError as error:
            raise StorageError(f"cannot create {path}: {error.strerror}") from None
        try:
            # isolation_level=None: no implicit transactions; each is begun explicitly.
            connection = sqlite3.connect(
                path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as error:
            raise StorageError(f"cannot open {path}: {error}") from None
        try:
            connection.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as error:
            connection.close()
            raise self._open_error(error) from None
        return connection

    def _use_wal(self) -> None:
        """WAL journal, and a commit returns only once the WAL is fsynced."""
        try:
            mode = self._connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            self._connection.execute("PRAGMA synchronous = FULL")
            synchronous = self._connection.execute("PRAGMA synchronous").fetchone()[0]
        except sqlite3.Error as error:
            raise self._open_error(error) from None
        if mode != "wal" or synchronous != _SYNCHRONOUS_FULL:
            raise StorageError(
                f"cannot open {self._path} with journal_mode=wal and synchronous=FULL: "
                f"SQLite set journal_mode={mode}, synchronous={synchronous}"
            )

    def _open_error(self, error: sqlite3.Error) -> StorageError:
        if getattr(error, "sqlite_errorname", "") in _NOT_A_DATABASE:
            return StorageError(f"not a tee-agent database: {self._path}: {error}")
        return StorageError(f"cannot open {self._path}: {error}")

    def _check_identity(self) -> None:
        """Refuse another program's SQLite database before writing anything to it."""
        try:
            app_id = self._connection.execute("PRAGMA application_id").fetchone()[0]
            tables = {
                row[0]
                for row in self._connection.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                    " AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
                )
            }
        except sqlite3.Error as error:
            raise self._open_error(error) from None
        if app_id not in (0, APPLICATION_ID):
            raise StorageError(
                f"not a tee-agent database: {self._path} belongs to another program "
                f"(SQLite application_id 0x{app_id:08x}, expected 0x{APPLICATION_ID:08x})"
            )
        if tables and "schema_version" not in tables:
            raise StorageError(
                f"not a tee-agent database: {self._path} holds the tables "
                f"{', '.join(sorted(tables))} but no schema_version"
            )

    def _claim(self) -> None:
        """Mark the file as ours (application_id), once its schema is in place."""
        with self._translated("marking the database as tee-agent's"):
            if self._connection.execute("PRAGMA application_id").fetchone()[0] == 0:
                self._connection.execute(f"PRAGMA application_id = {APPLICATION_ID:d}")

    @contextmanager
    def _transaction(self, lock: WriteLock) -> Iterator[SqlCursor]:
        # IMMEDIATE takes SQLite's single write lock at once (waiting up to the busy
        # timeout), so the chain head read inside cannot change before the insert.
        cursor = self._connection.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        try:
            yield cursor
            cursor.execute("COMMIT")  # synchronous=FULL: the WAL is fsynced before this returns
        finally:
            if self._connection.in_transaction:
                self._connection.execute("ROLLBACK")
            cursor.close()

    @contextmanager
    def _statements(self) -> Iterator[SqlCursor]:
        cursor = self._connection.cursor()
        try:
            yield cursor
        finally:
            cursor.close()

    def _close_connection(self) -> None:
        self._connection.close()
