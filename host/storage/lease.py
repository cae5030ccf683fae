"""The lease that lets exactly one of several hosts drive an agent (PostgreSQL).

One row per agent in `agent_lease` (storage migration 3): who holds it (`holder`: the
host's name and a random suffix), until when (`expires_at`, seconds since the epoch by the
DATABASE's clock, `now()`: the hosts' clocks never enter), and a fencing `token` that goes
up by one at every acquisition. A holder renews before expiry; a lease past its expiry is
lost for good (renewing it fails) and the next `acquire`, by anyone, takes it with the
next token.

Every write of a fenced store (`PostgresStorage.fence`) checks, in its own transaction and
under a share lock on this row, that the row still holds its token and has not expired: a
paused old leader that wakes after a takeover cannot write. A takeover (an UPDATE of the
row) waits for such a write to commit or roll back, never the other way round.

The lease itself is `host.storage.postgres_lease.PostgresLease` (psycopg, the `postgres`
extra; `host.storage.open.open_lease`); this module holds what needs no driver.

On SQLite there is one host by definition (the data directory's lock keeps a second one
out), so no lease is taken: the host drives its enclave from the start.
"""

from __future__ import annotations

import secrets
import socket
from dataclasses import dataclass

from host.storage.base import StorageError

# The store holds one agent's state, so its lease is one row with this name.
AGENT_LEASE = "agent"


class LeaseError(StorageError):
    """The lease's database cannot be reached or refuses a statement."""


class LeaseLost(LeaseError):
    """This holder's lease expired or was taken over: it must stop driving the agent now."""


@dataclass(frozen=True)
class HeldLease:
    """A lease this process holds: its token, and the seconds it had left when last read."""

    holder: str
    token: int
    seconds_left: float


@dataclass(frozen=True)
class LeaseRow:
    """The lease as the database holds it now (holder '' when released)."""

    holder: str
    token: int
    seconds_left: float

    @property
    def live(self) -> bool:
        return bool(self.holder) and self.seconds_left > 0


def new_holder_id() -> str:
    """This host's name and 8 random hex digits: two processes never share one."""
    return f"{socket.gethostname()}-{secrets.token_hex(4)}"


def describe(row: LeaseRow | None) -> str:
    """Who holds the lease, for messages."""
    if row is None:
        return "nobody has taken it yet"
    if not row.live:
        return f"it is free (token {row.token}, last holder {row.holder or 'released'})"
    return f"held by {row.holder} with token {row.token} for {row.seconds_left:.1f} s more"
