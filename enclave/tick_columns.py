"""The checks run on a whole run of ticks at once, over its columns.

A batch arrives as the ticks of one pair in four aligned columns (`wire.ticks.TickColumns`:
seq, timestamp_ms, price, volume), so the enclave never builds an object per tick. Nearly
every tick of a real feed is plainly acceptable: `clean_prefix` finds, with a few numpy
operations over a window, how many leading ticks pass every check of
`enclave.market.refusal_reason` with room to spare, and those are accepted together by
`remember_run`. Within such a run every tick is accepted, so where its pair's price anchor
moves follows from the timestamps alone (`_anchor_moves`). Every other tick (one to refuse,
or a price move within a hair of the limit) goes through `refusal_reason` alone, so the
outcome is exactly that of checking each tick by itself; the tests hold the two paths to
the same state.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from enclave.config import EnclaveConfig
from enclave.market import MAX_NUMBER, MarketMemory, PriceAnchor
from wire.ticks import TickColumns

# Below this much of the limit a price move is accepted by floats alone; anything closer
# is settled exactly by `refusal_reason` (the same margin `market._moved_too_far` uses).
_CLEAR_MARGIN = 1 - 1e-9
_INT64_MAX = 2**63 - 1
# Below this many anchor moves in a run, `_anchor_moves` finds each with a search of its own.
_FEW_MOVES = 32


def clean_prefix(
    ticks: TickColumns,
    start: int,
    stop: int,
    memory: MarketMemory,
    config: EnclaveConfig,
    now_ms: int,
) -> int:
    """How many ticks from `start` (up to `stop`) `refusal_reason` would plainly accept in
    turn, given `memory` before `start`; each is compared with its pair's anchor as the
    ticks before it, accepted too, left it."""
    if stop <= start or config.pair(ticks.pair) is None:
        return 0
    seq = ticks.seq[start:stop]
    stamps = ticks.timestamp_ms[start:stop]
    price = ticks.price[start:stop]
    volume = ticks.volume[start:stop]
    ok = np.isfinite(price) & (price > 0) & (price <= MAX_NUMBER)
    ok &= np.isfinite(volume) & (volume >= 0) & (volume <= MAX_NUMBER)
    ok &= stamps >= 0
    market = config.market
    ok[0] &= bool(seq[0] > memory.last_seq)
    ok[1:] &= seq[1:] > seq[:-1]
    # Each tick of a clean run follows the one before it, accepted too, within the gaps.
    # (Where seq does not advance the difference wraps around; that tick fails already.)
    if memory.last_seq:  # 0: no tick yet, the first is unbounded
        ok[0] &= int(seq[0]) - memory.last_seq <= market.max_seq_gap
    ok[1:] &= seq[1:] - seq[:-1] <= np.uint64(market.max_seq_gap)
    if memory.last_timestamp_ms is not None:
        ok[0] &= bool(stamps[0] >= memory.last_timestamp_ms)
    ok[1:] &= stamps[1:] >= stamps[:-1]
    if market.clock == "replay":
        gap_ms = market.max_timestamp_gap_seconds * 1000
        if memory.last_timestamp_ms is not None:
            ok[0] &= int(stamps[0]) - memory.last_timestamp_ms <= gap_ms
        ok[1:] &= stamps[1:] - stamps[:-1] <= gap_ms
    if market.clock == "wall":
        ok &= stamps <= now_ms + market.max_future_skew_seconds * 1000
        ok &= stamps >= now_ms - market.max_tick_age_seconds * 1000
    # Up to the first tick failing a check other than the price move, the timestamps never
    # go back, and the anchors follow from them: the price moves are judged on that span.
    span = len(ok) if ok.all() else int(np.argmin(ok))
    if span == 0:
        return 0
    anchor = memory.anchors.get(ticks.pair)
    window_ms = market.price_move_window_seconds * 1000
    moves = _anchor_moves(stamps[:span], anchor, window_ms)
    compared = _anchor_prices(price[:span], moves, anchor)
    with np.errstate(all="ignore"):  # NaN only where there is no anchor yet
        calm = np.abs(price[:span] - compared) / compared * 100 < (
            float(market.max_price_move_percent) * _CLEAR_MARGIN
        )
    if anchor is None:
        calm[0] = True  # the first tick of a pair sets its anchor
    return span if calm.all() else int(np.argmin(calm))


def _anchor_moves(
    stamps: npt.NDArray[np.int64], anchor: PriceAnchor | None, window_ms: int
) -> list[int]:
    """The ticks (indices into `stamps`, which never go back) that become their pair's anchor
    when all are accepted in turn after `anchor`: the first at least `window_ms` after the
    anchor (the first tick, without one), then the first at least `window_ms` after that..."""
    count = len(stamps)
    if anchor is None:
        first = 0
    elif anchor.timestamp_ms + window_ms > _INT64_MAX:
        return []
    else:
        first = int(np.searchsorted(stamps, anchor.timestamp_ms + window_ms, side="left"))
    if first >= count:
        return []
    moves, index = [], first
    if (int(stamps[-1]) - int(stamps[first])) // window_ms < _FEW_MOVES:
        # A few windows in the run (ticks far more frequent than windows): a search each.
        while index < count:
            moves.append(index)
            target = int(stamps[index]) + window_ms
            if target > _INT64_MAX:
                break
            index = int(np.searchsorted(stamps, target, side="left"))
        return moves
    # Many (a window or more between ticks): the next move after every tick, at once.
    # after[i]: the first tick at least a window after tick i (`count` when none can be).
    reachable = stamps <= _INT64_MAX - window_ms
    after = np.searchsorted(stamps, np.where(reachable, stamps, 0) + window_ms, side="left")
    after[~reachable] = count
    steps = after.tolist()
    while index < count:
        moves.append(index)
        index = steps[index]
    return moves


def _anchor_prices(
    price: npt.NDArray[np.float64], moves: list[int], anchor: PriceAnchor | None
) -> npt.NDArray[np.float64]:
    """The anchor price each tick is compared with: that of the last move before it, else
    `anchor`'s (NaN without one)."""
    compared = np.full(len(price), np.nan if anchor is None else anchor.price)
    if moves:
        latest = np.full(len(price), -1, dtype=np.int64)
        latest[moves] = moves
        np.maximum.accumulate(latest, out=latest)
        before = np.empty_like(latest)
        before[0], before[1:] = -1, latest[:-1]
        moved = before >= 0
        compared[moved] = price[before[moved]]
    return compared


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
    ticks: TickColumns, start: int, stop: int, memory: MarketMemory, keep: int, window_ms: int
) -> None:
    """Record the accepted ticks [start, stop), as `market.remember` would one by one."""
    if stop <= start:
        return
    memory.last_seq = int(ticks.seq[stop - 1])
    memory.last_timestamp_ms = int(ticks.timestamp_ms[stop - 1])
    moves = _anchor_moves(ticks.timestamp_ms[start:stop], memory.anchors.get(ticks.pair), window_ms)
    if moves:
        last = start + moves[-1]
        memory.anchors[ticks.pair] = PriceAnchor(
            float(ticks.price[last]), int(ticks.timestamp_ms[last])
        )
    closes = memory.closes.setdefault(ticks.pair, [])
    closes.extend(ticks.price[max(start, stop - keep) : stop].tolist())
    if len(closes) > keep:
        del closes[: len(closes) - keep]
