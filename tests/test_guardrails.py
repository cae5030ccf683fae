"""The guardrail matrix: for every limit, a transaction just inside and one just outside,
judged by `enclave.guardrails.judge` on real calldata, with the refusal reason and the
numbers in its detail checked exactly."""

from __future__ import annotations

import math
from dataclasses import replace
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from eth_utils import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from enclave.config import EnclaveConfig, parse_config
from enclave.decisions import DecisionEngine
from enclave.guardrails import (
    DAY_SECONDS,
    GuardrailContext,
    GuardrailVerdict,
    ProposedTransaction,
    SpendEntry,
    judge,
    notional_spent,
)
from enclave.policy import Decision, RulePolicy
from enclave.signer import AccountSigner
from enclave.transactions import (
    SWAP_SELECTOR,
    SwapPlan,
    approve_calldata,
    decode_call,
    swap_calldata,
)
from tests.enclave_harness import CHAIN_ID, ROUTER, USDT, WETH, config_toml

OWNER_HEX = "11" * 32
MIN_GAP = 60
CONFIG = parse_config(config_toml(OWNER_HEX, min_seconds_between_trades=MIN_GAP))
PAIR = CONFIG.pairs[0]
AGENT = to_checksum_address("0x" + "ab" * 20)
STRANGER = to_checksum_address("0x" + "5e" * 20)
OTHER_TOKEN = to_checksum_address("0x" + "70" * 20)
NOW = 1_700_000_000
PRICE = Decimal(2000)
FEE_CAP = 100 * 10**9  # max_fee_per_gas_gwei = 100 in the harness config
LIMIT = Decimal(1000)  # max_notional_per_trade_usd
DAY_LIMIT = Decimal(5000)  # max_notional_per_day_usd
SLIPPAGE = 100  # max_slippage_bps
WEI = 10**18
USDT_UNIT = 10**6

SELL = (WETH, USDT)
BUY = (USDT, WETH)
# At PRICE, 0.5 WETH and 1000 USDT are exactly the per-trade limit.
SELL_AT_LIMIT = WEI // 2
BUY_AT_LIMIT = 1000 * USDT_UNIT
# The quote less 100 bps: 990 USDT for 0.5 WETH, 0.495 WETH for 1000 USDT.
SELL_FLOOR = 990 * USDT_UNIT
BUY_FLOOR = 495 * 10**15

CALL_NOT_ALLOWED = (
    "only swapExactTokensForTokens through the router, between allowed tokens, "
    "paying the agent itself, is allowed"
)
APPROVE_NOT_ALLOWED = "approve is allowed only on allowed tokens, to the router"


def exact_floor_units(amount_in: int, path: tuple[str, ...], price: Decimal) -> int:
    """The smallest min_out (token units) at or above the quote less the slippage limit."""
    keep = 1 - Fraction(SLIPPAGE, 10_000)
    if path[0] == WETH:  # selling WETH for USDT
        expected = Fraction(amount_in, WEI) * Fraction(price)
        return math.ceil(expected * keep * USDT_UNIT)
    expected = Fraction(amount_in, USDT_UNIT) / Fraction(price)
    return math.ceil(expected * keep * WEI)


def exact_notional(amount_in: int, path: tuple[str, ...], price: Decimal) -> Fraction:
    if path[0] == WETH:
        return Fraction(amount_in, WEI) * Fraction(price)
    return Fraction(amount_in, USDT_UNIT)


def swap(
    amount_in: int,
    min_out: int | None = None,
    *,
    path: tuple[str, ...] = SELL,
    recipient: str = AGENT,
    price: Decimal = PRICE,
    **fields: Any,
) -> ProposedTransaction:
    """A real swapExactTokensForTokens transaction; min_out defaults to the exact floor."""
    if min_out is None:
        min_out = exact_floor_units(amount_in, path, price)
    plan = SwapPlan(path[0], path[-1], amount_in, min_out, 0)
    data = swap_calldata(plan, path, recipient, NOW + 1800)  # type: ignore[arg-type]
    tx = ProposedTransaction(
        chain_id=CHAIN_ID, to=ROUTER, value=0, data=data, max_fee_per_gas=FEE_CAP
    )
    return replace(tx, **fields)


def approve(token: str, spender: str = ROUTER, **fields: Any) -> ProposedTransaction:
    tx = ProposedTransaction(
        chain_id=CHAIN_ID,
        to=token,
        value=0,
        data=approve_calldata(spender),
        max_fee_per_gas=FEE_CAP,
    )
    return replace(tx, **fields)


def context(**fields: Any) -> GuardrailContext:
    base = GuardrailContext(
        address=AGENT,
        pair=PAIR,
        price=PRICE,
        now=NOW,
        paused=False,
        last_trade=None,
        spent=[],
        max_slippage_bps_requested=SLIPPAGE,
    )
    return replace(base, **fields)


def allowed(verdict: GuardrailVerdict) -> None:
    assert verdict.allowed, verdict
    assert verdict.reason is None


def refused(verdict: GuardrailVerdict, reason: str, detail: str) -> None:
    assert not verdict.allowed
    assert verdict.reason == reason
    assert verdict.detail == detail
    assert verdict.notional_usd == 0


def test_the_fixture_is_what_the_matrix_assumes() -> None:
    rails = CONFIG.guardrails
    assert rails.allowed_chain_ids == [CHAIN_ID]
    assert rails.max_notional_per_trade_usd == LIMIT
    assert rails.max_notional_per_day_usd == DAY_LIMIT
    assert rails.max_slippage_bps == SLIPPAGE
    assert int(rails.max_fee_per_gas_gwei * 10**9) == FEE_CAP
    assert rails.min_seconds_between_trades == MIN_GAP
    assert (CONFIG.tokens[PAIR.base].address, CONFIG.tokens[PAIR.quote].address) == SELL
    assert exact_floor_units(SELL_AT_LIMIT, SELL, PRICE) == SELL_FLOOR
    assert exact_floor_units(BUY_AT_LIMIT, BUY, PRICE) == BUY_FLOOR


# -- paused, chain, fees ---------------------------------------------------------------------


def test_paused_refuses_swaps_and_approvals_and_unpaused_allows_them() -> None:
    allowed(judge(swap(SELL_AT_LIMIT), context(paused=False), CONFIG))
    for tx in (swap(SELL_AT_LIMIT), swap(1), approve(WETH)):
        refused(judge(tx, context(paused=True), CONFIG), "paused", "the owner paused the agent")


def test_chain_id_outside_the_allowlist_is_refused() -> None:
    allowed(judge(swap(SELL_AT_LIMIT, chain_id=CHAIN_ID), context(), CONFIG))
    for chain_id in (1, CHAIN_ID + 1, CHAIN_ID - 1):
        refused(
            judge(swap(SELL_AT_LIMIT, chain_id=chain_id), context(), CONFIG),
            "chain_id",
            f"chain {chain_id} is not in [{CHAIN_ID}]",
        )


def test_max_fee_per_gas_equal_to_the_cap_is_allowed_one_wei_more_is_refused() -> None:
    allowed(judge(swap(SELL_AT_LIMIT, max_fee_per_gas=FEE_CAP), context(), CONFIG))
    allowed(judge(approve(USDT, max_fee_per_gas=FEE_CAP), context(), CONFIG))
    for tx in (
        swap(SELL_AT_LIMIT, max_fee_per_gas=FEE_CAP + 1),
        approve(USDT, max_fee_per_gas=FEE_CAP + 1),
    ):
        refused(
            judge(tx, context(), CONFIG),
            "max_fee_per_gas",
            "max fee per gas 100000000001 wei exceeds 100000000000 wei",
        )


def test_a_fractional_gwei_cap_is_exact_in_wei() -> None:
    config = parse_config(config_toml(OWNER_HEX, max_fee_per_gas_gwei="1.5"))
    allowed(judge(swap(SELL_AT_LIMIT, max_fee_per_gas=1_500_000_000), context(), config))
    refused(
        judge(swap(SELL_AT_LIMIT, max_fee_per_gas=1_500_000_001), context(), config),
        "max_fee_per_gas",
        "max fee per gas 1500000001 wei exceeds 1500000000 wei",
    )


# -- call_not_allowed ------------------------------------------------------------------------


def test_the_well_formed_calls_are_allowed() -> None:
    """The inside cases of call_not_allowed: both swap directions and both approvals."""
    allowed(judge(swap(SELL_AT_LIMIT, path=SELL), context(), CONFIG))
    allowed(judge(swap(BUY_AT_LIMIT, path=BUY), context(), CONFIG))
    for token, symbol in ((WETH, "WETH"), (USDT, "USDT")):
        verdict = judge(approve(token), context(), CONFIG)
        allowed(verdict)
        assert verdict.detail == f"approve {symbol} to the router"


def _truncated() -> bytes:
    return swap(SELL_AT_LIMIT).data[:-32]


@pytest.mark.parametrize(
    ("case", "tx"),
    [
        ("swap sent to a token, not the router", swap(SELL_AT_LIMIT, to=WETH)),
        ("swap sent to an unknown contract", swap(SELL_AT_LIMIT, to=STRANGER)),
        (
            "wrong selector",
            swap(SELL_AT_LIMIT, data=b"\x38\xed\x17\x39"[::-1] + swap(SELL_AT_LIMIT).data[4:]),
        ),
        ("recipient is not the agent", swap(SELL_AT_LIMIT, recipient=STRANGER)),
        ("recipient is the router", swap(SELL_AT_LIMIT, recipient=ROUTER)),
        ("token not allowed in the path (in)", swap(1000, path=(OTHER_TOKEN, USDT))),
        ("token not allowed in the path (out)", swap(1000, path=(WETH, OTHER_TOKEN))),
        ("value is not zero", swap(SELL_AT_LIMIT, value=1)),
        ("malformed calldata: truncated", swap(SELL_AT_LIMIT, data=_truncated())),
        ("malformed calldata: selector only", swap(SELL_AT_LIMIT, data=SWAP_SELECTOR)),
        ("malformed calldata: empty", swap(SELL_AT_LIMIT, data=b"")),
        ("three-token path", swap(1000, path=(WETH, USDT, WETH))),
        ("one-token path", swap(1000, path=(WETH,))),
    ],
)
def test_calls_outside_the_allowlist_are_refused(case: str, tx: ProposedTransaction) -> None:
    refused(judge(tx, context(), CONFIG), "call_not_allowed", CALL_NOT_ALLOWED)


def test_the_selector_used_for_the_wrong_selector_case_is_really_wrong() -> None:
    assert SWAP_SELECTOR == b"\x38\xed\x17\x39"
    assert decode_call(b"\x39\x17\xed\x38" + swap(SELL_AT_LIMIT).data[4:]) is None


def test_a_path_of_allowed_tokens_that_is_not_the_pair_is_refused() -> None:
    refused(
        judge(swap(1000, 0, path=(WETH, WETH)), context(), CONFIG),
        "call_not_allowed",
        "the swap path is not the pair ETH/USDT",
    )


def test_a_token_left_out_of_allowed_tokens_cannot_be_swapped_or_approved() -> None:
    weth_only = parse_config(config_toml(OWNER_HEX, allowed_tokens=["WETH"]))
    refused(judge(swap(SELL_AT_LIMIT), context(), weth_only), "call_not_allowed", CALL_NOT_ALLOWED)
    refused(judge(approve(USDT), context(), weth_only), "call_not_allowed", APPROVE_NOT_ALLOWED)
    allowed(judge(approve(WETH), context(), weth_only))


@pytest.mark.parametrize(
    ("case", "tx"),
    [
        ("approve to a spender other than the router", approve(WETH, spender=STRANGER)),
        ("approve to the agent itself", approve(USDT, spender=AGENT)),
        ("approve on a token not allowed", approve(OTHER_TOKEN)),
        ("approve sent to the router", approve(ROUTER)),
        ("approve with value", approve(WETH, value=1)),
    ],
)
def test_approvals_outside_the_allowlist_are_refused(case: str, tx: ProposedTransaction) -> None:
    refused(judge(tx, context(), CONFIG), "call_not_allowed", APPROVE_NOT_ALLOWED)


# -- max_notional_per_trade ------------------------------------------------------------------


def test_sell_exactly_at_the_per_trade_limit_is_allowed_one_wei_more_is_refused() -> None:
    verdict = judge(swap(SELL_AT_LIMIT, path=SELL), context(), CONFIG)
    allowed(verdict)
    assert verdict.notional_usd == LIMIT
    assert verdict.detail == "within every limit (1000.00 USD)"
    refused(
        judge(swap(SELL_AT_LIMIT + 1, path=SELL), context(), CONFIG),
        "max_notional_per_trade",
        "notional 1000.00 USD exceeds 1000 USD",
    )


def test_sell_is_valued_at_the_accepted_price() -> None:
    # 0.5 WETH is at the limit at 2000 and over it at 2000.000001.
    refused(
        judge(
            swap(SELL_AT_LIMIT, path=SELL, price=Decimal("2000.000001")),
            context(price=Decimal("2000.000001")),
            CONFIG,
        ),
        "max_notional_per_trade",
        "notional 1000.00 USD exceeds 1000 USD",
    )
    # 0.6 WETH at 1500 is 900 USD: inside.
    verdict = judge(
        swap(6 * WEI // 10, path=SELL, price=Decimal(1500)), context(price=Decimal(1500)), CONFIG
    )
    allowed(verdict)
    assert verdict.notional_usd == Decimal(900)
    # 1 WETH at 1500 is 1500 USD.
    refused(
        judge(swap(WEI, path=SELL, price=Decimal(1500)), context(price=Decimal(1500)), CONFIG),
        "max_notional_per_trade",
        "notional 1500.00 USD exceeds 1000 USD",
    )


def test_buy_exactly_at_the_per_trade_limit_is_allowed_one_micro_usdt_more_is_refused() -> None:
    verdict = judge(swap(BUY_AT_LIMIT, path=BUY), context(), CONFIG)
    allowed(verdict)
    assert verdict.notional_usd == LIMIT
    refused(
        judge(swap(BUY_AT_LIMIT + 1, path=BUY), context(), CONFIG),
        "max_notional_per_trade",
        "notional 1000.00 USD exceeds 1000 USD",
    )


def test_buy_is_valued_by_the_quote_spent_whatever_the_price() -> None:
    for price in (Decimal("0.01"), Decimal(1), Decimal(10**9)):
        verdict = judge(swap(BUY_AT_LIMIT, path=BUY, price=price), context(price=price), CONFIG)
        allowed(verdict)
        assert verdict.notional_usd == LIMIT
    refused(
        judge(swap(1250 * USDT_UNIT, path=BUY), context(), CONFIG),
        "max_notional_per_trade",
        "notional 1250.00 USD exceeds 1000 USD",
    )


def test_sell_one_unit_above_the_limit_is_refused_even_for_a_cheap_token() -> None:
    price = Decimal(repr(1e-07))  # a base token worth 1e-7 USD, 18 decimals
    at_limit = 10**28  # 1e10 tokens = exactly 1000 USD
    allowed(judge(swap(at_limit, price=price), context(price=price), CONFIG))
    assert exact_notional(at_limit + 1, SELL, price) > LIMIT
    verdict = judge(swap(at_limit + 1, price=price), context(price=price), CONFIG)
    assert verdict.reason == "max_notional_per_trade", verdict


# -- max_notional_per_day --------------------------------------------------------------------


def test_the_daily_limit_allows_reaching_it_exactly_and_refuses_one_unit_more() -> None:
    spent = [
        SpendEntry(timestamp=NOW - 3600, notional_usd=Decimal(2500)),
        SpendEntry(timestamp=NOW - 60, notional_usd=Decimal(1500)),
    ]
    verdict = judge(swap(BUY_AT_LIMIT, path=BUY), context(spent=spent), CONFIG)
    allowed(verdict)
    assert verdict.notional_usd == LIMIT
    more = [*spent, SpendEntry(timestamp=NOW, notional_usd=Decimal("0.000001"))]
    refused(
        judge(swap(BUY_AT_LIMIT, path=BUY), context(spent=more), CONFIG),
        "max_notional_per_day",
        "4000.00 USD in the last 24 h plus 1000.00 USD exceeds 5000 USD",
    )
    # 4500 spent: 500 USDT more reaches the limit, one micro-USDT more passes it.
    spent = [SpendEntry(timestamp=NOW - 1, notional_usd=Decimal(4500))]
    allowed(judge(swap(500 * USDT_UNIT, path=BUY), context(spent=spent), CONFIG))
    refused(
        judge(swap(500 * USDT_UNIT + 1, path=BUY), context(spent=spent), CONFIG),
        "max_notional_per_day",
        "4500.00 USD in the last 24 h plus 500.00 USD exceeds 5000 USD",
    )
    # The same for a sell, valued at the accepted price: 0.25 WETH at 2000 is 500 USD.
    allowed(judge(swap(WEI // 4, path=SELL), context(spent=spent), CONFIG))
    refused(
        judge(swap(WEI // 4 + 1, path=SELL), context(spent=spent), CONFIG),
        "max_notional_per_day",
        "4500.00 USD in the last 24 h plus 500.00 USD exceeds 5000 USD",
    )


def test_the_daily_limit_is_a_rolling_24_hours() -> None:
    def spent_at(age: int) -> list[SpendEntry]:
        return [SpendEntry(timestamp=NOW - age, notional_usd=Decimal(4500))]

    # 86_399 s old: still inside the window, 4500 + 600 > 5000.
    refused(
        judge(swap(600 * USDT_UNIT, path=BUY), context(spent=spent_at(DAY_SECONDS - 1)), CONFIG),
        "max_notional_per_day",
        "4500.00 USD in the last 24 h plus 600.00 USD exceeds 5000 USD",
    )
    # 86_400 s old: out of the window.
    verdict = judge(swap(600 * USDT_UNIT, path=BUY), context(spent=spent_at(DAY_SECONDS)), CONFIG)
    allowed(verdict)
    assert verdict.notional_usd == Decimal(600)
    assert DAY_SECONDS == 86_400


def test_notional_spent_counts_only_the_last_24_hours() -> None:
    entries = [
        SpendEntry(timestamp=NOW - 86_400, notional_usd=Decimal(1)),
        SpendEntry(timestamp=NOW - 86_399, notional_usd=Decimal(10)),
        SpendEntry(timestamp=NOW - 1, notional_usd=Decimal(100)),
        SpendEntry(timestamp=NOW, notional_usd=Decimal(1000)),
        SpendEntry(timestamp=NOW - 200_000, notional_usd=Decimal(10_000)),
    ]
    assert notional_spent(entries, NOW) == Decimal(1110)
    assert notional_spent(entries, NOW + 1) == Decimal(1100)
    assert notional_spent([], NOW) == 0


# -- max_slippage ----------------------------------------------------------------------------


def test_a_decision_allowing_more_slippage_than_the_limit_is_refused() -> None:
    allowed(judge(swap(SELL_AT_LIMIT), context(max_slippage_bps_requested=SLIPPAGE), CONFIG))
    allowed(judge(swap(SELL_AT_LIMIT), context(max_slippage_bps_requested=0), CONFIG))
    refused(
        judge(swap(SELL_AT_LIMIT), context(max_slippage_bps_requested=SLIPPAGE + 1), CONFIG),
        "max_slippage",
        "the decision allows 101 bps; the limit is 100 bps",
    )


def test_sell_min_out_at_the_floor_is_allowed_one_unit_below_is_refused() -> None:
    allowed(judge(swap(SELL_AT_LIMIT, SELL_FLOOR, path=SELL), context(), CONFIG))
    refused(
        judge(swap(SELL_AT_LIMIT, SELL_FLOOR - 1, path=SELL), context(), CONFIG),
        "max_slippage",
        "minimum out 989.999999 is below 990.00000000, the quote at the accepted price 2000 "
        "less 100 bps",
    )


def test_buy_min_out_at_the_floor_is_allowed_one_unit_below_is_refused() -> None:
    allowed(judge(swap(BUY_AT_LIMIT, BUY_FLOOR, path=BUY), context(), CONFIG))
    refused(
        judge(swap(BUY_AT_LIMIT, BUY_FLOOR - 1, path=BUY), context(), CONFIG),
        "max_slippage",
        "minimum out 0.494999999999999999 is below 0.49500000, the quote at the accepted "
        "price 2000 less 100 bps",
    )


def test_a_floor_between_two_units_needs_the_unit_above_it() -> None:
    price = Decimal(3)
    amount_in = 100 * USDT_UNIT  # 33.333... WETH expected; less 100 bps, 33 WETH exactly
    floor = exact_floor_units(amount_in, BUY, price)
    assert floor == 33 * WEI
    allowed(judge(swap(amount_in, floor, path=BUY, price=price), context(price=price), CONFIG))
    verdict = judge(swap(amount_in, floor - 1, path=BUY, price=price), context(price=price), CONFIG)
    assert verdict.reason == "max_slippage"
    # 1.1 USDT at 3 is 0.3666... WETH; less 100 bps, 0.363 WETH exactly.
    amount_in = 1_100_000
    floor = exact_floor_units(amount_in, BUY, price)
    assert floor == 363 * 10**15
    allowed(judge(swap(amount_in, floor, path=BUY, price=price), context(price=price), CONFIG))
    assert (
        judge(
            swap(amount_in, floor - 1, path=BUY, price=price), context(price=price), CONFIG
        ).reason
        == "max_slippage"
    )


# -- min_seconds_between_trades --------------------------------------------------------------


def test_trades_exactly_the_minimum_apart_are_allowed_one_second_less_is_refused() -> None:
    allowed(judge(swap(SELL_AT_LIMIT), context(last_trade=None), CONFIG))
    allowed(judge(swap(SELL_AT_LIMIT), context(last_trade=NOW - MIN_GAP), CONFIG))
    refused(
        judge(swap(SELL_AT_LIMIT), context(last_trade=NOW - MIN_GAP + 1), CONFIG),
        "min_seconds_between_trades",
        "59 s since the last trade; the minimum is 60 s",
    )
    refused(
        judge(swap(SELL_AT_LIMIT), context(last_trade=NOW), CONFIG),
        "min_seconds_between_trades",
        "0 s since the last trade; the minimum is 60 s",
    )


# -- order -----------------------------------------------------------------------------------


def test_the_first_failing_guardrail_names_the_refusal() -> None:
    everything_wrong = swap(
        SELL_AT_LIMIT * 10, 0, chain_id=1, max_fee_per_gas=FEE_CAP * 2, recipient=STRANGER
    )
    bad_context = {
        "paused": True,
        "last_trade": NOW,
        "max_slippage_bps_requested": 10_000,
        "spent": [SpendEntry(timestamp=NOW, notional_usd=DAY_LIMIT)],
    }
    assert judge(everything_wrong, context(**bad_context), CONFIG).reason == "paused"
    bad_context["paused"] = False
    assert judge(everything_wrong, context(**bad_context), CONFIG).reason == "chain_id"
    tx = replace(everything_wrong, chain_id=CHAIN_ID)
    assert judge(tx, context(**bad_context), CONFIG).reason == "max_fee_per_gas"
    tx = replace(tx, max_fee_per_gas=FEE_CAP)
    assert judge(tx, context(**bad_context), CONFIG).reason == "call_not_allowed"
    tx = swap(SELL_AT_LIMIT * 10, 0)
    assert judge(tx, context(**bad_context), CONFIG).reason == "max_notional_per_trade"
    tx = swap(SELL_AT_LIMIT, 0)
    assert judge(tx, context(**bad_context), CONFIG).reason == "max_notional_per_day"
    bad_context["spent"] = []
    assert judge(tx, context(**bad_context), CONFIG).reason == "max_slippage"
    bad_context["max_slippage_bps_requested"] = SLIPPAGE
    assert judge(tx, context(**bad_context), CONFIG).reason == "max_slippage"
    tx = swap(SELL_AT_LIMIT)
    assert judge(tx, context(**bad_context), CONFIG).reason == "min_seconds_between_trades"
    bad_context["last_trade"] = NOW - MIN_GAP
    allowed(judge(tx, context(**bad_context), CONFIG))


# -- property --------------------------------------------------------------------------------

_ENGINE = DecisionEngine(
    CONFIG, RulePolicy(CONFIG.policy.rule), AccountSigner.from_bytes(bytes(31) + b"\x01"), b""
)

prices = st.floats(min_value=1e-3, max_value=1e7, allow_nan=False, allow_infinity=False).map(
    lambda value: Decimal(repr(value))
)
amounts = st.decimals(min_value=0, max_value=10**6, places=6, allow_nan=False)


def _check_allowed(
    tx: ProposedTransaction, price: Decimal, bps: int, config: EnclaveConfig
) -> bool:
    verdict = judge(tx, context(price=price, max_slippage_bps_requested=bps), config)
    call = decode_call(tx.data)
    assert call is not None
    notional = exact_notional(call.amount_in, call.path, price)
    floor = exact_floor_units(call.amount_in, call.path, price)
    if verdict.allowed:
        assert notional <= LIMIT
        assert call.min_out >= floor
        assert bps <= SLIPPAGE
        # The recorded notional is the exact one to the Decimal context's 28 digits.
        assert abs(Fraction(verdict.notional_usd) - notional) <= notional * Fraction(1, 10**26)
    return verdict.allowed


@settings(max_examples=300, deadline=None)
@given(
    action=st.sampled_from(["buy", "sell"]),
    amount=amounts,
    price=prices,
    bps=st.integers(min_value=0, max_value=10_000),
)
def test_any_allowed_swap_built_from_a_decision_is_within_the_limits(
    action: str, amount: Decimal, price: Decimal, bps: int
) -> None:
    decision = Decision(
        action=action, pair=PAIR.symbol, amount=amount, max_slippage_bps=bps, rationale="test"
    )
    plan = _ENGINE._plan(PAIR, decision, price)
    tx = swap(plan.amount_in, plan.min_out, path=(plan.token_in, plan.token_out), price=price)
    was_allowed = _check_allowed(tx, price, bps, CONFIG)
    # And the converse: a plan within the limits is never refused.
    within = exact_notional(plan.amount_in, (plan.token_in,), price) <= LIMIT and bps <= SLIPPAGE
    assert was_allowed == within


@settings(max_examples=300, deadline=None)
@given(
    selling=st.booleans(),
    amount_in=st.integers(min_value=0, max_value=10**21),
    price=prices,
    offset=st.integers(min_value=-3, max_value=3)
    | st.integers(min_value=-(10**12), max_value=10**12),
)
def test_any_allowed_raw_swap_is_within_the_limits(
    selling: bool, amount_in: int, price: Decimal, offset: int
) -> None:
    path = SELL if selling else BUY
    min_out = max(0, exact_floor_units(amount_in, path, price) + offset)
    tx = swap(amount_in, min_out, path=path, price=price)
    was_allowed = _check_allowed(tx, price, SLIPPAGE, CONFIG)
    within = exact_notional(amount_in, path, price) <= LIMIT and min_out >= exact_floor_units(
        amount_in, path, price
    )
    assert was_allowed == within
