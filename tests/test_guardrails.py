"""The guardrail matrix: for every limit, a vault call just inside and one just outside,
judged by `enclave.guardrails.judge` on real calldata, with the refusal reason and the
numbers in its detail checked exactly."""

from __future__ import annotations

import math
from dataclasses import replace
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from eth_abi import encode
from eth_utils import function_signature_to_4byte_selector, to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from enclave.config import EnclaveConfig, parse_config
from enclave.guardrails import (
    CALL_NOT_ALLOWED,
    CHAIN_ID,
    DAY_SECONDS,
    GUARDRAIL_REFUSALS,
    MAX_FEE_PER_GAS,
    MAX_NOTIONAL_PER_DAY,
    MAX_NOTIONAL_PER_TRADE,
    MAX_SLIPPAGE,
    MIN_SECONDS_BETWEEN_TRADES,
    PAUSED,
    SPEND_WINDOW_SECONDS,
    TWAP_DEVIATION,
    TWAP_UNAVAILABLE,
    GuardrailContext,
    GuardrailVerdict,
    ProposedTransaction,
    SpendEntry,
    judge,
    notional_spent,
)
from enclave.policy import Decision
from enclave.transactions import VAULT_SWAP_SELECTOR, SwapPlan, decode_call, vault_swap_calldata
from enclave.vault_trades import plan_swap
from tests.enclave_harness import CHAIN_ID as HARNESS_CHAIN_ID
from tests.enclave_harness import ROUTER, USDT, VAULT, WETH, config_toml

OWNER_HEX = "11" * 32
MIN_GAP = 60
TWAP_BPS = 300  # max_twap_deviation_bps
CONFIG = parse_config(
    config_toml(OWNER_HEX, min_seconds_between_trades=MIN_GAP, max_twap_deviation_bps=TWAP_BPS)
)
PAIR = CONFIG.pairs[0]
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

# The receipt a judged call carries (the guardrails do not look at it).
RECEIPT_SEQ = 7
RECEIPT_DIGEST = b"\x07" * 32
NOT_THE_VAULT_SWAP = (
    "only the vault's swap, through the configured router, between allowed tokens, is allowed"
)
# Uniswap V2 Router02's own swap and ERC-20 approve: what the agent signed before the vault.
ROUTER_SWAP_SELECTOR = function_signature_to_4byte_selector(
    "swapExactTokensForTokens(uint256,uint256,address[],address,uint256)"
)
APPROVE_SELECTOR = function_signature_to_4byte_selector("approve(address,uint256)")


def exact_floor_units(
    amount_in: int, path: tuple[str, ...], price: Decimal, slippage_bps: int = SLIPPAGE
) -> int:
    """The smallest min_out (token units) at or above the quote less the slippage limit."""
    keep = 1 - Fraction(slippage_bps, 10_000)
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
    path: tuple[str, str] = SELL,
    router: str = ROUTER,
    price: Decimal = PRICE,
    **fields: Any,
) -> ProposedTransaction:
    """A real vault swap transaction; min_out defaults to the exact floor."""
    if min_out is None:
        min_out = exact_floor_units(amount_in, path, price)
    plan = SwapPlan(path[0], path[1], amount_in, min_out, 0)
    data = vault_swap_calldata(plan, router, NOW + 1800, RECEIPT_SEQ, RECEIPT_DIGEST)
    tx = ProposedTransaction(
        chain_id=HARNESS_CHAIN_ID, to=VAULT, value=0, data=data, max_fee_per_gas=FEE_CAP
    )
    return replace(tx, **fields)


def context(**fields: Any) -> GuardrailContext:
    """The enclave's view at NOW: the price PRICE, which the reported TWAP agrees with."""
    base = GuardrailContext(
        pair=PAIR,
        price=PRICE,
        now=NOW,
        paused=False,
        last_trade=None,
        spent=[],
        max_slippage_bps_requested=SLIPPAGE,
        twap=float(PRICE),
    )
    if "price" in fields and "twap" not in fields:
        fields["twap"] = float(fields["price"])
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
    assert (CONFIG.vault.address, CONFIG.chain.router) == (VAULT, ROUTER)
    assert CONFIG.vault.max_twap_deviation_bps == TWAP_BPS
    assert rails.allowed_chain_ids == [HARNESS_CHAIN_ID]
    assert rails.max_notional_per_trade_usd == LIMIT
    assert rails.max_notional_per_day_usd == DAY_LIMIT
    assert rails.max_slippage_bps == SLIPPAGE
    assert int(rails.max_fee_per_gas_gwei * 10**9) == FEE_CAP
    assert rails.min_seconds_between_trades == MIN_GAP
    assert (CONFIG.tokens[PAIR.base].address, CONFIG.tokens[PAIR.quote].address) == SELL
    assert exact_floor_units(SELL_AT_LIMIT, SELL, PRICE) == SELL_FLOOR
    assert exact_floor_units(BUY_AT_LIMIT, BUY, PRICE) == BUY_FLOOR


# -- paused, chain, fees ---------------------------------------------------------------------


def test_every_reason_has_its_name_in_the_order_judged() -> None:
    assert GUARDRAIL_REFUSALS == (
        "paused",
        "chain_id",
        "max_fee_per_gas",
        "call_not_allowed",
        "twap_unavailable",
        "twap_deviation",
        "max_notional_per_trade",
        MAX_NOTIONAL_PER_DAY,
        MAX_SLIPPAGE,
        MIN_SECONDS_BETWEEN_TRADES,
    )


def test_paused_refuses_swaps_and_unpaused_allows_them() -> None:
    allowed(judge(swap(SELL_AT_LIMIT), context(paused=False), CONFIG))
    for tx in (swap(SELL_AT_LIMIT), swap(1), swap(1, to=STRANGER)):
        refused(judge(tx, context(paused=True), CONFIG), PAUSED, "the owner paused the agent")


def test_chain_id_outside_the_allowlist_is_refused() -> None:
    allowed(judge(swap(SELL_AT_LIMIT, chain_id=HARNESS_CHAIN_ID), context(), CONFIG))
    for chain_id in (1, HARNESS_CHAIN_ID + 1, HARNESS_CHAIN_ID - 1):
        refused(
            judge(swap(SELL_AT_LIMIT, chain_id=chain_id), context(), CONFIG),
            CHAIN_ID,
            f"chain {chain_id} is not in [{HARNESS_CHAIN_ID}]",
        )


def test_max_fee_per_gas_equal_to_the_cap_is_allowed_one_wei_more_is_refused() -> None:
    allowed(judge(swap(SELL_AT_LIMIT, max_fee_per_gas=FEE_CAP), context(), CONFIG))
    refused(
        judge(swap(SELL_AT_LIMIT, max_fee_per_gas=FEE_CAP + 1), context(), CONFIG),
        MAX_FEE_PER_GAS,
        "max fee per gas 100000000001 wei exceeds 100000000000 wei",
    )


def test_a_fractional_gwei_cap_is_exact_in_wei() -> None:
    config = parse_config(config_toml(OWNER_HEX, max_fee_per_gas_gwei="1.5"))
    allowed(judge(swap(SELL_AT_LIMIT, max_fee_per_gas=1_500_000_000), context(), config))
    refused(
        judge(swap(SELL_AT_LIMIT, max_fee_per_gas=1_500_000_001), context(), config),
        MAX_FEE_PER_GAS,
        "max fee per gas 1500000001 wei exceeds 1500000000 wei",
    )


# -- call_not_allowed ------------------------------------------------------------------------


def test_the_well_formed_calls_are_allowed() -> None:
    """The inside cases of call_not_allowed: the vault's swap, both directions."""
    allowed(judge(swap(SELL_AT_LIMIT, path=SELL), context(), CONFIG))
    allowed(judge(swap(BUY_AT_LIMIT, path=BUY), context(), CONFIG))
    # The receipt's seq and digest are the vault's business, not a limit's.
    for seq, digest in ((1, bytes(32)), (2**64 - 1, b"\xff" * 32)):
        plan = SwapPlan(WETH, USDT, SELL_AT_LIMIT, SELL_FLOOR, 0)
        data = vault_swap_calldata(plan, ROUTER, NOW, seq, digest)
        allowed(judge(swap(SELL_AT_LIMIT, data=data), context(), CONFIG))


def _truncated() -> bytes:
    return swap(SELL_AT_LIMIT).data[:-32]


def _router_swap() -> bytes:
    """Router02's own swap of the same amounts, paying the vault: not the vault's call."""
    return ROUTER_SWAP_SELECTOR + encode(
        ["uint256", "uint256", "address[]", "address", "uint256"],
        [SELL_AT_LIMIT, SELL_FLOOR, list(SELL), VAULT, NOW + 1800],
    )


def _approve(spender: str) -> bytes:
    return APPROVE_SELECTOR + encode(["address", "uint256"], [spender, 2**256 - 1])


@pytest.mark.parametrize(
    ("case", "tx"),
    [
        ("the vault's swap sent to the router", swap(SELL_AT_LIMIT, to=ROUTER)),
        ("the vault's swap sent to a token", swap(SELL_AT_LIMIT, to=WETH)),
        ("the vault's swap sent to an unknown contract", swap(SELL_AT_LIMIT, to=STRANGER)),
        ("the router's own swap sent to the router", swap(SELL_AT_LIMIT, to=ROUTER, data=_router_swap())),
        ("the router's own swap sent to the vault", swap(SELL_AT_LIMIT, data=_router_swap())),
        ("an approval of the router", swap(SELL_AT_LIMIT, to=WETH, data=_approve(ROUTER))),
        ("an approval sent to the vault", swap(SELL_AT_LIMIT, data=_approve(ROUTER))),
        ("wrong selector", swap(SELL_AT_LIMIT, data=VAULT_SWAP_SELECTOR[::-1] + swap(SELL_AT_LIMIT).data[4:])),
        ("another router", swap(SELL_AT_LIMIT, router=STRANGER)),
        ("the vault as the router", swap(SELL_AT_LIMIT, router=VAULT)),
        ("a token as the router", swap(SELL_AT_LIMIT, router=USDT)),
        ("token not allowed (in)", swap(1000, 0, path=(OTHER_TOKEN, USDT))),
        ("token not allowed (out)", swap(1000, 0, path=(WETH, OTHER_TOKEN))),
        ("value is not zero", swap(SELL_AT_LIMIT, value=1)),
        ("malformed calldata: truncated", swap(SELL_AT_LIMIT, data=_truncated())),
        ("malformed calldata: selector only", swap(SELL_AT_LIMIT, data=VAULT_SWAP_SELECTOR)),
        ("malformed calldata: empty", swap(SELL_AT_LIMIT, data=b"")),
    ],
)  # fmt: skip
def test_calls_outside_the_allowlist_are_refused(case: str, tx: ProposedTransaction) -> None:
    refused(judge(tx, context(), CONFIG), CALL_NOT_ALLOWED, NOT_THE_VAULT_SWAP)


def test_the_selector_is_the_vaults_swap_and_the_wrong_one_is_really_wrong() -> None:
    signature = "swap(address,address,address,uint256,uint256,uint256,uint64,bytes32)"
    assert function_signature_to_4byte_selector(signature) == VAULT_SWAP_SELECTOR
    assert decode_call(VAULT_SWAP_SELECTOR[::-1] + swap(SELL_AT_LIMIT).data[4:]) is None
    assert decode_call(_router_swap()) is None
    assert decode_call(_approve(ROUTER)) is None


@pytest.mark.parametrize("path", [(WETH, WETH), (USDT, USDT)])
def test_a_path_of_allowed_tokens_that_is_not_the_pair_is_refused(path: tuple[str, str]) -> None:
    refused(
        judge(swap(1000, 0, path=path), context(), CONFIG),
        CALL_NOT_ALLOWED,
        "the swap path is not the pair ETH/USDT",
    )


def test_a_token_left_out_of_allowed_tokens_cannot_be_swapped() -> None:
    weth_only = parse_config(config_toml(OWNER_HEX, allowed_tokens=["WETH"]))
    refused(judge(swap(SELL_AT_LIMIT), context(), weth_only), CALL_NOT_ALLOWED, NOT_THE_VAULT_SWAP)
    refused(
        judge(swap(BUY_AT_LIMIT, path=BUY), context(), weth_only),
        CALL_NOT_ALLOWED,
        NOT_THE_VAULT_SWAP,
    )


# -- twap_unavailable, twap_deviation --------------------------------------------------------


@pytest.mark.parametrize("twap", [None, math.nan, math.inf, -math.inf, 0.0, -0.0, -2000.0])
def test_without_a_usable_twap_nothing_is_signed(twap: float | None) -> None:
    for tx in (swap(SELL_AT_LIMIT), swap(BUY_AT_LIMIT, path=BUY), swap(1)):
        refused(
            judge(tx, context(twap=twap), CONFIG),
            TWAP_UNAVAILABLE,
            "the host reported no usable TWAP for ETH/USDT",
        )


def test_a_price_at_the_twap_bound_is_allowed_a_hair_beyond_it_is_refused() -> None:
    # 300 bps of a TWAP of 2000 is 60: 1940 and 2060 are at the bound.
    small = WEI // 4  # 0.25 WETH, within the per-trade limit at either price
    for price in (Decimal(1940), Decimal(2060), Decimal("1940.000001"), Decimal("2059.999999")):
        # No slippage: the minimum out is the quote at the price, so only the price bound
        # (and not the vault's bound on the minimum out, below) decides.
        tx = swap(small, exact_floor_units(small, SELL, price, 0), price=price)
        allowed(judge(tx, context(price=price, twap=2000.0), CONFIG))
    for price in (Decimal("1939.999999"), Decimal("2060.000001")):
        refused(
            judge(swap(small, price=price), context(price=price, twap=2000.0), CONFIG),
            TWAP_DEVIATION,
            f"the accepted price {price} is outside 1940.000 to 2060.000, the reported TWAP "
            "2000.0 less and plus 300 bps",
        )


def test_the_twap_bound_is_exact_for_any_twap_and_limit() -> None:
    config = parse_config(config_toml(OWNER_HEX, max_twap_deviation_bps=1))
    twap = 1234.5678
    exact = Decimal(repr(twap))
    high, low = exact * Decimal("1.0001"), exact * Decimal("0.9999")
    for price, ok in (
        (high, True),
        (low, True),
        (high + Decimal("1e-20"), False),
        (low - Decimal("1e-20"), False),
    ):
        min_out = exact_floor_units(BUY_AT_LIMIT, BUY, price, 0)
        tx = swap(BUY_AT_LIMIT, min_out, path=BUY, price=price)
        verdict = judge(tx, context(price=price, twap=twap), config)
        assert verdict.allowed == ok, (price, verdict)
        assert ok or verdict.reason == TWAP_DEVIATION


def test_a_lying_price_far_from_the_reported_twap_is_refused() -> None:
    # The sale of issue 11: 50 WETH for a minimum of about 0.42 USDT, at a walked price of
    # 0.0085, is 0.425 USD of notional. The TWAP says 2000.
    lie = Decimal("0.0085")
    sale = swap(50 * WEI, price=lie)
    assert decode_call(sale.data).min_out == 420_750  # type: ignore[union-attr]
    verdict = judge(sale, context(price=lie, twap=2000.0), CONFIG)
    assert verdict.reason == TWAP_DEVIATION
    # The TWAP itself is the host's word too: agreeing with the lie passes the enclave's
    # check, and leaves the vault's own TWAP to revert the trade on chain.
    allowed(judge(sale, context(price=lie, twap=0.0085), CONFIG))


# -- max_notional_per_trade ------------------------------------------------------------------


def test_sell_exactly_at_the_per_trade_limit_is_allowed_one_wei_more_is_refused() -> None:
    verdict = judge(swap(SELL_AT_LIMIT, path=SELL), context(), CONFIG)
    allowed(verdict)
    assert verdict.notional_usd == LIMIT
    assert verdict.detail == "within every limit (1000.00 USD)"
    refused(
        judge(swap(SELL_AT_LIMIT + 1, path=SELL), context(), CONFIG),
        MAX_NOTIONAL_PER_TRADE,
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
        MAX_NOTIONAL_PER_TRADE,
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
        MAX_NOTIONAL_PER_TRADE,
        "notional 1500.00 USD exceeds 1000 USD",
    )


def test_buy_exactly_at_the_per_trade_limit_is_allowed_one_micro_usdt_more_is_refused() -> None:
    verdict = judge(swap(BUY_AT_LIMIT, path=BUY), context(), CONFIG)
    allowed(verdict)
    assert verdict.notional_usd == LIMIT
    refused(
        judge(swap(BUY_AT_LIMIT + 1, path=BUY), context(), CONFIG),
        MAX_NOTIONAL_PER_TRADE,
        "notional 1000.00 USD exceeds 1000 USD",
    )


def test_buy_is_valued_by_the_quote_spent_whatever_the_price() -> None:
    for price in (Decimal("0.01"), Decimal(1), Decimal(10**9)):
        verdict = judge(swap(BUY_AT_LIMIT, path=BUY, price=price), context(price=price), CONFIG)
        allowed(verdict)
        assert verdict.notional_usd == LIMIT
    refused(
        judge(swap(1250 * USDT_UNIT, path=BUY), context(), CONFIG),
        MAX_NOTIONAL_PER_TRADE,
        "notional 1250.00 USD exceeds 1000 USD",
    )


def test_sell_one_unit_above_the_limit_is_refused_even_for_a_cheap_token() -> None:
    price = Decimal(repr(1e-07))  # a base token worth 1e-7 USD, 18 decimals
    at_limit = 10**28  # 1e10 tokens = exactly 1000 USD
    allowed(judge(swap(at_limit, price=price), context(price=price), CONFIG))
    assert exact_notional(at_limit + 1, SELL, price) > LIMIT
    verdict = judge(swap(at_limit + 1, price=price), context(price=price), CONFIG)
    assert verdict.reason == MAX_NOTIONAL_PER_TRADE, verdict


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
        MAX_NOTIONAL_PER_DAY,
        "4000.00 USD in the last 24 h plus 1000.00 USD exceeds 5000 USD",
    )
    # 4500 spent: 500 USDT more reaches the limit, one micro-USDT more passes it.
    spent = [SpendEntry(timestamp=NOW - 1, notional_usd=Decimal(4500))]
    allowed(judge(swap(500 * USDT_UNIT, path=BUY), context(spent=spent), CONFIG))
    refused(
        judge(swap(500 * USDT_UNIT + 1, path=BUY), context(spent=spent), CONFIG),
        MAX_NOTIONAL_PER_DAY,
        "4500.00 USD in the last 24 h plus 500.00 USD exceeds 5000 USD",
    )
    # The same for a sell, valued at the accepted price: 0.25 WETH at 2000 is 500 USD.
    allowed(judge(swap(WEI // 4, path=SELL), context(spent=spent), CONFIG))
    refused(
        judge(swap(WEI // 4 + 1, path=SELL), context(spent=spent), CONFIG),
        MAX_NOTIONAL_PER_DAY,
        "4500.00 USD in the last 24 h plus 500.00 USD exceeds 5000 USD",
    )


def test_the_daily_limit_is_a_rolling_24_hours() -> None:
    def spent_at(age: int) -> list[SpendEntry]:
        return [SpendEntry(timestamp=NOW - age, notional_usd=Decimal(4500))]

    # 24 hours and 15 minutes less a second old: still counted (the vault counts a trade
    # from the block that mined it, after the tick), 4500 + 600 > 5000.
    refused(
        judge(
            swap(600 * USDT_UNIT, path=BUY),
            context(spent=spent_at(SPEND_WINDOW_SECONDS - 1)),
            CONFIG,
        ),
        MAX_NOTIONAL_PER_DAY,
        "4500.00 USD in the last 24 h plus 600.00 USD exceeds 5000 USD",
    )
    # 24 hours and 15 minutes old: out of the window.
    verdict = judge(
        swap(600 * USDT_UNIT, path=BUY), context(spent=spent_at(SPEND_WINDOW_SECONDS)), CONFIG
    )
    allowed(verdict)
    assert verdict.notional_usd == Decimal(600)
    assert (DAY_SECONDS, SPEND_WINDOW_SECONDS) == (86_400, 86_400 + 900)


def test_notional_spent_counts_only_the_last_24_hours() -> None:
    entries = [
        SpendEntry(timestamp=NOW - 87_300, notional_usd=Decimal(1)),
        SpendEntry(timestamp=NOW - 87_299, notional_usd=Decimal(10)),
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
        MAX_SLIPPAGE,
        "the decision allows 101 bps; the limit is 100 bps",
    )


def test_sell_min_out_at_the_floor_is_allowed_one_unit_below_is_refused() -> None:
    allowed(judge(swap(SELL_AT_LIMIT, SELL_FLOOR, path=SELL), context(), CONFIG))
    refused(
        judge(swap(SELL_AT_LIMIT, SELL_FLOOR - 1, path=SELL), context(), CONFIG),
        MAX_SLIPPAGE,
        "minimum out 989.999999 is below 990.00000000, the quote at the accepted price 2000 "
        "less 100 bps",
    )


def test_buy_min_out_at_the_floor_is_allowed_one_unit_below_is_refused() -> None:
    allowed(judge(swap(BUY_AT_LIMIT, BUY_FLOOR, path=BUY), context(), CONFIG))
    refused(
        judge(swap(BUY_AT_LIMIT, BUY_FLOOR - 1, path=BUY), context(), CONFIG),
        MAX_SLIPPAGE,
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
    assert verdict.reason == MAX_SLIPPAGE
    # 1.1 USDT at 3 is 0.3666... WETH; less 100 bps, 0.363 WETH exactly.
    amount_in = 1_100_000
    floor = exact_floor_units(amount_in, BUY, price)
    assert floor == 363 * 10**15
    allowed(judge(swap(amount_in, floor, path=BUY, price=price), context(price=price), CONFIG))
    assert (
        judge(
            swap(amount_in, floor - 1, path=BUY, price=price), context(price=price), CONFIG
        ).reason
        == MAX_SLIPPAGE
    )


# -- min_seconds_between_trades --------------------------------------------------------------


def test_trades_exactly_the_minimum_apart_are_allowed_one_second_less_is_refused() -> None:
    allowed(judge(swap(SELL_AT_LIMIT), context(last_trade=None), CONFIG))
    allowed(judge(swap(SELL_AT_LIMIT), context(last_trade=NOW - MIN_GAP), CONFIG))
    refused(
        judge(swap(SELL_AT_LIMIT), context(last_trade=NOW - MIN_GAP + 1), CONFIG),
        MIN_SECONDS_BETWEEN_TRADES,
        "59 s since the last trade; the minimum is 60 s",
    )
    refused(
        judge(swap(SELL_AT_LIMIT), context(last_trade=NOW), CONFIG),
        MIN_SECONDS_BETWEEN_TRADES,
        "0 s since the last trade; the minimum is 60 s",
    )


# -- order -----------------------------------------------------------------------------------


def test_the_first_failing_guardrail_names_the_refusal() -> None:
    everything_wrong = swap(
        SELL_AT_LIMIT * 10, 0, chain_id=1, max_fee_per_gas=FEE_CAP * 2, router=STRANGER
    )
    bad_context: dict[str, Any] = {
        "paused": True,
        "last_trade": NOW,
        "max_slippage_bps_requested": 10_000,
        "spent": [SpendEntry(timestamp=NOW, notional_usd=DAY_LIMIT)],
        "twap": None,
    }
    assert judge(everything_wrong, context(**bad_context), CONFIG).reason == PAUSED
    bad_context["paused"] = False
    assert judge(everything_wrong, context(**bad_context), CONFIG).reason == CHAIN_ID
    tx = replace(everything_wrong, chain_id=HARNESS_CHAIN_ID)
    assert judge(tx, context(**bad_context), CONFIG).reason == MAX_FEE_PER_GAS
    tx = replace(tx, max_fee_per_gas=FEE_CAP)
    assert judge(tx, context(**bad_context), CONFIG).reason == CALL_NOT_ALLOWED
    tx = swap(SELL_AT_LIMIT * 10, 0)
    assert judge(tx, context(**bad_context), CONFIG).reason == TWAP_UNAVAILABLE
    bad_context["twap"] = 3000.0
    assert judge(tx, context(**bad_context), CONFIG).reason == TWAP_DEVIATION
    bad_context["twap"] = 2000.0
    assert judge(tx, context(**bad_context), CONFIG).reason == MAX_NOTIONAL_PER_TRADE
    tx = swap(SELL_AT_LIMIT, 0)
    assert judge(tx, context(**bad_context), CONFIG).reason == MAX_NOTIONAL_PER_DAY
    bad_context["spent"] = []
    assert judge(tx, context(**bad_context), CONFIG).reason == MAX_SLIPPAGE
    bad_context["max_slippage_bps_requested"] = SLIPPAGE
    assert judge(tx, context(**bad_context), CONFIG).reason == MAX_SLIPPAGE
    tx = swap(SELL_AT_LIMIT)
    assert judge(tx, context(**bad_context), CONFIG).reason == MIN_SECONDS_BETWEEN_TRADES
    bad_context["last_trade"] = NOW - MIN_GAP
    allowed(judge(tx, context(**bad_context), CONFIG))


# -- property --------------------------------------------------------------------------------

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
    path = (call.token_in, call.token_out)
    notional = exact_notional(call.amount_in, path, price)
    floor = exact_floor_units(call.amount_in, path, price)
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
    plan = plan_swap(CONFIG, PAIR, decision, price)
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


def test_a_minimum_out_the_vault_would_revert_is_refused_at_its_exact_bound() -> None:
    # The vault reverts MinOutBelowTwap under the TWAP-implied output less 300 bps; the
    # enclave refuses the same, so it never signs what the vault would revert. 0.25 WETH at
    # a TWAP of 2000 is 500 USDT; less 3% it is 485 USDT. At the tick's price of 1950 the
    # slippage limit (1%) asks only 482.625, so the TWAP's bound decides.
    small, price = WEI // 4, Decimal(1950)
    floor = 485 * USDT_UNIT
    allowed(judge(swap(small, floor, price=price), context(price=price, twap=2000.0), CONFIG))
    refused(
        judge(swap(small, floor - 1, price=price), context(price=price, twap=2000.0), CONFIG),
        TWAP_DEVIATION,
        "minimum out 484.999999 is below 485.00000000, the output at the reported TWAP "
        "2000.0 less 300 bps (the vault would revert it)",
    )


def test_a_sale_is_valued_at_the_higher_of_the_price_and_the_twap() -> None:
    # The vault values a sale at its TWAP: 0.5 WETH is 1000 USDT at 2000, 1010 at 2020,
    # over the 1000 per-trade limit although the tick's price says 1000 exactly.
    half = WEI // 2
    tx = swap(half, exact_floor_units(half, SELL, Decimal(2000), 0), price=Decimal(2000))
    allowed(judge(tx, context(price=Decimal(2000), twap=2000.0), CONFIG))
    verdict = judge(tx, context(price=Decimal(2000), twap=2020.0), CONFIG)
    assert verdict.reason == MAX_NOTIONAL_PER_TRADE, verdict
