"""Which of several hosts of one agent drives its enclave: follow until the lease is ours,
then hold it, and stop driving at once when it may be lost.

A follower tries to take the lease every ttl/3. The leader renews it every ttl/3; it
counts its lease as good until the local (monotonic) time at which the last successful
renewal was SENT, plus ttl: the database's expiry can only be later than that. A watchdog
thread sleeps until that instant; if no renewal moved it, or a renewal is refused, the
lease is lost and `on_lost` runs once, straight away (the host kills its enclave, stops
broadcasting and fences its store before anything else). A host paused past its expiry
(SIGSTOP, a stalled VM) finds the watchdog's time passed the moment it wakes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from host.storage.lease import HeldLease, LeaseError, LeaseLost, describe

if TYPE_CHECKING:  # psycopg is the `postgres` extra
    from host.storage.postgres_lease import PostgresLease

log = logging.getLogger("tee_agent.host.lease")

# The shortest pause between two tries to take the lease, whatever the ttl.
_MIN_POLL_SECONDS = 0.2


class Leadership:
    """The lease of one host: follow, take it, hold it, give it up."""

    def __init__(self, lease: PostgresLease, on_role: Callable[[str, str], None]) -> None:
        """`on_role(role, detail)` is told each change: "follower" (detail: who leads),
        "leader" (detail: the token), "lost" (detail: why)."""
        self.lease = lease
        self._on_role = on_role
        self._lock = threading.Lock()
        self._deadline = 0.0  # time.monotonic() until which the held lease is surely live
        self._renewed = threading.Event()  # set at each renewal: the watchdog looks again
        self._done = threading.Event()  # lost, released or closed: the threads end
        self.lost = ""
        self._on_lost: Callable[[str], None] | None = None

    @property
    def period(self) -> float:
        return max(self.lease.ttl / 3, _MIN_POLL_SECONDS)

    def wait_to_lead(self, stop: threading.Event) -> HeldLease | None:
        """Try to take the lease every ttl/3 until it is ours (returned) or `stop` is set
        (None). A database that cannot be reached is logged and tried again.
        """
        shown = ""
        while not stop.is_set():
            sent = time.monotonic()
            try:
                held = self.lease.acquire()
                if held is not None:
                    self._deadline = sent + self.lease.ttl
                    return held
                leader = describe(self.lease.current())
            except LeaseError as exc:
                leader = f"the lease cannot be read: {exc}"
            text = leader.split(" for ")[0]  # the seconds left change at every try
            if text != shown:
                shown = text
                log.info("following: the agent's lease is %s", leader)
                self._on_role("follower", leader)
            stop.wait(self.period)
        return None

    def hold(self, on_lost: Callable[[str], None]) -> None:
        """Renew the lease just taken every ttl/3 and watch its deadline, in two threads;
        `on_lost(reason)` runs once when it is lost."""
        self._on_lost = on_lost
        held = self.lease.held
        log.info(
            "leading: the agent's lease is ours",
            extra={"holder": self.lease.holder, "token": held.token if held else None},
        )
        self._on_role("leader", f"token {held.token if held else '?'}")
        threading.Thread(target=self._renew_loop, name="lease-renew", daemon=True).start()
        threading.Thread(target=self._watchdog, name="lease-watchdog", daemon=True).start()

    def _renew_loop(self) -> None:
        while not self._done.wait(self.period):
            sent = time.monotonic()
            try:
                self.lease.renew()
            except LeaseLost as exc:
                self._lose(str(exc))
                return
            except LeaseError as exc:
                # Perhaps still held: the watchdog ends it at the deadline if no renewal
                # gets through before.
                log.warning("renewing the lease failed, trying again: %s", exc)
                continue
            with self._lock:
                self._deadline = max(self._deadline, sent + self.lease.ttl)
            self._renewed.set()

    def _watchdog(self) -> None:
        while not self._done.is_set():
            with self._lock:
                left = self._deadline - time.monotonic()
            if left <= 0:
                self._lose(
                    f"no renewal of the lease went through before its expiry ({self.lease.ttl:g} s"
                    " after the last one was sent): another host may drive the agent now"
                )
                return
            self._renewed.wait(left)
            self._renewed.clear()

    def _lose(self, reason: str) -> None:
        with self._lock:
            if self._done.is_set():
                return
            self._done.set()
            self.lost = reason
        self._renewed.set()
        log.error("the agent's lease is lost; this host stops driving it: %s", reason)
        if self._on_lost is not None:
            self._on_lost(reason)
        self._on_role("lost", reason)

    def release(self) -> None:
        """Stop renewing and give the lease up (once the enclave is stopped), so that a
        follower takes over without waiting for the expiry. A lost lease is left alone."""
        with self._lock:
            if self._done.is_set():
                return
            self._done.set()
        self._renewed.set()
        try:
            self.lease.release()
        except LeaseError as exc:
            log.warning("releasing the lease failed (it expires on its own): %s", exc)

    def close(self) -> None:
        with self._lock:
            self._done.set()
        self._renewed.set()
        self.lease.close()
