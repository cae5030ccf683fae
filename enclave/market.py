"""Market ticks from the untrusted host: sanity checks, then the enclave's own features.

Every tick is a sequence number, a timestamp, an allowlisted pair symbol and two finite
numbers; nothing else from the host exists here. A tick is refused, with a machine-readable
reason, when a number is out of range (a timestamp before 1970 included), its sequence does
not advance or leaps more than the configured gap, its time goes backwards, is stale or
(on the replay clock) leaps more than the configured gap, or its price moves more than the
configured percentage from its pair's anchor. The gaps keep one tick (seq 2^64-1, a
timestamp in the year 3000) from refusing every later one.

The anchor bounds the price per unit of market time, not per tick: it is the first accepted
tick of the pair, then the first accepted tick at least `price_move_window_seconds` after
it, and so on. However many ticks a host sends with one timestamp (or within one window),
the price they walk to stays within the limit of the anchor; hourly candles with a one-hour
window compare each candle with the one before it.
"""

from __future__ import annotations

import itertools
import math
import operator
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict

from enclave.config import EnclaveConfig
from wire.ticks import (
    DUPLICATE_SEQ,
    FUTURE_TICK,
    INVALID_NUMBER,
    PRICE_JUMP,
    SEQ_GAP,
    STALE_TICK,
    TIME_GAP,
    TIMESTAMP_BACKWARDS,
    UNKNOWN_PAIR,
    Tick,
)

# Largest price or volume the enclave accepts: far above any real market, far below where
# float arithmetic loses integer precision for token amounts.
MAX_NUMBER = 1e15


class PriceAnchor(NamedTuple):
    """The price a pair's ticks may move at most max_price_move_percent from, and the market
    time it was set at."""

    price: float
    timestamp_ms: int


@dataclass
class MarketMemory:
    """What the enclave remembers of the market (part of the sealed state).

    A plain dataclass: it changes on every accepted tick, tens of thousands of times a second.
    """

    last_seq: int = 0
    last_timestamp_ms: int | None = None
    anchors: dict[str, PriceAnchor] = field(default_factory=dict)
    closes: dict[str, list[float]] = field(default_factory=dict)


def refusal_reason(
    tick: Tick, memory: MarketMemory, config: EnclaveConfig, now_ms: int
) -> str | None:
    """Why `tick` must be refused, or None when it is acceptable."""
    if config.pair(tick.pair) is None:
        return UNKNOWN_PAIR
    if not _sane(tick.price) or tick.price <= 0 or not _sane(tick.volume) or tick.volume < 0:
        return INVALID_NUMBER
    if tick.timestamp_ms < 0:  # before 1970: no receipt could carry its time (uint64)
        return INVALID_NUMBER
    if tick.seq <= memory.last_seq:
        return DUPLICATE_SEQ
    market = config.market
    # seq 0 is never accepted, so a last_seq of 0 means no tick yet: the first is unbounded.
    if memory.last_seq and tick.seq - memory.last_seq > market.max_seq_gap:
        return SEQ_GAP
    if memory.last_timestamp_ms is not None:
        if tick.timestamp_ms < memory.last_timestamp_ms:
            return TIMESTAMP_BACKWARDS
        gap_ms = market.max_timestamp_gap_seconds * 1000
        if market.clock == "replay" and tick.timestamp_ms - memory.last_timestamp_ms > gap_ms:
            return TIME_GAP
    if market.clock == "wall":
        if tick.timestamp_ms > now_ms + market.max_future_skew_seconds * 1000:
            return FUTURE_TICK
        if now_ms - tick.timestamp_ms > market.max_tick_age_seconds * 1000:
            return STALE_TICK
    anchor = memory.anchors.get(tick.pair)
    if anchor is not None and _moved_too_far(
        tick.price, anchor.price, market.max_price_move_percent
    ):
        return PRICE_JUMP
    return None


def _moved_too_far(price: float, anchor: float, limit: Decimal) -> bool:
    # Floats decide every clear case; only a move within a hair of the limit is settled
    # exactly in Decimal, so "exactly at the limit" is accepted and anything above refused.
    move = abs(price - anchor) / anchor * 100
    bound = float(limit)
    if move < bound * (1 - 1e-9):
        return False
    if move > bound * (1 + 1e-9):
        return True
    return Decimal(abs(price - anchor)) / Decimal(anchor) * 100 > limit


def _sane(value: float) -> bool:
    return math.isfinite(value) and abs(value) <= MAX_NUMBER


def remember(tick: Tick, memory: MarketMemory, keep: int, window_ms: int) -> None:
    """Record an accepted tick, keeping the last `keep` closes of its pair; the tick becomes
    its pair's anchor when it is the first, or at least `window_ms` after the anchor."""
    memory.last_seq = tick.seq
    memory.last_timestamp_ms = tick.timestamp_ms
    anchor = memory.anchors.get(tick.pair)
    if anchor is None or tick.timestamp_ms - anchor.timestamp_ms >= window_ms:
        memory.anchors[tick.pair] = PriceAnchor(tick.price, tick.timestamp_ms)
    closes = memory.closes.setdefault(tick.pair, [])
    closes.append(tick.price)
    if len(closes) > keep:
        del closes[: len(closes) - keep]


class Features(BaseModel):
    """Deterministic features of one pair's recent closes, computed inside the enclave."""

    model_config = ConfigDict(frozen=True)

    price: float
    closes: int
    return_1: float | None
    sma_short: float | None
    sma_long: float | None
    volatility: float | None


def features(closes: Sequence[float], short_window: int, long_window: int) -> Features:
    """Returns, moving averages and volatility over the last closes (None until enough)."""
    returns = recent_returns(closes, long_window)
    volatility = population_stdev(returns) if len(returns) >= 2 else None
    return features_of(closes, returns, volatility, short_window, long_window)


def recent_returns(closes: Sequence[float], long_window: int) -> list[float]:
    """`closes[i] / closes[i - 1] - 1` over the last `long_window` steps of the closes,
    divided and shifted a whole list at a time (the same floats as one by one)."""
    count = len(closes)
    first = max(1, count - long_window)
    ratios = map(operator.truediv, closes[first:count], closes[first - 1 : count - 1])
    return list(map(operator.sub, ratios, itertools.repeat(1.0)))


def features_of(
    closes: Sequence[float],
    returns: list[float],
    volatility: float | None,
    short_window: int,
    long_window: int,
) -> Features:
    """The `Features` of `closes`, given their `recent_returns` and those returns'
    population standard deviation (None for fewer than two)."""
    count = len(closes)
    return Features(
        price=closes[-1],
        closes=count,
        return_1=returns[-1] if returns else None,
        sma_short=statistics.fmean(closes[-short_window:]) if count >= short_window else None,
        sma_long=statistics.fmean(closes[-long_window:]) if count >= long_window else None,
        volatility=volatility,
    )


# Bits of the integer square root taken before the final rounding to a float: twice the
# float's 53-bit mantissa and three more, as CPython's `statistics` takes (the principle and
# its proof: https://bugs.python.org/msg407078).
_SQRT_BITS = 2 * 53 + 3


def population_stdev(values: Sequence[float]) -> float:
    """`statistics.pstdev(values)`, the same float, about ten times faster.

    Both are exact until one correctly rounded square root: the sums are taken over the
    floats' exact values as integers over a common power-of-two denominator (where
    `statistics` adds Fractions), so the variance is the same rational number and its
    correctly rounded square root the same float. Non-finite values go to `statistics`.
    """
    count = len(values)
    if count < 1 or not all(map(math.isfinite, values)):
        return statistics.pstdev(values)
    numerators, denominators = zip(*map(float.as_integer_ratio, values), strict=True)
    scale = max(denominators)  # each a power of two
    scaled = list(map(operator.mul, numerators, map(scale.__floordiv__, denominators)))
    total = sum(scaled)
    squares = sum(map(operator.mul, scaled, scaled))
    # The variance: (count * sum(x^2) - sum(x)^2) / (count^2 * scale^2), over the values.
    return sqrt_of_fraction(count * squares - total * total, count * count * scale * scale)


def sqrt_of_fraction(numerator: int, denominator: int) -> float:
    """The square root of numerator/denominator (>= 0), correctly rounded to a float: an
    integer square root with _SQRT_BITS bits, rounded to odd, then one rounding to float."""
    shift = (numerator.bit_length() - denominator.bit_length() - _SQRT_BITS) // 2
    if shift >= 0:
        return float(_isqrt_round_to_odd(numerator, denominator << 2 * shift) << shift)
    return _isqrt_round_to_odd(numerator << -2 * shift, denominator) / (1 << -shift)


def _isqrt_round_to_odd(numerator: int, denominator: int) -> int:
    """The integer square root of numerator/denominator, its last bit set when inexact."""
    root = math.isqrt(numerator // denominator)
    return root | (root * root * denominator != numerator)
