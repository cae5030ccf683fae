"""Ticks taken as columns end exactly where ticks taken one by one do.

`DecisionEngine.ingest` accepts runs of plainly acceptable ticks together (numpy) and takes
any other tick alone; `DecisionEngine.ingest_tick` is the one-tick path. For any batch,
hostile or not, both must leave the same state (market memory, counters, receipts and
their signatures, signed transactions) and refuse the same ticks for the same reasons.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enclave.config import EnclaveConfig, parse_config
from enclave.decisions import DecisionEngine
from enclave.market import Tick
from enclave.policy import RulePolicy
from enclave.signer import AccountSigner
from enclave.state import EnclaveState
from enclave.tick_columns import TickColumns, clean_prefix
from tests.enclave_harness import HOUR_MS, START_MS, config_toml

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


CONFIGS = {
    "replay": two_pair_config(decision_interval_seconds=7200),
    "wall": two_pair_config(clock="wall", decision_interval_seconds=60),
}
STATE = EnclaveState.fresh()


def engine(config: EnclaveConfig) -> DecisionEngine:
    signer = AccountSigner.from_bytes(STATE.account_secret)
    return DecisionEngine(config, RulePolicy(config.policy.rule), signer, b"\x01" * 32)


def fresh_state() -> EnclaveState:
    return EnclaveState.from_bytes(STATE.to_bytes())


def one_by_one(config: EnclaveConfig, ticks: list[Tick]) -> tuple[EnclaveState, list]:
    state, work = fresh_state(), engine(config)
    refused = []
    for tick in ticks:
        reason = work.ingest_tick(state, tick, None, BALANCES, NOW_MS)
        if reason is not None:
            refused.append((tick.seq, reason))
    return state, refused


def as_columns(config: EnclaveConfig, batches: list[list[Tick]]) -> tuple[EnclaveState, list, int]:
    state, work = fresh_state(), engine(config)
    refused, accepted = [], 0
    for batch in batches:
        count, out = work.ingest(state, TickColumns.runs(batch), None, BALANCES, NOW_MS)
        accepted += count
        refused += out
    return state, refused, accepted


def same_state(left: EnclaveState, right: EnclaveState) -> None:
    # Compare as data: float NaN never equals itself, so through JSON text.
    assert left.model_dump_json() == right.model_dump_json() or (
        left.model_dump() == right.model_dump()
    )


# -- hostile and calm ticks -------------------------------------------------------------------

PAIRS = ["ETH/USDT", "ETH/USDT", "ETH/USDT", "BTC/USDT", "DOGE/USDT"]
SPECIAL_PRICES = [math.nan, math.inf, -1.0, 0.0, 1e16, 120.0, 80.0, 100.0 * 1.2, 100.0 * 0.8]


@st.composite
def tick_lists(draw: st.DrawFn) -> list[Tick]:
    count = draw(st.integers(min_value=0, max_value=120))
    seq, stamp, price = draw(st.integers(0, 3)), NOW_MS - 60_000, 100.0
    ticks = []
    for _ in range(count):
        step = draw(st.sampled_from([1, 1, 1, 1, 1, 2, 0, -1]))
        seq = max(1, seq + step)
        stamp += draw(st.sampled_from([1_000, 1_000, 1_000, 30_000, 0, -5_000, 10_000_000]))
        move = draw(st.sampled_from([1.0, 1.0, 1.001, 0.999, 1.05, 1.2, 0.8, 1.3, 1.2000001]))
        price = price * move
        value = draw(st.sampled_from([price] * 12 + SPECIAL_PRICES))
        volume = draw(st.sampled_from([1.0, 1.0, 0.0, -0.0, -1.0, math.nan, 2e15]))
        ticks.append(Tick(seq, stamp, draw(st.sampled_from(PAIRS)), value, volume))
    return ticks


@pytest.mark.parametrize("clock", sorted(CONFIGS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ticks=tick_lists(), cut=st.integers(min_value=0, max_value=120))
def test_columns_end_where_one_by_one_ends(clock: str, ticks: list[Tick], cut: int) -> None:
    config = CONFIGS[clock]
    expected_state, expected_refused = one_by_one(config, ticks)
    state, refused, accepted = as_columns(config, [ticks[:cut], ticks[cut:]])
    assert refused == expected_refused
    assert accepted == len(ticks) - len(refused)
    same_state(state, expected_state)


def test_a_long_calm_run_is_taken_together_and_decides_on_schedule() -> None:
    config = CONFIGS["replay"]
    ticks = [
        Tick(seq, START_MS + seq * 60_000, "ETH/USDT", 100.0 + (seq % 50) * 0.1, 1.0)
        for seq in range(1, 5_001)
    ]
    expected_state, expected_refused = one_by_one(config, ticks)
    state, refused, accepted = as_columns(config, [ticks])
    assert refused == expected_refused == []
    assert accepted == 5_000 == state.ticks_accepted
    # A decision at the first tick, then every 7,200 s of market time (120 ticks): the last
    # at seq 4,921; 42 decisions, and two approvals before the first swaps.
    assert state.last_decision == expected_state.last_decision == START_MS + 4_921 * 60_000
    assert state.receipt_seq == expected_state.receipt_seq == 42 + 2
    assert state.market.closes["ETH/USDT"] == expected_state.market.closes["ETH/USDT"]
    assert len(state.market.closes["ETH/USDT"]) == 64
    same_state(state, expected_state)


def test_a_move_at_the_limit_is_settled_exactly_not_by_floats() -> None:
    config = CONFIGS["replay"]
    memory_state = fresh_state()
    # 20 % exactly (accepted) and a hair above it (refused): too close for the float test.
    ticks = [
        Tick(1, START_MS, "ETH/USDT", 100.0, 1.0),
        Tick(2, START_MS + 1, "ETH/USDT", 120.0, 1.0),
        Tick(3, START_MS + 2, "ETH/USDT", 120.0 * 1.2000000001, 1.0),
    ]
    [columns] = TickColumns.runs(ticks)
    assert clean_prefix(columns, 0, 3, memory_state.market, config, NOW_MS) == 1
    state, refused, accepted = as_columns(config, [ticks])
    assert accepted == 2
    assert refused == [(3, "price_jump")]
    assert state.market.last_price["ETH/USDT"] == 120.0


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
