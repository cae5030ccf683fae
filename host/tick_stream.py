"""A client's stream of tick batches, checked one by one and joined for the enclave.

Every TickBatch is parsed and checked as it arrives (aligned columns, at most 10,000 ticks,
seq at least 1, a pair symbol of 1 to 25 characters), so a bad batch ends the stream with
a message naming it, after every batch before it went through. Batches travel on as the
client's own bytes: the enclave's TickBatch has the public one's fields, and its
IngestRequest is a list of them. The batches that arrive while the enclave is busy are
joined into its next request (up to MAX_JOINED_TICKS), so one call and one stored sealed
state serve all of them.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import numpy as np
from google.protobuf.message import DecodeError
from tee_agent_rpc import agent_pb2 as pb

MAX_TICKS_PER_BATCH = 10_000
# At most this many ticks in one enclave call (the enclave takes up to 100,000).
MAX_JOINED_TICKS = 50_000
MAX_PAIR_LENGTH = 25
# Batches read ahead of the enclave; the client waits (flow control) beyond that.
_READ_AHEAD = 32
_COLUMNS = ("seq", "timestamp_ms", "price", "volume")


class InvalidBatch(ValueError):
    """A batch that can never be accepted; the message names the batch and the fault."""


def check_batch(batch: pb.TickBatch, number: int) -> int:
    """The number of ticks in `batch` (the `number`-th of its stream, from 1).

    Raises:
        InvalidBatch: columns of different lengths, too many ticks, a seq of 0, or a pair
            symbol that is empty or longer than 25 characters.
    """
    count = len(batch.seq)
    lengths = {name: len(getattr(batch, name)) for name in _COLUMNS}
    if any(length != count for length in lengths.values()):
        found = ", ".join(f"{name} {length}" for name, length in lengths.items())
        raise InvalidBatch(
            f"batch {number}: the tick columns must have the same length; found {found}"
        )
    if count > MAX_TICKS_PER_BATCH:
        raise InvalidBatch(
            f"batch {number} holds {count} ticks; the limit is {MAX_TICKS_PER_BATCH}"
        )
    if not count:
        return 0
    if not batch.pair or len(batch.pair) > MAX_PAIR_LENGTH:
        raise InvalidBatch(f"batch {number}: pair must be 1 to {MAX_PAIR_LENGTH} characters")
    seq = np.asarray(batch.seq, dtype=np.uint64)
    if seq.min() == 0:
        raise InvalidBatch(f"batch {number}, tick {int(seq.argmin())}: seq must be at least 1")
    return count


def ingest_entry(body: bytes) -> bytes:
    """A serialized TickBatch as one entry of the enclave's IngestRequest.batches (field 1,
    length-delimited: the protobuf wire format's tag byte 0x0A, the length as a varint, then
    the message). Wrapped so, nothing in a client's batch can reach the request's other
    fields; the enclave reads the very bytes the host checked."""
    length, prefix = len(body), bytearray(b"\x0a")
    while length >= 0x80:
        prefix.append(length & 0x7F | 0x80)
        length >>= 7
    prefix.append(length)
    return bytes(prefix) + body


Item = tuple[bytes, int] | BaseException | None


class JoinedBatches:
    """(serialized IngestRequest, tick count) for the enclave: each time, every checked batch
    that has arrived, joined, up to MAX_JOINED_TICKS; empty batches are skipped. Reading
    starts at once, on a thread of its own, and stops at `close`.

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

    def __next__(self) -> tuple[bytes, int]:
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
        return b"".join(parts), total

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
            try:
                batch = pb.TickBatch.FromString(data)
            except DecodeError as exc:
                raise InvalidBatch(f"batch {number} is not a valid TickBatch: {exc}") from None
            count = check_batch(batch, number)
            if count == 0:
                continue
            if not hand_over((ingest_entry(data), count)):
                return
    except BaseException as exc:  # handed to the consumer, which raises it
        hand_over(exc)
        return
    hand_over(None)
