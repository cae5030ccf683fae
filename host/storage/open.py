"""Open the storage backend that a URL or a path names."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from host.storage.base import Storage, StorageError
from host.storage.sqlite import SqliteStorage

if TYPE_CHECKING:  # psycopg is an optional extra
    from host.storage.postgres_lease import PostgresLease

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_POSTGRES_SCHEMES = ("postgresql", "postgres")
# SQLAlchemy's convention: three slashes then the path, so sqlite:///agent.db is relative
# and sqlite:////var/lib/tee-agent/agent.db absolute.
_SQLITE_PREFIX = "sqlite:///"


def open_storage(url_or_path: str) -> Storage:
    """The store named by `url_or_path`.

    - `postgresql://…` or `postgres://…`: PostgreSQL (needs the `postgres` extra, psycopg);
    - `sqlite:///relative/path` or `sqlite:////absolute/path`: SQLite;
    - anything without a `scheme://`: a path to an SQLite file.

    Raises:
        StorageError: another scheme, an SQLite URL without a path or with a host,
            psycopg not installed, or the store cannot be opened (see each backend).
    """
    if not url_or_path:
        raise StorageError("no storage given: pass a path or a postgresql:// URL")
    match = _SCHEME.match(url_or_path)
    if match is None:
        return SqliteStorage(Path(url_or_path))
    scheme = match.group(1).lower()
    if scheme in _POSTGRES_SCHEMES:
        try:
            from host.storage.postgres import PostgresStorage  # psycopg is an optional extra
        except ModuleNotFoundError as error:
            raise StorageError(
                f"PostgreSQL storage needs psycopg ({error}): pip install 'tee-agent[postgres]'"
            ) from None
        return PostgresStorage(url_or_path)
    if scheme == "sqlite":
        if not url_or_path.startswith(_SQLITE_PREFIX) or url_or_path == _SQLITE_PREFIX:
            raise StorageError(
                f"an SQLite URL is sqlite:///relative/path or sqlite:////absolute/path "
                f"(no host, no in-memory database), got {url_or_path!r}"
            )
        return SqliteStorage(Path(url_or_path.removeprefix(_SQLITE_PREFIX)))
    raise StorageError(
        f"unsupported storage scheme {scheme!r} in {url_or_path.split('@')[-1]!r}: use "
        "postgresql://…, postgres://…, sqlite:///PATH or a file path"
    )


def open_lease(url: str, ttl_seconds: float) -> PostgresLease:
    """The agent's lease in the PostgreSQL database `url` names (host/storage/lease.py);
    it connects at its first call.

    Raises:
        StorageError: psycopg is not installed, or ttl_seconds is not positive.
    """
    try:
        from host.storage.postgres_lease import PostgresLease  # psycopg is an optional extra
    except ModuleNotFoundError as error:
        raise StorageError(
            f"a lease needs psycopg ({error}): pip install 'tee-agent[postgres]'"
        ) from None
    return PostgresLease(url, ttl_seconds)
