"""Market tick sanity checks (`refusal_reason`), the price anchor that bounds a price's move
per unit of market time, and the enclave's own features of the closes."""

from __future__ import annotations

import itertools
import math
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enclave.config import EnclaveConfig, parse_config
from enclave.market import (
    MAX_NUMBER,
    MarketMemory,
    PriceAnchor,
    features,
    refusal_reason,
    remember,
)
from tests.enclave_harness import config_toml
from wire.ticks import (
    BACKLOG,
    DUPLICATE_SEQ,
    FUTURE_TICK,
    INVALID_NUMBER,
    PRICE_JUMP,
    SEQ_GAP,
    STALE_TICK,
    TICK_REFUSALS,
    TIME_GAP,
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
WINDOW_MS = 3_600_000  # price_move_window_seconds in the harness config
PAIR = "ETH/USDT"

REASONS = {
    UNKNOWN_PAIR,
    INVALID_NUMBER,
    DUPLICATE_SEQ,
    TIMESTAMP_BACKWARDS,
    STALE_TICK,
    FUTURE_TICK,
    PRICE_JUMP,
    SEQ_GAP,
    TIME_GAP,
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
        accepted = tick(seq=10, timestamp_ms=NOW_MS - 1000, price=last_price)
        remember(accepted, remembered, keep=64, window_ms=WINDOW_MS)
    return remembered


def test_the_fixture_is_what_the_checks_assume() -> None:
    assert WALL.market.clock == "wall" and REPLAY.market.clock == "replay"
    assert WALL.market.max_tick_age_seconds * 1000 == MAX_AGE_MS
    assert WALL.market.max_future_skew_seconds * 1000 == MAX_SKEW_MS
    assert WALL.market.max_price_move_percent == 20
    assert WALL.market.price_move_window_seconds * 1000 == WINDOW_MS
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


def test_the_reasons_listed_here_are_the_wire_s() -> None:
    # BACKLOG is the engine's, not the market checks': a tick not taken at all for now.
    assert REASONS | {BACKLOG} == TICK_REFUSALS


def test_one_tick_cannot_push_the_sequence_to_its_end() -> None:
    # seq 2^64-1 after seq 10 would make every later tick a duplicate, for good.
    remembered = memory()
    gap = REPLAY.market.max_seq_gap
    for config in (WALL, REPLAY):
        assert refusal_reason(tick(seq=2**64 - 1), remembered, config, NOW_MS) == SEQ_GAP
        assert refusal_reason(tick(seq=10 + gap + 1), remembered, config, NOW_MS) == SEQ_GAP
        assert refusal_reason(tick(seq=10 + gap), remembered, config, NOW_MS) is None
        assert refusal_reason(tick(seq=11), remembered, config, NOW_MS) is None
        # The first tick ever has nothing to be a gap from.
        assert refusal_reason(tick(seq=2**64 - 1), MarketMemory(), config, NOW_MS) is None


def test_one_replayed_tick_cannot_push_market_time_far_ahead() -> None:
    remembered = memory()
    last = NOW_MS - 1000
    gap_ms = REPLAY.market.max_timestamp_gap_seconds * 1000
    assert gap_ms == 7 * 24 * 3_600_000, "a week by default: hourly candles pass"
    year_3000 = 32_503_680_000_000
    assert refusal_reason(tick(timestamp_ms=year_3000), remembered, REPLAY, NOW_MS) == TIME_GAP
    assert refusal_reason(tick(timestamp_ms=last + gap_ms + 1), remembered, REPLAY, 0) == TIME_GAP
    assert refusal_reason(tick(timestamp_ms=last + gap_ms), remembered, REPLAY, 0) is None
    assert refusal_reason(tick(timestamp_ms=last + WINDOW_MS), remembered, REPLAY, 0) is None
    assert refusal_reason(tick(timestamp_ms=year_3000), MarketMemory(), REPLAY, 0) is None
    # On the wall clock the enclave's own clock bounds the future, and a gap would refuse
    # every tick after a downtime longer than it: a fresh tick a month later is accepted.
    month_later = last + 30 * 24 * 3_600_000
    assert refusal_reason(tick(timestamp_ms=year_3000), remembered, WALL, NOW_MS) == FUTURE_TICK
    assert refusal_reason(tick(timestamp_ms=month_later), remembered, WALL, month_later) is None


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


def test_the_price_move_limit_is_measured_from_the_anchor_which_moves_a_window_later() -> None:
    remembered = memory(last_price=100.0)  # the anchor: 100 at NOW_MS - 1 s
    assert remembered.anchors == {PAIR: PriceAnchor(100.0, NOW_MS - 1000)}
    remember(tick(seq=11, price=120.0), remembered, keep=64, window_ms=WINDOW_MS)
    # 120 was accepted a second later: the anchor stays, and 144 is 44 % from it.
    assert remembered.anchors == {PAIR: PriceAnchor(100.0, NOW_MS - 1000)}
    assert refusal_reason(tick(seq=12, price=144.0), remembered, WALL, NOW_MS) == PRICE_JUMP
    assert refusal_reason(tick(seq=12, price=80.0), remembered, WALL, NOW_MS) is None
    # One millisecond short of a window after the anchor, an accepted tick leaves it ...
    just_before = NOW_MS - 1000 + WINDOW_MS - 1
    remember(tick(seq=12, timestamp_ms=just_before, price=119.0), remembered, 64, WINDOW_MS)
    assert remembered.anchors[PAIR] == PriceAnchor(100.0, NOW_MS - 1000)
    # ... a window after it, the accepted tick becomes the anchor.
    at_window = NOW_MS - 1000 + WINDOW_MS
    remember(tick(seq=13, timestamp_ms=at_window, price=120.0), remembered, 64, WINDOW_MS)
    assert remembered.anchors[PAIR] == PriceAnchor(120.0, at_window)
    later = tick(seq=14, timestamp_ms=at_window, price=144.0)
    assert refusal_reason(later, remembered, REPLAY, NOW_MS) is None
    higher = tick(seq=14, timestamp_ms=at_window, price=144.00000000000003)
    assert refusal_reason(higher, remembered, REPLAY, NOW_MS) == PRICE_JUMP
    # The first tick of a pair has nothing to jump from, and becomes its anchor.
    assert refusal_reason(tick(price=1e12), MarketMemory(), WALL, NOW_MS) is None
    fresh = MarketMemory()
    remember(tick(price=1e12), fresh, keep=64, window_ms=WINDOW_MS)
    assert fresh.anchors == {PAIR: PriceAnchor(1e12, NOW_MS)}


def walk(start: float, factor: float, steps: int, *, step_ms: int = 0) -> list[Tick]:
    """A price walk: `steps` ticks after the first, each `factor` times the one before,
    `step_ms` apart (0: all with one timestamp)."""
    return [
        tick(seq=1 + n, timestamp_ms=NOW_MS + n * step_ms, price=start * factor**n)
        for n in range(steps + 1)
    ]


def taken(ticks: list[Tick], config: EnclaveConfig = REPLAY) -> list[Tick]:
    """The ticks accepted in turn."""
    remembered, accepted = MarketMemory(), []
    for item in ticks:
        if refusal_reason(item, remembered, config, NOW_MS) is None:
            remember(item, remembered, keep=64, window_ms=WINDOW_MS)
            accepted.append(item)
    return accepted


def test_a_burst_of_ticks_with_one_timestamp_cannot_walk_the_price() -> None:
    # 100 ticks stamped alike, each 15 % above the one before: the first sets the anchor,
    # the second is 15 % from it, and every later one is more than 20 % from it.
    burst = walk(2000.0, 1.15, 99)
    assert [item.seq for item in taken(burst)] == [1, 2]
    for config in (REPLAY, WALL):
        remembered = MarketMemory()
        refused = []
        for item in burst:
            reason = refusal_reason(item, remembered, config, NOW_MS)
            if reason is None:
                remember(item, remembered, keep=64, window_ms=WINDOW_MS)
            else:
                refused.append((item.seq, reason))
        assert refused == [(seq, PRICE_JUMP) for seq in range(3, 101)]


@pytest.mark.parametrize(("start", "end", "steps"), [(2000.0, 19193.0, 14), (2000.0, 0.0085, 61)])
def test_the_walks_of_issue_11_no_longer_leave_the_limit_of_the_anchor(
    start: float, end: float, steps: int
) -> None:
    # Once 14 steps of under 20 % took ETH from 2,000 to 19,193 USD, and 61 took it to
    # 0.0085, every tick with one timestamp and every one accepted.
    factor = (end / start) ** (1 / steps)
    assert abs(factor - 1) < 0.2
    ticks = walk(start, factor, steps)
    assert ticks[-1].price == pytest.approx(end, rel=1e-9)
    accepted = taken(ticks)
    assert all(0.8 * start <= item.price <= 1.2 * start for item in accepted)
    assert len(accepted) < len(ticks)


def test_hourly_candles_compare_with_the_candle_an_hour_before() -> None:
    # With the window an hour long, each hourly candle is judged against the one before it,
    # as the move check did before it had an anchor: 15 % an hour is accepted throughout.
    hourly = walk(2000.0, 1.15, 20, step_ms=WINDOW_MS)
    assert taken(hourly) == hourly
    remembered = MarketMemory()
    for item in hourly[:-1]:
        remember(item, remembered, keep=64, window_ms=WINDOW_MS)
    assert remembered.anchors[PAIR] == PriceAnchor(hourly[-2].price, hourly[-2].timestamp_ms)
    # A candle 25 % up on the last is refused, and the one after it compares with the
    # same anchor an hour further on.
    jump = tick(seq=100, timestamp_ms=hourly[-1].timestamp_ms, price=hourly[-2].price * 1.25)
    assert refusal_reason(jump, remembered, REPLAY, NOW_MS) == PRICE_JUMP


def test_ticks_within_one_window_stay_within_the_limit_of_its_anchor() -> None:
    # A tick a second, each 1 % up, for just under an hour: only those within 20 % of the
    # first are accepted; an hour on, an accepted tick becomes the anchor, and the walk
    # may go on from there.
    seconds = walk(2000.0, 1.01, 3599, step_ms=1000)
    accepted = taken(seconds)
    assert accepted == seconds[:19]  # 2000 * 1.01**18 = 2392.3
    hour = NOW_MS + WINDOW_MS
    later = [
        tick(seq=5000, timestamp_ms=hour, price=2395.0),
        tick(seq=5001, timestamp_ms=hour, price=2395.0 * 1.2),
        tick(seq=5002, timestamp_ms=hour + 1, price=2395.0 * 1.21),
    ]
    assert taken([*seconds, *later]) == [*seconds[:19], *later[:2]]


def test_the_price_move_limit_follows_the_config() -> None:
    config = parse_config(config_toml(OWNER_HEX, clock="wall", max_price_move_percent="2.5"))
    remembered = memory(last_price=200.0)
    assert refusal_reason(tick(price=205.0), remembered, config, NOW_MS) is None
    assert refusal_reason(tick(price=195.0), remembered, config, NOW_MS) is None
    assert refusal_reason(tick(price=205.00000000000003), remembered, config, NOW_MS) == PRICE_JUMP


def test_remember_keeps_the_last_closes_and_moves_the_anchor_a_window_on() -> None:
    remembered, every_2_ms = MarketMemory(), MarketMemory()
    for seq in range(1, 8):
        accepted = tick(seq=seq, timestamp_ms=seq, price=float(seq))
        remember(accepted, remembered, keep=3, window_ms=WINDOW_MS)
        remember(accepted, every_2_ms, keep=3, window_ms=2)
    assert remembered.last_seq == 7
    assert remembered.last_timestamp_ms == 7
    assert remembered.anchors == {PAIR: PriceAnchor(1.0, 1)}
    assert every_2_ms.anchors == {PAIR: PriceAnchor(7.0, 7)}  # at 1, 3, 5 and 7
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
    anchor: Tick | None = None  # kept here by the rule's own words
    for item in batch:
        reason = refusal_reason(item, remembered, config, now_ms)
        assert reason is None or reason in REASONS
        if reason is None:
            # Within 20 % of the anchor it was judged against (the first has none).
            if anchor is not None:
                assert abs(item.price - anchor.price) <= anchor.price * 0.2 * (1 + 1e-12)
            if anchor is None or item.timestamp_ms - anchor.timestamp_ms >= WINDOW_MS:
                anchor = item
            accepted.append(item)
            remember(item, remembered, keep=8, window_ms=WINDOW_MS)
            assert remembered.anchors[PAIR] == PriceAnchor(anchor.price, anchor.timestamp_ms)
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
    if wall:
        assert all(now_ms - MAX_AGE_MS <= t <= now_ms + MAX_SKEW_MS for t in stamps)
