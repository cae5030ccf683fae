"""Ticks taken as columns end exactly where ticks taken one by one do.

`DecisionEngine.ingest` accepts runs of plainly acceptable ticks together (numpy) and takes
any other tick alone; `DecisionEngine.ingest_tick` is the one-tick path. For any batch,
hostile or not, both must leave the same state (market memory, counters, receipts and
their signatures, signed transactions) and refuse the same ticks for the same reasons.
"""

from __future__ import annotations

import math
import random
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import enclave.decisions
from enclave.config import EnclaveConfig, parse_config
from enclave.decisions import DecisionEngine
from enclave.market import MarketMemory, refusal_reason, remember
from enclave.policy import Decision, MarketView, RulePolicy
from enclave.refusals import RefusalTally
from enclave.signer import AccountSigner
from enclave.state import EnclaveState
from enclave.tick_columns import clean_prefix
from tests.enclave_harness import HOUR_MS, START_MS, config_toml
from wire.ticks import Tick, TickColumns

OWNER_HEX = "33" * 32
BTC_PAIR = """
[tokens.WBTC]
address = "0x2260FAC5E5542a773Aa44fBCfeDf7C193bc2C599"
decimals = 8

[[pairs]]
symbol = "BTC/USDT"
base = "WBTC"
quote = "USDT"

[market]"""
BALANCES = {"WETH": 5 * 10**18, "USDT": 10_000 * 10**6, "WBTC": 10**8}
NOW_MS = START_MS + 1_000 * HOUR_MS


def two_pair_config(**overrides: object) -> EnclaveConfig:
    text = config_toml(OWNER_HEX, **overrides).replace("\n[market]", BTC_PAIR, 1)
    return parse_config(text)


# Price anchors move every few ticks (every 2 s of market time; on the replay clock, every
# tick of a minute-apart run), so runs taken together cross many anchor moves.
CONFIGS = {
    "replay": two_pair_config(decision_interval_seconds=7200, price_move_window_seconds=2),
    "wall": two_pair_config(
        clock="wall", decision_interval_seconds=60, price_move_window_seconds=2
    ),
}
# Gaps small enough for the lists below to cross: seq may leap 3, replayed time 60 s.
GAP_CONFIGS = {
    f"{clock}-gaps": two_pair_config(
        clock=clock,
        decision_interval_seconds=60,
        price_move_window_seconds=2,
        max_seq_gap=3,
        max_timestamp_gap_seconds=60,
    )
    for clock in ("replay", "wall")
}
STATE = EnclaveState.fresh()
# The vault's TWAPs as a host reports them: near the prices the ticks start at, so that
# decisions are signed as well as refused.
TWAPS = {"ETH/USDT": 100.0, "BTC/USDT": 30_000.0}


def engine(config: EnclaveConfig) -> DecisionEngine:
    signer = AccountSigner.from_bytes(STATE.account_secret)
    work = DecisionEngine(config, RulePolicy(config.policy.rule), signer, b"\x01" * 32)
    work.report_twaps(TWAPS)
    return work


def fresh_state() -> EnclaveState:
    return EnclaveState.from_bytes(STATE.to_bytes())


def one_by_one(config: EnclaveConfig, ticks: list[Tick]) -> tuple[EnclaveState, list]:
    """The ticks through `ingest_tick`, then the one refusal receipt of an Ingest."""
    state, work = fresh_state(), engine(config)
    refused, tally = [], RefusalTally()
    for tick in ticks:
        reason = work.ingest_tick(state, tick, None, BALANCES, NOW_MS)
        if reason is not None:
            refused.append((tick.seq, reason))
            tally.add(tick, reason)
    work.summarise(state, tally)
    return state, refused


def as_columns(config: EnclaveConfig, batches: list[list[Tick]]) -> tuple[EnclaveState, list, int]:
    """The batches, as columns, in one Ingest."""
    state, work = fresh_state(), engine(config)
    columns = [part for batch in batches for part in TickColumns.runs(batch)]
    accepted, refused = work.ingest(state, columns, None, BALANCES, NOW_MS)
    return state, refused, accepted


SECRETS = {"account_secret", "box_secret"}


def same_state(left: EnclaveState, right: EnclaveState) -> None:
    # First as data without the keys, so a failure shows what differs and never a key; then
    # the keys, through a bool so pytest prints no bytes; then the sealed bytes themselves,
    # which also holds dict order and float text to the one-by-one path.
    assert left.model_dump(mode="json", exclude=SECRETS) == right.model_dump(
        mode="json", exclude=SECRETS
    )
    same_keys = all(getattr(left, name) == getattr(right, name) for name in sorted(SECRETS))
    assert same_keys, "secrets differ"
    same_bytes = left.to_bytes() == right.to_bytes()
    assert same_bytes, "the sealed bytes differ (dict order or float text)"


# -- hostile and calm ticks -------------------------------------------------------------------

PAIRS = ["ETH/USDT", "ETH/USDT", "ETH/USDT", "BTC/USDT", "DOGE/USDT"]
SPECIAL_PRICES = [math.nan, math.inf, -1.0, 0.0, 1e16, 120.0, 80.0, 100.0 * 1.2, 100.0 * 0.8]
MAX_AGE_MS = 120_000  # max_tick_age_seconds default, for the wall clock


@st.composite
def tick_lists(draw: st.DrawFn) -> list[Tick]:
    """Ticks of three pairs (one unknown), from calm to hostile. Some lists start at the
    wall clock's age limit, so steps forward and back cross it (stale ticks)."""
    count = draw(st.integers(min_value=0, max_value=120))
    # Percent of hostile choices for this list: low ones give long clean runs.
    bad = draw(st.sampled_from([1, 5, 20, 50]))

    def hostile() -> bool:
        return draw(st.integers(0, 99)) < bad

    seq, price = draw(st.integers(0, 3)), 100.0
    stamp = draw(
        st.sampled_from([NOW_MS - 60_000, NOW_MS - MAX_AGE_MS - 2_000, NOW_MS - MAX_AGE_MS])
    )
    pair = "ETH/USDT"
    ticks = []
    for _ in range(count):
        if hostile():
            pair = draw(st.sampled_from(PAIRS))
        seq = max(1, seq + (draw(st.sampled_from([2, 0, -1, 4, 9])) if hostile() else 1))
        stamp += draw(
            st.sampled_from([30_000, 0, -5_000, -1_000, 10_000_000, 61_000])
            if hostile()
            else st.sampled_from([500, 500, 1_000, 0])
        )
        # One tick that would poison the future (the end of seq, the year 3000), then on.
        if hostile() and draw(st.booleans()):
            far = draw(st.sampled_from([(2**64 - 1, stamp), (seq, 32_503_680_000_000)]))
            ticks.append(Tick(*far, pair, price, 1.0))
            continue
        move = draw(
            st.sampled_from([1.05, 1.2, 0.8, 1.3, 1.2000001])
            if hostile()
            else st.sampled_from([1.0, 1.001, 0.999])
        )
        price = price * move
        value = draw(st.sampled_from(SPECIAL_PRICES)) if hostile() else price
        volume = draw(st.sampled_from([0.0, -0.0, -1.0, math.nan, 2e15])) if hostile() else 1.0
        ticks.append(Tick(seq, stamp, pair, value, volume))
    return ticks


@pytest.mark.parametrize("clock", sorted(CONFIGS | GAP_CONFIGS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ticks=tick_lists(), cut=st.integers(min_value=0, max_value=120))
def test_columns_end_where_one_by_one_ends(clock: str, ticks: list[Tick], cut: int) -> None:
    config = (CONFIGS | GAP_CONFIGS)[clock]
    expected_state, expected_refused = one_by_one(config, ticks)
    state, refused, accepted = as_columns(config, [ticks[:cut], ticks[cut:]])
    assert refused == expected_refused
    assert accepted == len(ticks) - len(refused)
    same_state(state, expected_state)


def calm_ticks(count: int) -> list[Tick]:
    return [
        Tick(seq, START_MS + seq * 60_000, "ETH/USDT", 100.0 + (seq % 50) * 0.1, 1.0)
        for seq in range(1, count + 1)
    ]


def test_a_long_calm_run_is_taken_together_and_decides_on_schedule(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = CONFIGS["replay"]
    ticks = calm_ticks(5_000)
    expected_state, expected_refused = one_by_one(config, ticks)
    [columns] = TickColumns.runs(ticks)
    first = enclave.decisions._FIRST_WINDOW
    assert clean_prefix(columns, 0, first, fresh_state().market, config, NOW_MS) == first
    # The run never takes the one-tick path: every tick goes through the numpy checks.
    alone = []
    one_tick = DecisionEngine.ingest_tick

    def counted(self: DecisionEngine, state: EnclaveState, tick: Tick, *rest: object) -> object:
        alone.append(tick.seq)
        return one_tick(self, state, tick, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(DecisionEngine, "ingest_tick", counted)
    state, refused, accepted = as_columns(config, [ticks])
    assert alone == []
    assert refused == expected_refused == []
    assert accepted == 5_000 == state.ticks_accepted
    # A decision at the first tick, then every 7,200 s of market time (120 ticks): the last
    # at seq 4,921; 42 decisions, one receipt each, and some of them signed swaps.
    assert state.last_decision == expected_state.last_decision == START_MS + 4_921 * 60_000
    assert state.receipt_seq == expected_state.receipt_seq == 42
    assert state.pending_transactions == expected_state.pending_transactions != []
    # Every tick came a window after the one before: each became the anchor in turn.
    assert state.market.anchors["ETH/USDT"] == (ticks[-1].price, ticks[-1].timestamp_ms)
    assert state.market.closes["ETH/USDT"] == expected_state.market.closes["ETH/USDT"]
    assert len(state.market.closes["ETH/USDT"]) == 64
    same_state(state, expected_state)


def test_a_move_at_the_limit_is_settled_exactly_not_by_floats() -> None:
    config = CONFIGS["replay"]
    memory_state = fresh_state()
    # From the anchor, 20 % exactly (accepted) and a hair above it (refused): too close for
    # the float test. The ticks come within the window, so the first stays the anchor.
    ticks = [
        Tick(1, START_MS, "ETH/USDT", 100.0, 1.0),
        Tick(2, START_MS + 1, "ETH/USDT", 120.0, 1.0),
        Tick(3, START_MS + 2, "ETH/USDT", 100.0 * 1.2000000001, 1.0),
    ]
    [columns] = TickColumns.runs(ticks)
    assert clean_prefix(columns, 0, 3, memory_state.market, config, NOW_MS) == 1
    state, refused, accepted = as_columns(config, [ticks])
    assert accepted == 2
    assert refused == [(3, "price_jump")]
    assert state.market.closes["ETH/USDT"][-1] == 120.0
    assert state.market.anchors["ETH/USDT"] == (100.0, START_MS)
    # Floats round this fall to exactly 20 % (which would be accepted); the exact move is
    # above 20 %, so it must be refused on both paths.
    last, price = 956034.2718892933, 764827.4175114346
    assert abs(price - last) / last * 100 == 20.0
    assert Decimal(abs(price - last)) / Decimal(last) * 100 > 20
    ticks = [
        Tick(1, START_MS, "ETH/USDT", last, 1.0),
        Tick(2, START_MS + 1, "ETH/USDT", price, 1.0),
        Tick(3, START_MS + 2, "ETH/USDT", last, 1.0),
    ]
    [columns] = TickColumns.runs(ticks)
    assert clean_prefix(columns, 0, 3, fresh_state().market, config, NOW_MS) == 1
    expected_state, expected_refused = one_by_one(config, ticks)
    state, refused, accepted = as_columns(config, [ticks])
    assert refused == expected_refused == [(2, "price_jump")]
    assert accepted == 2
    assert state.market.closes["ETH/USDT"][-1] == last
    same_state(state, expected_state)


@pytest.mark.parametrize("clock", sorted(CONFIGS))
def test_a_burst_with_one_timestamp_cannot_walk_the_price_on_either_path(clock: str) -> None:
    # 100 ticks stamped alike, each 15 % above the one before: the first sets the anchor,
    # the second is within 20 % of it, every later one beyond.
    config = CONFIGS[clock]
    stamp = NOW_MS - 1_000
    burst = [Tick(n, stamp, "ETH/USDT", 2000.0 * 1.15 ** (n - 1), 1.0) for n in range(1, 101)]
    expected_state, expected_refused = one_by_one(config, burst)
    state, refused, accepted = as_columns(config, [burst[:50], burst[50:]])
    assert refused == expected_refused == [(seq, "price_jump") for seq in range(3, 101)]
    assert accepted == 2
    assert state.market.anchors["ETH/USDT"] == (2000.0, stamp)
    same_state(state, expected_state)
    # The same walk a window apart per tick moves the anchor each time, and is accepted.
    window_ms = config.market.price_move_window_seconds * 1000
    spread = [
        Tick(tick.seq, NOW_MS - 100_000 + tick.seq * window_ms, tick.pair, tick.price, 1.0)
        for tick in burst[:40]
    ]
    expected_state, expected_refused = one_by_one(config, spread)
    state, refused, accepted = as_columns(config, [spread])
    assert refused == expected_refused == []
    same_state(state, expected_state)


def test_ticks_split_into_batches_by_runs_of_a_pair() -> None:
    pairs = ["B", "A", "A", "X", "A"]
    batches = TickColumns.runs([Tick(i + 1, 0, pair, 1.0, 1.0) for i, pair in enumerate(pairs)])
    assert [(b.pair, b.seq.tolist()) for b in batches] == [
        ("B", [1]),
        ("A", [2, 3]),
        ("X", [4]),
        ("A", [5]),
    ]
    assert batches[1].tick(1) == Tick(3, 0, "A", 1.0, 1.0)
    assert batches[1].seq.dtype == np.uint64
    assert clean_prefix(batches[2], 0, 1, fresh_state().market, CONFIGS["replay"], NOW_MS) == 0


@pytest.mark.parametrize("clock", sorted(CONFIGS))
def test_a_tick_before_1970_is_refused_alone_on_both_paths(clock: str) -> None:
    # On the replay clock nothing else refuses it, and a receipt cannot carry its time.
    config = CONFIGS[clock]
    start = NOW_MS - 10_000
    ticks = [
        Tick(1, -1_000, "ETH/USDT", 100.0, 1.0),
        Tick(2, start, "ETH/USDT", 100.0, 1.0),
        Tick(3, start + 1, "ETH/USDT", 101.0, 1.0),
        Tick(4, -1, "ETH/USDT", 101.0, 1.0),
        Tick(5, start + 2, "ETH/USDT", 102.0, 1.0),
    ]
    [columns] = TickColumns.runs(ticks)
    assert clean_prefix(columns, 0, 5, fresh_state().market, config, NOW_MS) == 0
    assert clean_prefix(columns, 1, 5, fresh_state().market, config, NOW_MS) == 2
    expected_state, expected_refused = one_by_one(config, ticks)
    state, refused, accepted = as_columns(config, [ticks])
    assert refused == expected_refused == [(1, "invalid_number"), (4, "invalid_number")]
    assert accepted == 3 == state.ticks_accepted
    assert state.market.last_seq == 5
    same_state(state, expected_state)


def test_every_decision_of_a_batch_reports_its_time(monkeypatch: pytest.MonkeyPatch) -> None:
    config = CONFIGS["replay"]
    state, work = fresh_state(), engine(config)
    asked = []
    ask = work._ask_policy

    def counted(view: MarketView) -> Decision:
        asked.append(view.timestamp)
        return ask(view)

    monkeypatch.setattr(work, "_ask_policy", counted)
    ticks = calm_ticks(600)
    # Every 7,200 s of market time at one tick a minute: seq 1, 121, 241 then 361, 481.
    for batch, decisions in [(ticks[:300], 3), (ticks[300:], 2)]:
        asked.clear()
        work.ingest(state, TickColumns.runs(batch), None, BALANCES, NOW_MS)
        assert len(asked) == decisions
        assert len(work.decision_seconds) == len(asked)
        assert all(seconds >= 0 for seconds in work.decision_seconds)


def long_hostile_ticks(config: EnclaveConfig, count: int = 3_000) -> list[Tick]:
    """Mostly calm ticks of one pair with a hostile or near-limit tick now and then, and a
    few stretches where most ticks are hostile."""
    clock = config.market.clock
    chance = random.Random(f"columns {clock}")
    # The walk follows the last accepted price, so one refused jump does not refuse the rest.
    memory = MarketMemory()
    window_ms = config.market.price_move_window_seconds * 1000
    # On the wall clock the whole list must fit the age limit, so ticks come 30 ms apart.
    step = 30 if clock == "wall" else 1_000
    seq, stamp, price, hostile_left = 0, NOW_MS - 100_000, 100.0, 0
    ticks = []
    for _ in range(count):
        seq, stamp = seq + 1, stamp + step
        price *= 1 + chance.uniform(-0.002, 0.002)
        tick = Tick(seq, stamp, "ETH/USDT", price, 1.0)
        if hostile_left == 0 and chance.random() < 0.002:
            hostile_left = chance.randint(20, 300)
        hostile_left = max(0, hostile_left - 1)
        if chance.random() < (0.8 if hostile_left else 0.03):
            anchor = memory.anchors.get("ETH/USDT")
            last = price if anchor is None else anchor.price
            hostile = [
                Tick(seq, stamp, "ETH/USDT", math.nan, 1.0),
                Tick(seq, stamp, "ETH/USDT", price, -1.0),
                Tick(seq - 1, stamp, "ETH/USDT", price, 1.0),
                Tick(seq, stamp - 5 * step, "ETH/USDT", price, 1.0),
                Tick(seq, -stamp, "ETH/USDT", price, 1.0),
                Tick(seq, stamp, "ETH/USDT", price * 1.5, 1.0),
                Tick(seq, stamp, "ETH/USDT", price * 1.2, 1.0),
                Tick(seq, stamp, "ETH/USDT", price * 0.8, 1.0),
                # Within a hair of the limit from the anchor: settled exactly.
                Tick(seq, stamp, "ETH/USDT", last * 1.2, 1.0),
                Tick(seq, stamp, "ETH/USDT", last * 0.8, 1.0),
                Tick(seq, stamp, "ETH/USDT", math.nextafter(last * 1.2, math.inf), 1.0),
                Tick(seq, stamp, "ETH/USDT", math.nextafter(last * 0.8, 0.0), 1.0),
            ]
            # Another pair starts a new batch; in a hostile stretch the batch goes on, so
            # the count of ticks taken alone can grow to its cap.
            if not hostile_left:
                hostile += [
                    Tick(seq, stamp, "DOGE/USDT", price, 1.0),
                    Tick(seq, stamp, "BTC/USDT", 30_000.0, 1.0),
                ]
            tick = chance.choice(hostile)
        if refusal_reason(tick, memory, config, NOW_MS) is None:
            remember(tick, memory, keep=1, window_ms=window_ms)
        price = memory.closes.get("ETH/USDT", [price])[-1]
        ticks.append(tick)
    return ticks


@pytest.mark.parametrize("windows", ["default", "small"])
@pytest.mark.parametrize("clock", sorted(CONFIGS))
def test_a_long_batch_with_hostile_ticks_ends_where_one_by_one_ends(
    clock: str, windows: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small windows make 3,000 ticks reach every branch: growth up to the largest window,
    # runs cut short, and the count of ticks taken alone doubling up to its cap.
    if windows == "small":
        for name, value in [
            ("_FIRST_WINDOW", 8),
            ("_RETRY_WINDOW", 2),
            ("_MAX_WINDOW", 32),
            ("_MAX_ALONE", 4),
        ]:
            monkeypatch.setattr(enclave.decisions, name, value)
    # Decisions every 33 or so ticks, so they fall inside runs taken together; the anchor
    # moves every 34 ticks on the wall clock (30 ms apart), every 7 on the replay clock.
    config = two_pair_config(
        clock=clock,
        decision_interval_seconds=1 if clock == "wall" else 33,
        price_move_window_seconds=1 if clock == "wall" else 7,
    )
    ticks = long_hostile_ticks(config)
    expected_state, expected_refused = one_by_one(config, ticks)
    state, refused, accepted = as_columns(config, [ticks[:1_000], ticks[1_000:]])
    assert refused == expected_refused
    assert 100 < len(refused) < len(ticks) // 2
    assert accepted == len(ticks) - len(refused) == state.ticks_accepted
    verdicts = [str(p.receipt["verdict"]) for p in state.pending_receipts]
    # Many decisions, and one receipt for all the refused ticks of the Ingest, last.
    assert len(verdicts) == state.receipt_seq > 80
    assert [v for v in verdicts if v.startswith("ticks_refused:")] == [verdicts[-1]]
    same_state(state, expected_state)


@pytest.mark.parametrize("clock", ["replay", "wall"])
def test_a_leap_ends_a_clean_run_and_the_ticks_after_it_go_on(clock: str) -> None:
    # A leap in seq (both clocks) or in replayed time is refused on both paths, within a
    # run and at its start; the honest tick after it is accepted.
    config = GAP_CONFIGS[f"{clock}-gaps"]
    start = NOW_MS - 100_000
    ticks = [
        Tick(1, start, "ETH/USDT", 100.0, 1.0),
        Tick(2, start + 1_000, "ETH/USDT", 100.0, 1.0),
        Tick(2**64 - 1, start + 2_000, "ETH/USDT", 100.0, 1.0),
        Tick(6, start + 2_000, "ETH/USDT", 100.0, 1.0),
        Tick(5, start + 2_000, "ETH/USDT", 100.0, 1.0),
        Tick(6, start + 63_000, "ETH/USDT", 100.0, 1.0),
        Tick(7, start + 3_000, "ETH/USDT", 100.0, 1.0),
    ]
    [columns] = TickColumns.runs(ticks)
    assert clean_prefix(columns, 0, 7, fresh_state().market, config, NOW_MS) == 2
    expected_state, expected_refused = one_by_one(config, ticks)
    state, refused, accepted = as_columns(config, [ticks[:1], ticks[1:]])
    # On the wall clock a minute later is no leap, and the last tick then goes back.
    last = [(6, "time_gap")] if clock == "replay" else [(7, "timestamp_backwards")]
    assert refused == expected_refused == [(2**64 - 1, "seq_gap"), (6, "seq_gap"), *last]
    assert accepted == 4 == state.ticks_accepted
    assert state.market.last_seq == (7 if clock == "replay" else 6)
    same_state(state, expected_state)
