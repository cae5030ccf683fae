"""The enclave's features: its population standard deviation is `statistics.pstdev`'s,
to the last bit (receipts carry it, and a replayed decision must see the same bytes)."""

from __future__ import annotations

import statistics

from hypothesis import given
from hypothesis import strategies as st

from enclave.market import features, population_stdev

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
