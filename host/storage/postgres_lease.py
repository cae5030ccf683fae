"""The agent's lease (`host.storage.lease`) in a PostgreSQL database, with psycopg."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow

from host.storage.lease import (
    AGENT_LEASE,
    HeldLease,
    LeaseError,
    LeaseLost,
    LeaseRow,
    describe,
    new_holder_id,
)
from host.storage.postgres import describe_dsn

_CONNECT_TIMEOUT = 10  # seconds, unless the DSN says otherwise
# Statements written out in full, each value a parameter; "now" is the database's clock,
# extract(epoch FROM now()), in seconds since the epoch.
# Taken when the row is free, released (holder ''), or expired; the token goes up by one.
_ACQUIRE = (
    "INSERT INTO agent_lease (name, holder, token, expires_at, acquired_at)"
    " VALUES (%(name)s, %(holder)s, 1, extract(epoch FROM now()) + %(ttl)s,"
    " extract(epoch FROM now()))"
    " ON CONFLICT (name) DO UPDATE"
    " SET holder = excluded.holder, token = agent_lease.token + 1,"
    " expires_at = excluded.expires_at, acquired_at = excluded.acquired_at"
    " WHERE agent_lease.holder = '' OR agent_lease.expires_at <= extract(epoch FROM now())"
    " RETURNING token, expires_at - extract(epoch FROM now())"
)
_RENEW = (
    "UPDATE agent_lease SET expires_at = extract(epoch FROM now()) + %(ttl)s"
    " WHERE name = %(name)s AND holder = %(holder)s AND token = %(token)s"
    " AND expires_at > extract(epoch FROM now())"
    " RETURNING expires_at - extract(epoch FROM now())"
)
_RELEASE = (
    "UPDATE agent_lease SET holder = '', expires_at = extract(epoch FROM now())"
    " WHERE name = %(name)s AND holder = %(holder)s AND token = %(token)s"
)
_CURRENT = (
    "SELECT holder, token, expires_at - extract(epoch FROM now()) FROM agent_lease"
    " WHERE name = %(name)s"
)


class PostgresLease:
    """The agent's lease in a PostgreSQL database, over a connection of its own (renewing
    never waits behind the store's statements); its calls take turns on it."""

    def __init__(
        self, dsn: str, ttl_seconds: float, holder: str | None = None, name: str = AGENT_LEASE
    ) -> None:
        """Connect to `dsn` (the store's; its schema must be migrated: open the store first).

        Raises:
            LeaseError: the server cannot be reached, or ttl_seconds is not positive.
        """
        if not ttl_seconds > 0:
            raise LeaseError(f"a lease needs a positive ttl, got {ttl_seconds!r} seconds")
        self.ttl = float(ttl_seconds)
        self.holder = holder or new_holder_id()
        self.name = name
        self._dsn = dsn
        self._where = describe_dsn(dsn)
        self._connection: psycopg.Connection[TupleRow] | None = None
        self._closed = False
        self._statements = threading.Lock()  # one statement at a time on the connection
        self.held: HeldLease | None = None

    def _execute(self, sql: str, params: dict[str, Any], what: str) -> TupleRow | None:
        with self._statements:
            if self._closed:
                raise LeaseError(f"{what}: the lease's connection to {self._where} is closed")
            return self._execute_alone(sql, params, what)

    def _execute_alone(self, sql: str, params: dict[str, Any], what: str) -> TupleRow | None:
        try:
            if self._connection is None or self._connection.closed or self._connection.broken:
                options: dict[str, Any] = {}
                if "connect_timeout" not in conninfo_to_dict(self._dsn):
                    options["connect_timeout"] = _CONNECT_TIMEOUT
                self._connection = psycopg.connect(self._dsn, autocommit=True, **options)
            cursor = self._connection.execute(sql, params)
            return cursor.fetchone() if cursor.description else None
        except psycopg.Error as error:
            raise LeaseError(f"{what} failed on {self._where}: {error}") from None

    def acquire(self) -> HeldLease | None:
        """Take the lease if it is free or expired (the token goes up by one); None when
        another holder's lease is live.

        Raises:
            LeaseError: the database cannot be reached.
        """
        params = {"name": self.name, "holder": self.holder, "ttl": self.ttl}
        row = self._execute(_ACQUIRE, params, f"acquiring the lease of {self.name!r}")
        if row is None:
            return None
        self.held = HeldLease(self.holder, int(row[0]), float(row[1]))
        return self.held

    def renew(self) -> HeldLease:
        """Push the expiry ttl seconds past the database's now.

        Raises:
            LeaseLost: this holder does not hold it (never acquired, expired, taken over).
            LeaseError: the database cannot be reached (the lease may still be held, or
                not: the caller must stop acting on it by its expiry).
        """
        held = self.held
        if held is None:
            raise LeaseLost(f"{self.holder} holds no lease of {self.name!r} to renew")
        params = {"name": self.name, "holder": self.holder, "token": held.token, "ttl": self.ttl}
        row = self._execute(_RENEW, params, f"renewing the lease of {self.name!r}")
        if row is None:
            self.held = None
            now = self.current()
            raise LeaseLost(
                f"the lease of {self.name!r} with token {held.token} is no longer held by "
                f"{self.holder}: {describe(now)}"
            )
        self.held = HeldLease(self.holder, held.token, float(row[0]))
        return self.held

    def release(self) -> None:
        """Give the lease up at once (a follower may take it without waiting for expiry).

        Raises:
            LeaseError: the database cannot be reached (the lease then expires on its own).
        """
        held, self.held = self.held, None
        if held is not None:
            params = {"name": self.name, "holder": self.holder, "token": held.token}
            self._execute(_RELEASE, params, f"releasing the lease of {self.name!r}")

    def current(self) -> LeaseRow | None:
        """The lease row now, or None before anyone took it.

        Raises:
            LeaseError: the database cannot be reached.
        """
        row = self._execute(_CURRENT, {"name": self.name}, f"reading the lease of {self.name!r}")
        return None if row is None else LeaseRow(str(row[0]), int(row[1]), float(row[2]))

    def close(self) -> None:
        with self._statements:
            self._closed = True
            if self._connection is not None:
                self._connection.close()
