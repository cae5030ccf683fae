"""A client's stream of tick batches, checked one by one and joined for the enclave.

Every TickBatch is parsed and checked as it arrives (`wire.ticks.check_tick_batch`, the
check the enclave applies too), so a bad batch ends the stream with a message naming it,
after every batch before it went through. Batches travel on as the client's own bytes
(the enclave's IngestRequest carries them as such). The batches that arrive while the
enclave is busy are joined into its next request (up to MAX_JOINED_TICKS), so one call and
one stored sealed state serve all of them.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

from host.enclave_client import IngestInput
from wire.ticks import check_tick_batch, decode_tick_batch

# At most this many ticks in one enclave call (the enclave takes up to 100,000).
MAX_JOINED_TICKS = 50_000
# Batches read ahead of the enclave; the client waits (flow control) beyond that.
_READ_AHEAD = 32


Item = tuple[bytes, int] | BaseException | None


class JoinedBatches:
    """The enclave's next Ingest: each time, every checked batch that has arrived, joined,
    up to MAX_JOINED_TICKS; empty batches are skipped. Reading starts at once, on a thread
    of its own, and stops at `close`.

    Iterating raises:
        InvalidBatch: after yielding every batch before the bad one.
        Exception: whatever reading the batches raised, after the batches before it.
    """

    def __init__(self, batches: Iterator[bytes]) -> None:
        """`batches`: a client's serialized TickBatch messages, as they arrive."""
        self._inbox: queue.Queue[Item] = queue.Queue(_READ_AHEAD)
        self._stop = threading.Event()
        self._held: list[Item] = []
        # Ticks handed out so far.
        self.received = 0
        threading.Thread(
            target=_read, args=(batches, self._inbox, self._stop), name="tick-stream-reader",
            daemon=True,
        ).start()  # fmt: skip

    def __iter__(self) -> JoinedBatches:
        return self

    def __next__(self) -> IngestInput:
        item = self._held.pop() if self._held else self._inbox.get()
        if item is None:
            self._held.append(None)  # stay at the end
            raise StopIteration
        if isinstance(item, BaseException):
            raise item
        parts, total = [item[0]], item[1]
        while True:
            try:
                after = self._inbox.get_nowait()
            except queue.Empty:
                break
            if (
                after is None
                or isinstance(after, BaseException)
                or total + after[1] > MAX_JOINED_TICKS
            ):
                self._held.append(after)
                break
            parts.append(after[0])
            total += after[1]
        self.received += total
        return IngestInput(tick_batches=tuple(parts), ticks=total)

    def ready(self) -> bool:
        """Whether `next` would return (or end) without waiting for the client."""
        return bool(self._held) or not self._inbox.empty()

    def close(self) -> None:
        self._stop.set()


def _read(
    batches: Iterator[bytes],
    inbox: queue.Queue[Item],
    stop: threading.Event,
) -> None:
    def hand_over(item: Item) -> bool:
        while not stop.is_set():
            try:
                inbox.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    try:
        for number, data in enumerate(batches, start=1):
            count = check_tick_batch(decode_tick_batch(data, number), number)
            if count == 0:
                continue
            if not hand_over((data, count)):
                return
    except BaseException as exc:  # handed to the consumer, which raises it
        hand_over(exc)
        return
    hand_over(None)
