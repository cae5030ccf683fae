"""Market tick sanity checks (`refusal_reason`) and the enclave's own features of the closes."""

from __future__ import annotations

import itertools
import math
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enclave.config import EnclaveConfig, parse_config
from enclave.market import MAX_NUMBER, MarketMemory, features, refusal_reason, remember
from tests.enclave_harness import config_toml
from wire.ticks import (
    DUPLICATE_SEQ,
    FUTURE_TICK,
    INVALID_NUMBER,
    PRICE_JUMP,
    STALE_TICK,
    TIMESTAMP_BACKWARDS,
    UNKNOWN_PAIR,
    Tick,
)

OWNER_HEX = "22" * 32
WALL = parse_config(config_toml(OWNER_HEX, clock="wall"))
REPLAY = parse_config(config_toml(OWNER_HEX, clock="replay"))
NOW_MS = 1_700_000_000_000
MAX_AGE_MS = 120_000  # max_tick_age_seconds default
MAX_SKEW_MS = 5_000  # max_future_skew_seconds default
PAIR = "ETH/USDT"

REASONS = {
    UNKNOWN_PAIR,
    INVALID_NUMBER,
    DUPLICATE_SEQ,
    TIMESTAMP_BACKWARDS,
    STALE_TICK,
    FUTURE_TICK,
    PRICE_JUMP,
}


def tick(
    seq: int = 11,
    timestamp_ms: int = NOW_MS,
    pair: str = PAIR,
    price: float = 100.0,
    volume: float = 1.0,
) -> Tick:
    return Tick(seq=seq, timestamp_ms=timestamp_ms, pair=pair, price=price, volume=volume)


def memory(last_price: float | None = 100.0) -> MarketMemory:
    """The market after tick 10 at NOW_MS - 1 s."""
    remembered = MarketMemory()
    if last_price is not None:
        remember(tick(seq=10, timestamp_ms=NOW_MS - 1000, price=last_price), remembered, keep=64)
    return remembered


def test_the_fixture_is_what_the_checks_assume() -> None:
    assert WALL.market.clock == "wall" and REPLAY.market.clock == "replay"
    assert WALL.market.max_tick_age_seconds * 1000 == MAX_AGE_MS
    assert WALL.market.max_future_skew_seconds * 1000 == MAX_SKEW_MS
    assert WALL.market.max_price_move_percent == 20
    assert [pair.symbol for pair in WALL.pairs] == [PAIR]


@pytest.mark.parametrize("config", [WALL, REPLAY], ids=["wall", "replay"])
def test_a_good_tick_is_accepted(config: EnclaveConfig) -> None:
    assert refusal_reason(tick(), memory(), config, NOW_MS) is None
    assert refusal_reason(tick(seq=1), MarketMemory(), config, NOW_MS) is None


@pytest.mark.parametrize("pair", ["BTC/USDT", "eth/usdt", "ETH/USDT ", "", "USDT/ETH", "ETH"])
def test_a_pair_not_in_the_config_is_refused(pair: str) -> None:
    assert refusal_reason(tick(pair=pair), memory(), WALL, NOW_MS) == UNKNOWN_PAIR


@pytest.mark.parametrize(
    ("price", "volume"),
    [
        (math.nan, 1.0),
        (math.inf, 1.0),
        (-math.inf, 1.0),
        (-100.0, 1.0),
        (0.0, 1.0),
        (-0.0, 1.0),
        (math.nextafter(MAX_NUMBER, math.inf), 1.0),
        (1e300, 1.0),
        (100.0, -1.0),
        (100.0, -5e-324),
        (100.0, math.nan),
        (100.0, math.inf),
        (100.0, math.nextafter(MAX_NUMBER, math.inf)),
    ],
)
def test_invalid_numbers_are_refused(price: float, volume: float) -> None:
    fresh = MarketMemory()
    assert refusal_reason(tick(price=price, volume=volume), fresh, REPLAY, NOW_MS) == INVALID_NUMBER


def test_numbers_at_the_edges_are_accepted() -> None:
    fresh = MarketMemory()
    for price, volume in [(MAX_NUMBER, 0.0), (5e-324, MAX_NUMBER), (1.0, -0.0)]:
        assert refusal_reason(tick(price=price, volume=volume), fresh, REPLAY, NOW_MS) is None


def test_a_sequence_number_that_does_not_advance_is_a_duplicate() -> None:
    remembered = memory()
    assert remembered.last_seq == 10
    assert refusal_reason(tick(seq=11), remembered, WALL, NOW_MS) is None
    assert refusal_reason(tick(seq=10), remembered, WALL, NOW_MS) == DUPLICATE_SEQ
    assert refusal_reason(tick(seq=3), remembered, WALL, NOW_MS) == DUPLICATE_SEQ
    assert refusal_reason(tick(seq=0), MarketMemory(), WALL, NOW_MS) == DUPLICATE_SEQ
    assert refusal_reason(tick(seq=-1), MarketMemory(), WALL, NOW_MS) == DUPLICATE_SEQ


def test_time_must_not_go_backwards_but_may_stand_still() -> None:
    remembered = memory()
    last = NOW_MS - 1000
    assert remembered.last_timestamp_ms == last
    for config in (WALL, REPLAY):
        assert refusal_reason(tick(timestamp_ms=last), remembered, config, NOW_MS) is None
        assert (
            refusal_reason(tick(timestamp_ms=last - 1), remembered, config, NOW_MS)
            == TIMESTAMP_BACKWARDS
        )


def test_wall_clock_refuses_stale_ticks_beyond_the_maximum_age() -> None:
    fresh = MarketMemory()
    assert refusal_reason(tick(timestamp_ms=NOW_MS - MAX_AGE_MS), fresh, WALL, NOW_MS) is None
    assert (
        refusal_reason(tick(timestamp_ms=NOW_MS - MAX_AGE_MS - 1), fresh, WALL, NOW_MS)
        == STALE_TICK
    )
    assert refusal_reason(tick(timestamp_ms=0), fresh, WALL, NOW_MS) == STALE_TICK


def test_wall_clock_refuses_ticks_from_the_future_beyond_the_skew() -> None:
    fresh = MarketMemory()
    assert refusal_reason(tick(timestamp_ms=NOW_MS + MAX_SKEW_MS), fresh, WALL, NOW_MS) is None
    assert (
        refusal_reason(tick(timestamp_ms=NOW_MS + MAX_SKEW_MS + 1), fresh, WALL, NOW_MS)
        == FUTURE_TICK
    )


def test_the_age_limits_follow_the_config() -> None:
    text = config_toml(OWNER_HEX, clock="wall").replace(
        "[market]\n", "[market]\nmax_tick_age_seconds = 30\nmax_future_skew_seconds = 0\n"
    )
    config = parse_config(text)
    fresh = MarketMemory()
    assert refusal_reason(tick(timestamp_ms=NOW_MS - 30_000), fresh, config, NOW_MS) is None
    assert refusal_reason(tick(timestamp_ms=NOW_MS - 30_001), fresh, config, NOW_MS) == STALE_TICK
    assert refusal_reason(tick(timestamp_ms=NOW_MS), fresh, config, NOW_MS) is None
    assert refusal_reason(tick(timestamp_ms=NOW_MS + 1), fresh, config, NOW_MS) == FUTURE_TICK


def test_replay_clock_skips_staleness_and_future_checks() -> None:
    fresh = MarketMemory()
    for timestamp_ms in (0, NOW_MS - MAX_AGE_MS - 1, NOW_MS + MAX_SKEW_MS + 1, 2**62):
        assert refusal_reason(tick(timestamp_ms=timestamp_ms), fresh, REPLAY, NOW_MS) is None
    # Any time from 1970 on: a time before it is out of range (see below).
    assert refusal_reason(tick(timestamp_ms=-(10**12)), fresh, REPLAY, NOW_MS) == INVALID_NUMBER
    # Still in order, though.
    remembered = memory()
    assert (
        refusal_reason(tick(timestamp_ms=NOW_MS - 1001), remembered, REPLAY, 0)
        == TIMESTAMP_BACKWARDS
    )


@pytest.mark.parametrize("config", [WALL, REPLAY], ids=["wall", "replay"])
def test_a_timestamp_before_1970_is_an_invalid_number(config: EnclaveConfig) -> None:
    # No receipt could carry its time (uint64 seconds), whatever the clock; with the wall
    # clock running before 1970 it would not even be stale.
    for now_ms in (NOW_MS, -1, -(10**12)):
        for timestamp_ms in (-1, -1000, -(10**12), -(2**63)):
            for remembered in (MarketMemory(), memory()):
                assert (
                    refusal_reason(tick(timestamp_ms=timestamp_ms), remembered, config, now_ms)
                    == INVALID_NUMBER
                ), (timestamp_ms, now_ms)
    assert refusal_reason(tick(timestamp_ms=0), MarketMemory(), REPLAY, NOW_MS) is None
    assert refusal_reason(tick(timestamp_ms=0), MarketMemory(), WALL, 0) is None


@pytest.mark.parametrize("config", [WALL, REPLAY], ids=["wall", "replay"])
def test_a_price_move_up_to_the_limit_is_accepted_beyond_it_refused(
    config: EnclaveConfig,
) -> None:
    remembered = memory(last_price=100.0)
    for inside in (120.0, 80.0, 100.0, 119.99999999999999, 80.00000000000001):
        assert refusal_reason(tick(price=inside), remembered, config, NOW_MS) is None, inside
    for outside in (math.nextafter(120.0, math.inf), math.nextafter(80.0, 0.0), 200.0, 1e-3):
        assert refusal_reason(tick(price=outside), remembered, config, NOW_MS) == PRICE_JUMP


def test_the_price_move_limit_is_measured_from_the_last_accepted_price() -> None:
    remembered = memory(last_price=100.0)
    remember(tick(seq=11, price=120.0), remembered, keep=64)
    assert refusal_reason(tick(seq=12, price=144.0), remembered, WALL, NOW_MS) is None
    assert refusal_reason(tick(seq=12, price=144.00000000000003), remembered, WALL, NOW_MS) == (
        PRICE_JUMP
    )
    # The first tick of a pair has nothing to jump from.
    assert refusal_reason(tick(price=1e12), MarketMemory(), WALL, NOW_MS) is None


def test_the_price_move_limit_follows_the_config() -> None:
    config = parse_config(config_toml(OWNER_HEX, clock="wall", max_price_move_percent="2.5"))
    remembered = memory(last_price=200.0)
    assert refusal_reason(tick(price=205.0), remembered, config, NOW_MS) is None
    assert refusal_reason(tick(price=195.0), remembered, config, NOW_MS) is None
    assert refusal_reason(tick(price=205.00000000000003), remembered, config, NOW_MS) == PRICE_JUMP


def test_remember_keeps_the_last_closes() -> None:
    remembered = MarketMemory()
    for seq in range(1, 8):
        remember(tick(seq=seq, timestamp_ms=seq, price=float(seq)), remembered, keep=3)
    assert remembered.last_seq == 7
    assert remembered.last_timestamp_ms == 7
    assert remembered.last_price == {PAIR: 7.0}
    assert remembered.closes == {PAIR: [5.0, 6.0, 7.0]}


# -- features --------------------------------------------------------------------------------

# Returns +4 %, -5 %, then the last four (the long window): +5 %, 0, +5 %, -10 %.
SERIES = [100.0, 104.0, 98.8, 103.74, 103.74, 108.927, 98.0343]


def test_features_of_a_known_series() -> None:
    short, long = 2, 4
    result = features(SERIES, short, long)
    returns = [b / a - 1 for a, b in itertools.pairwise(SERIES[-long - 1 :])]
    assert returns == pytest.approx([0.05, 0.0, 0.05, -0.1], abs=1e-12)
    assert result.price == 98.0343
    assert result.closes == 7
    assert result.return_1 == pytest.approx(-0.1, abs=1e-12)
    assert result.sma_short == pytest.approx((108.927 + 98.0343) / 2, rel=1e-12)
    assert result.sma_long == pytest.approx((103.74 + 103.74 + 108.927 + 98.0343) / 4, rel=1e-12)
    assert result.volatility == pytest.approx(statistics.pstdev(returns), rel=1e-12)
    # Mean 0: sqrt((0.05^2 + 0 + 0.05^2 + 0.1^2) / 4); the older -5 % return is not in it.
    assert result.volatility == pytest.approx(math.sqrt(0.00375), rel=1e-9)
    assert result.volatility != pytest.approx(
        statistics.pstdev([b / a - 1 for a, b in itertools.pairwise(SERIES[-long - 2 :])]),
        rel=1e-3,
    )


def test_features_warm_up_until_there_are_enough_closes() -> None:
    one = features([100.0], 2, 4)
    assert (one.price, one.closes) == (100.0, 1)
    assert one.return_1 is None and one.sma_short is None and one.sma_long is None
    assert one.volatility is None

    two = features([100.0, 110.0], 2, 4)
    assert two.return_1 == pytest.approx(0.1, rel=1e-12)
    assert two.sma_short == pytest.approx(105.0, rel=1e-12)
    assert two.sma_long is None
    assert two.volatility is None  # one return is no volatility

    three = features([100.0, 110.0, 99.0], 2, 4)
    assert three.volatility == pytest.approx(statistics.pstdev([0.1, -0.1]), rel=1e-9)
    assert three.volatility == pytest.approx(0.1, rel=1e-9)
    assert three.sma_long is None

    four = features([100.0, 110.0, 99.0, 99.0], 2, 4)
    assert four.sma_long == pytest.approx(102.0, rel=1e-12)
    assert four.volatility == pytest.approx(statistics.pstdev([0.1, -0.1, 0.0]), rel=1e-9)


def test_a_flat_series_has_no_volatility_and_equal_averages() -> None:
    result = features([50.0] * 10, 3, 6)
    assert result.return_1 == 0.0
    assert result.sma_short == result.sma_long == 50.0
    assert result.volatility == 0.0


# -- property --------------------------------------------------------------------------------

any_float = st.floats(allow_nan=True, allow_infinity=True)
any_int = st.integers(min_value=-(2**70), max_value=2**70)
any_tick = st.builds(
    Tick,
    seq=st.integers(min_value=0, max_value=20) | any_int,
    timestamp_ms=st.integers(min_value=NOW_MS - 200_000, max_value=NOW_MS + 10_000) | any_int,
    pair=st.just(PAIR) | st.text(max_size=30),
    price=st.floats(min_value=70.0, max_value=130.0) | any_float,
    volume=st.floats(min_value=0.0, max_value=10.0) | any_float,
)


@st.composite
def batches(draw: st.DrawFn) -> list[Tick]:
    """Runs of mostly plausible ticks (so that many are accepted), with anything mixed in."""
    batch = []
    for index in range(draw(st.integers(min_value=0, max_value=12))):
        if draw(st.booleans()):
            batch.append(draw(any_tick))
            continue
        batch.append(
            tick(
                seq=index + draw(st.integers(min_value=0, max_value=2)),
                timestamp_ms=NOW_MS - 100_000 + index * 1000 + draw(st.integers(-1500, 1500)),
                price=draw(st.floats(min_value=85.0, max_value=115.0)),
                volume=draw(st.floats(min_value=0.0, max_value=10.0)),
            )
        )
    return batch


@settings(max_examples=300, deadline=None)
@given(
    batch=batches(),
    wall=st.booleans(),
    now_ms=st.just(NOW_MS) | st.integers(min_value=-(2**63), max_value=2**63),
)
def test_no_tick_makes_the_checks_raise_and_accepted_ticks_are_sane(
    batch: list[Tick], wall: bool, now_ms: int
) -> None:
    config = WALL if wall else REPLAY
    remembered = MarketMemory()
    accepted: list[Tick] = []
    for item in batch:
        reason = refusal_reason(item, remembered, config, now_ms)
        assert reason is None or reason in REASONS
        if reason is None:
            accepted.append(item)
            remember(item, remembered, keep=8)
            features(remembered.closes[PAIR], 2, 4)
    for item in accepted:
        assert item.pair == PAIR
        assert math.isfinite(item.price) and 0 < item.price <= MAX_NUMBER
        assert math.isfinite(item.volume) and 0 <= item.volume <= MAX_NUMBER
    assert [item.seq for item in accepted] == sorted({item.seq for item in accepted})
    assert all(item.seq >= 1 for item in accepted)
    stamps = [item.timestamp_ms for item in accepted]
    assert stamps == sorted(stamps)
    assert all(t >= 0 for t in stamps)
    for before, after in itertools.pairwise(accepted):
        assert abs(after.price - before.price) <= before.price * 0.2 * (1 + 1e-12)
    if wall:
        assert all(now_ms - MAX_AGE_MS <= t <= now_ms + MAX_SKEW_MS for t in stamps)
