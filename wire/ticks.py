"""Market ticks on the wire: one tick, a batch as columns, and the `TickBatch` message.

A `TickBatch` (messages.proto) carries the ticks of one pair as four aligned columns. Both
sides check a batch with the same `check_tick_batch`: the host as a client's batch arrives
(so a bad one ends the client's stream with a message naming it), the enclave again before
it reads a single tick (the host is not trusted). The enclave then reads the columns as
numpy arrays (`columns_from_message`); the host's market feeds send their ticks as
messages (`tick_batch_messages`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt
from google.protobuf.message import DecodeError
from tee_agent_rpc.messages_pb2 import TickBatch

# Why the enclave refuses a tick: RefusedTick.reason (enclave.market decides which applies),
# counted by reason in the one "ticks_refused:<count>" receipt of each Ingest that refused
# any (enclave.refusals).
UNKNOWN_PAIR = "unknown_pair"
INVALID_NUMBER = "invalid_number"
DUPLICATE_SEQ = "duplicate_seq"
TIMESTAMP_BACKWARDS = "timestamp_backwards"
STALE_TICK = "stale_tick"
FUTURE_TICK = "future_tick"
PRICE_JUMP = "price_jump"
# A seq or timestamp further than the configured gap from the last accepted tick's.
SEQ_GAP = "seq_gap"
TIME_GAP = "time_gap"
# Not taken at all, for now: the outputs waiting for release reached the enclave's bound
# (a host that does not release, or one batch of very many decisions). Not remembered, so
# the same tick is taken when sent again once the host has released the outputs.
BACKLOG = "backlog"
TICK_REFUSALS = frozenset(
    {UNKNOWN_PAIR, INVALID_NUMBER, DUPLICATE_SEQ, TIMESTAMP_BACKWARDS, STALE_TICK, FUTURE_TICK,
     PRICE_JUMP, SEQ_GAP, TIME_GAP, BACKLOG}
)  # fmt: skip
# A client's batch holds at most this many ticks (the host joins several into one call).
MAX_TICKS_PER_BATCH = 10_000
MAX_PAIR_LENGTH = 25
_COLUMNS = ("seq", "timestamp_ms", "price", "volume")


class InvalidBatch(ValueError):
    """A batch that can never be accepted; the message names the batch and the fault."""


@dataclass(frozen=True, slots=True)
class Tick:
    """One market observation, as the host relays it (already type-checked by protobuf).

    A plain dataclass, not a model: ticks arrive by the ten thousand per second, and the
    enclave checks every field (`enclave.market.refusal_reason`) before anything uses it.
    """

    seq: int
    timestamp_ms: int
    pair: str
    price: float
    volume: float

    def as_dict(self) -> dict[str, object]:
        return {
            "seq": self.seq,
            "timestamp_ms": self.timestamp_ms,
            "pair": self.pair,
            "price": self.price,
            "volume": self.volume,
        }


class TickLike(Protocol):
    """Anything with a tick's fields: a `Tick`, or a candle of the host's market feeds."""

    @property
    def seq(self) -> int: ...
    @property
    def timestamp_ms(self) -> int: ...
    @property
    def pair(self) -> str: ...
    @property
    def price(self) -> float: ...
    @property
    def volume(self) -> float: ...


@dataclass(frozen=True)
class TickColumns:
    """A batch of ticks of one pair, column by column; entry i of every column is tick i.

    Made from a checked message by `columns_from_message`, so the columns align, seq is at
    least 1 and the pair symbol is 1 to 25 characters.
    """

    pair: str
    seq: npt.NDArray[np.uint64]
    timestamp_ms: npt.NDArray[np.int64]
    price: npt.NDArray[np.float64]
    volume: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.seq)

    def tick(self, index: int) -> Tick:
        return Tick(
            seq=int(self.seq[index]),
            timestamp_ms=int(self.timestamp_ms[index]),
            pair=self.pair,
            price=float(self.price[index]),
            volume=float(self.volume[index]),
        )

    def ticks(self, start: int, stop: int) -> list[Tick]:
        """Ticks [start, stop) as objects, converted a slice at a time (several times faster
        than `tick` on each index, which matters for a batch taken one by one; one tick is
        read alone, cheaper than four slices)."""
        if stop - start == 1 and 0 <= start < len(self.seq):
            return [self.tick(start)]
        columns = (self.seq, self.timestamp_ms, self.price, self.volume)
        seq, stamps, price, volume = (column[start:stop].tolist() for column in columns)
        return [
            Tick(seq=s, timestamp_ms=t, pair=self.pair, price=p, volume=v)
            for s, t, p, v in zip(seq, stamps, price, volume, strict=True)
        ]

    @classmethod
    def runs(cls, ticks: Iterable[TickLike]) -> list[TickColumns]:
        """Ticks as batches, one per run of a pair, in order."""
        batches = []
        for pair, run in itertools.groupby(ticks, key=lambda tick: tick.pair):
            group = list(run)
            batches.append(
                cls(
                    pair=pair,
                    seq=np.array([t.seq for t in group], dtype=np.uint64),
                    timestamp_ms=np.array([t.timestamp_ms for t in group], dtype=np.int64),
                    price=np.array([t.price for t in group], dtype=np.float64),
                    volume=np.array([t.volume for t in group], dtype=np.float64),
                )
            )
        return batches


def decode_tick_batch(data: bytes, number: int) -> TickBatch:
    """Parse the `number`-th batch of a stream or request (from 1).

    Raises:
        InvalidBatch: the bytes are not a TickBatch message.
    """
    try:
        return TickBatch.FromString(data)
    except DecodeError as exc:
        raise InvalidBatch(f"batch {number} is not a valid TickBatch: {exc}") from None


def check_tick_batch(batch: TickBatch, number: int) -> int:
    """The number of ticks in `batch` (the `number`-th of its stream or request, from 1).

    Raises:
        InvalidBatch: columns of different lengths, more than 10,000 ticks, a seq of 0, or
            a pair symbol that is empty or longer than 25 characters.
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


def columns_from_message(batch: TickBatch, number: int) -> TickColumns | None:
    """The checked ticks of `batch` as columns; None for an empty batch.

    Raises:
        InvalidBatch: as `check_tick_batch`.
    """
    if not check_tick_batch(batch, number):
        return None
    return TickColumns(
        pair=batch.pair,
        seq=np.asarray(batch.seq, dtype=np.uint64),
        timestamp_ms=np.asarray(batch.timestamp_ms, dtype=np.int64),
        price=np.asarray(batch.price, dtype=np.float64),
        volume=np.asarray(batch.volume, dtype=np.float64),
    )


def tick_batch_messages(ticks: Sequence[TickLike]) -> list[TickBatch]:
    """`ticks` as TickBatch messages, one per run of a pair, in order."""
    return [
        TickBatch(
            pair=columns.pair,
            seq=columns.seq.tolist(),
            timestamp_ms=columns.timestamp_ms.tolist(),
            price=columns.price.tolist(),
            volume=columns.volume.tolist(),
        )
        for columns in TickColumns.runs(ticks)
    ]
