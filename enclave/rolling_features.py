"""`enclave.market.features` tick after tick, its volatility summed as the window moves.

A decision's volatility is the population standard deviation of the pair's last returns.
From one decision to the next the window of returns usually moves on by one, so the exact
sums behind it (`enclave.market.population_stdev`: the returns as integers over a common
power-of-two denominator) need only the newest return added and the oldest taken away.
Each call checks that the returns are those of the call before moved on by one (or grown
by one); any others are summed afresh. The sums are exact, so the variance is the same
rational number either way, and its correctly rounded square root the same float.

Nothing here is sealed: a restarted enclave starts with no sums and sums the first window
afresh, to the same features.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from enclave.market import (
    Features,
    features_of,
    population_stdev,
    recent_returns,
    sqrt_of_fraction,
)


@dataclass
class _ExactSums:
    """A window of finite returns, with the sum and the sum of squares of their exact values
    as integers over the denominator 2**bits (bits only grows: a return with a finer
    denominator shifts both sums up)."""

    returns: list[float] = field(default_factory=list)
    # Each return's exact value as (numerator, power of two of its denominator).
    exact: deque[tuple[int, int]] = field(default_factory=deque)
    bits: int = 0
    total: int = 0
    squares: int = 0

    def add(self, value: float) -> None:
        numerator, denominator = value.as_integer_ratio()
        power = denominator.bit_length() - 1  # a float's denominator is a power of two
        if power > self.bits:
            self.total <<= power - self.bits
            self.squares <<= 2 * (power - self.bits)
            self.bits = power
        scaled = numerator << (self.bits - power)
        self.total += scaled
        self.squares += scaled * scaled
        self.exact.append((numerator, power))
        self.returns.append(value)

    def drop_oldest(self) -> None:
        numerator, power = self.exact.popleft()
        scaled = numerator << (self.bits - power)
        self.total -= scaled
        self.squares -= scaled * scaled
        del self.returns[0]

    def stdev(self) -> float:
        count = len(self.exact)
        return sqrt_of_fraction(
            count * self.squares - self.total * self.total, (count * count) << (2 * self.bits)
        )


class RollingFeatures:
    """`features(closes, short_window, long_window)` of each pair's closes in turn."""

    def __init__(self, short_window: int, long_window: int) -> None:
        self.short_window = short_window
        self.long_window = long_window
        self._sums: dict[str, _ExactSums] = {}

    def features(self, pair: str, closes: Sequence[float]) -> Features:
        """The same `Features` as `enclave.market.features` of `closes`, the closes of `pair`."""
        returns = recent_returns(closes, self.long_window)
        volatility = self._volatility(pair, returns) if len(returns) >= 2 else None
        return features_of(closes, returns, volatility, self.short_window, self.long_window)

    def _volatility(self, pair: str, returns: list[float]) -> float:
        sums = self._sums.get(pair)
        newest = returns[-1]
        if sums is None or not math.isfinite(newest):
            pass
        elif len(returns) == len(sums.returns) and returns[:-1] == sums.returns[1:]:
            sums.drop_oldest()  # the window moved on by one
            sums.add(newest)
            return sums.stdev()
        elif len(returns) == len(sums.returns) + 1 and returns[:-1] == sums.returns:
            sums.add(newest)  # the window grew by one
            return sums.stdev()
        if not all(map(math.isfinite, returns)):
            self._sums.pop(pair, None)
            return population_stdev(returns)
        sums = self._sums[pair] = _ExactSums()
        for value in returns:
            sums.add(value)
        return sums.stdev()
