"""The enclave's features: its population standard deviation is `statistics.pstdev`'s,
to the last bit (receipts carry it, and a replayed decision must see the same bytes)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st

from enclave.market import Features, features, population_stdev
from enclave.rolling_features import RollingFeatures

FINITE = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6)
RETURNS = st.floats(allow_nan=False, allow_infinity=False, min_value=-0.5, max_value=0.5)


@given(st.lists(FINITE, min_size=1, max_size=60))
def test_population_stdev_is_statistics_pstdev(values: list[float]) -> None:
    assert population_stdev(values) == statistics.pstdev(values)


@given(st.lists(RETURNS, min_size=2, max_size=48))
def test_population_stdev_of_returns_is_statistics_pstdev(values: list[float]) -> None:
    assert population_stdev(values) == statistics.pstdev(values)


def test_equal_values_have_no_spread_and_features_use_it() -> None:
    assert population_stdev([0.1] * 48) == statistics.pstdev([0.1] * 48) == 0.0
    closes = [100.0, 101.5, 99.25, 102.0, 98.0]
    returns = [closes[i] / closes[i - 1] - 1 for i in range(1, len(closes))]
    assert features(closes, 2, 4).volatility == statistics.pstdev(returns)


# A pair's closes as the enclave keeps them, one step at a time: a new close (often equal
# to the last, sometimes far off), or the closes of an earlier moment (a restored state).
PRICES = st.one_of(
    st.floats(min_value=1e-3, max_value=1e6),
    st.sampled_from([1e-300, 5e-324, 1e15, 1.0]),
)
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("tick"), PRICES),
        st.tuples(st.just("tick"), st.floats(min_value=-0.05, max_value=0.05)),
        st.tuples(st.just("same"), st.just(0.0)),
        st.tuples(st.just("back"), st.integers(min_value=1, max_value=70)),
    ),
    min_size=1,
    max_size=150,
)


def _outcome(compute: Callable[[list[float]], object], closes: list[float]) -> object:
    try:
        return compute(closes)
    except Exception as error:  # statistics.pstdev itself fails on an infinite return
        return type(error)


@given(STEPS)
def test_rolling_features_are_the_features_of_the_closes_step_by_step(
    steps: list[tuple[str, float]],
) -> None:
    short_window, long_window, keep = 5, 12, 16
    rolling = RollingFeatures(short_window, long_window)
    closes: list[float] = []
    history: list[list[float]] = []
    for kind, value in steps:
        if kind == "back" and history:
            closes = list(history[-min(int(value), len(history))])
        elif kind == "same" and closes:
            closes.append(closes[-1])
        elif kind == "tick" and closes and abs(value) <= 0.05:
            closes.append(closes[-1] * (1 + value))  # a move as markets make them
        else:
            closes.append(abs(value) or 1.0)
        del closes[:-keep]
        history.append(list(closes))
        expected = _outcome(lambda c: features(c, short_window, long_window), closes)
        found = _outcome(lambda c: rolling.features("ETH/USDT", c), closes)
        if isinstance(expected, Features) and isinstance(found, Features):
            assert found.model_dump() == expected.model_dump() or (
                math.isnan(expected.volatility or 0) and math.isnan(found.volatility or 0)
            )
        else:
            assert found == expected


def test_rolling_features_carry_the_sums_as_the_window_moves_on() -> None:
    closes = [100.0 * (1 + 0.01 * ((i * 7) % 5 - 2)) for i in range(200)]
    rolling = RollingFeatures(12, 48)
    first_sums = None
    for end in range(1, len(closes) + 1):
        window = closes[max(0, end - 64) : end]
        assert rolling.features("ETH/USDT", window) == features(window, 12, 48)
        first_sums = first_sums or rolling._sums.get("ETH/USDT")
    # The sums made at the third close (the first two returns), grown and then moved on to
    # the last 48 returns, never summed afresh.
    assert rolling._sums["ETH/USDT"] is first_sums is not None
    assert first_sums.returns == [closes[i] / closes[i - 1] - 1 for i in range(152, 200)]
