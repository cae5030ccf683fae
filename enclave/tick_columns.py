"""The checks run on a whole run of ticks at once, over its columns.

A batch arrives as the ticks of one pair in four aligned columns (`wire.ticks.TickColumns`:
seq, timestamp_ms, price, volume), so the enclave never builds an object per tick. Nearly
every tick of a real feed is plainly acceptable: `clean_prefix` finds, with a few numpy
operations over a window, how many leading ticks pass every check of
`enclave.market.refusal_reason` with room to spare, and those are accepted together by
`remember_run`. Every other tick (one to refuse, or a price move within a hair of the
limit) goes through `refusal_reason` alone, so the outcome is exactly that of checking each
tick by itself; the tests hold the two paths to the same state.
"""

from __future__ import annotations

import numpy as np

from enclave.config import EnclaveConfig
from enclave.market import MAX_NUMBER, MarketMemory
from wire.ticks import TickColumns

# Below this much of the limit a price move is accepted by floats alone; anything closer
# is settled exactly by `refusal_reason` (the same margin `market._moved_too_far` uses).
_CLEAR_MARGIN = 1 - 1e-9
_INT64_MAX = 2**63 - 1


def clean_prefix(
    ticks: TickColumns,
    start: int,
    stop: int,
    memory: MarketMemory,
    config: EnclaveConfig,
    now_ms: int,
) -> int:
    """How many ticks from `start` (up to `stop`) `refusal_reason` would plainly accept in
    turn, given `memory` before `start`; each is compared with the one before it, which is
    accepted too."""
    if stop <= start or config.pair(ticks.pair) is None:
        return 0
    seq = ticks.seq[start:stop]
    stamps = ticks.timestamp_ms[start:stop]
    price = ticks.price[start:stop]
    volume = ticks.volume[start:stop]
    ok = np.isfinite(price) & (price > 0) & (price <= MAX_NUMBER)
    ok &= np.isfinite(volume) & (volume >= 0) & (volume <= MAX_NUMBER)
    ok &= stamps >= 0
    ok[0] &= bool(seq[0] > memory.last_seq)
    ok[1:] &= seq[1:] > seq[:-1]
    if memory.last_timestamp_ms is not None:
        ok[0] &= bool(stamps[0] >= memory.last_timestamp_ms)
    ok[1:] &= stamps[1:] >= stamps[:-1]
    market = config.market
    if market.clock == "wall":
        ok &= stamps <= now_ms + market.max_future_skew_seconds * 1000
        ok &= stamps >= now_ms - market.max_tick_age_seconds * 1000
    last = memory.last_price.get(ticks.pair)
    previous = np.empty_like(price)
    previous[0] = np.nan if last is None else last
    previous[1:] = price[:-1]
    with np.errstate(all="ignore"):  # NaN or zero prices are already not ok
        calm = np.abs(price - previous) / previous * 100 < (
            float(market.max_price_move_percent) * _CLEAR_MARGIN
        )
    if last is None:
        calm[0] = True
    ok &= calm
    return len(ok) if ok.all() else int(np.argmin(ok))


def first_due(ticks: TickColumns, start: int, stop: int, due_ms: int | None) -> int | None:
    """The first tick in [start, stop) at or after `due_ms` (None: the first tick), or None.

    The run's timestamps never go back (`clean_prefix` checked that).
    """
    if stop <= start:
        return None
    if due_ms is None:
        return start
    if due_ms > _INT64_MAX:
        return None
    found = start + int(np.searchsorted(ticks.timestamp_ms[start:stop], due_ms, side="left"))
    return found if found < stop else None


def remember_run(
    ticks: TickColumns, start: int, stop: int, memory: MarketMemory, keep: int
) -> None:
    """Record the accepted ticks [start, stop), as `market.remember` would one by one."""
    if stop <= start:
        return
    memory.last_seq = int(ticks.seq[stop - 1])
    memory.last_timestamp_ms = int(ticks.timestamp_ms[stop - 1])
    memory.last_price[ticks.pair] = float(ticks.price[stop - 1])
    closes = memory.closes.setdefault(ticks.pair, [])
    closes.extend(ticks.price[max(start, stop - keep) : stop].tolist())
    if len(closes) > keep:
        del closes[: len(closes) - keep]
