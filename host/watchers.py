"""The agent's watchers: clients following decisions as the enclave releases them.

A watcher first reads the stored receipts from where it asks, then live ones as they are
stored. Each has a bounded queue: one that cannot keep up is told so and dropped (it can
come back from the seq it saw last), so a slow client never holds the agent up.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Literal

import grpc

from host.outcomes import AgentError
from host.storage.base import Storage
from wire.records import ReceiptRecord, TransactionRecord

WATCHER_QUEUE = 10_000
# Stored receipts read at a time when a watcher catches up.
_PAGE = 500

Decision = tuple[ReceiptRecord, TransactionRecord | None]
# What a watcher's queue holds: a decision, "overflow" when it fell behind, None at the end.
_Event = Decision | Literal["overflow"] | None


class Watchers:
    """Every client following decisions, fed as outputs are stored."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._queues: list[queue.Queue[_Event]] = []
        self._lock = threading.Lock()

    def publish(
        self, receipts: Sequence[ReceiptRecord], transactions: Sequence[TransactionRecord]
    ) -> None:
        """Hand newly stored receipts, with the transactions signed under them, to every
        watcher."""
        if not receipts:
            return
        by_receipt = {tx.receipt_seq: tx for tx in transactions}
        with self._lock:
            for watcher in list(self._queues):
                for record in receipts:
                    self._offer(watcher, (record, by_receipt.get(record.receipt.seq)))

    def close(self) -> None:
        """End every watcher's stream (the host is stopping)."""
        with self._lock:
            for watcher in self._queues:
                watcher.put(None)

    def watch(self, from_seq: int, stop: Callable[[], bool]) -> Iterator[Decision]:
        """Stored receipts from `from_seq` (0: none), then live ones, until `stop()` or the
        host stops.

        Raises:
            AgentError: RESOURCE_EXHAUSTED when this watcher fell too far behind.
        """
        live: queue.Queue[_Event] = queue.Queue(maxsize=WATCHER_QUEUE)
        with self._lock:
            self._queues.append(live)
        try:
            last = 0
            if from_seq > 0:
                transactions = {tx.receipt_seq: tx for tx in self._storage.transactions()}
                next_seq = from_seq
                while True:
                    page = self._storage.receipts(next_seq, _PAGE)
                    for record in page:
                        yield record, transactions.get(record.receipt.seq)
                        last = record.receipt.seq
                    if len(page) < _PAGE:
                        break
                    next_seq = last + 1
            while not stop():
                try:
                    event = live.get(timeout=0.5)
                except queue.Empty:
                    continue
                if event is None:
                    return
                if event == "overflow":
                    raise AgentError(
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"this watcher fell behind; reconnect with from_seq={last + 1}",
                    )
                record, transaction = event
                if record.receipt.seq > last:
                    last = record.receipt.seq
                    yield record, transaction
        finally:
            with self._lock:
                if live in self._queues:
                    self._queues.remove(live)

    def _offer(self, watcher: queue.Queue[_Event], event: Decision) -> None:
        try:
            watcher.put_nowait(event)
        except queue.Full:
            # A watcher that cannot keep up is told so and dropped; it can resume from a seq.
            self._queues.remove(watcher)
            while True:
                try:
                    watcher.get_nowait()
                except queue.Empty:
                    break
            watcher.put_nowait("overflow")
