"""The texts whose hashes receipts carry, a decision's and its market view's, are written
field by field; they are json.dumps of the dumped model (sorted keys, no spaces), byte for
byte, whatever the values: any string, any float (NaN and infinities too), None, any
finite Decimal."""

from __future__ import annotations

import json
import math
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from enclave.market import Features
from enclave.policy import Decision, MarketView

NUMBERS = st.one_of(
    st.floats(), st.sampled_from([0.0, -0.0, 1e-7, 1e16, 2.5, math.inf, -math.inf, math.nan])
)
FLOATS = st.one_of(st.none(), NUMBERS)
DECIMALS = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False),
    st.sampled_from([Decimal("1E+3"), Decimal("0E-18"), Decimal("-0"), Decimal("1.50")]),
)
TEXT = st.one_of(st.text(), st.sampled_from(["ETH/USDT", 'quote "and" \\ \n \u00e9 \U0001f600']))
INTEGERS = st.one_of(st.integers(), st.integers(min_value=-(2**70), max_value=2**70))


def reference(model: BaseModel) -> str:
    return json.dumps(model.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


@given(
    price=NUMBERS, closes=INTEGERS, return_1=FLOATS, sma_short=FLOATS, sma_long=FLOATS,
    volatility=FLOATS, pair=TEXT, base=TEXT, quote=TEXT, timestamp=INTEGERS,
    base_balance=DECIMALS, quote_balance=DECIMALS, left=DECIMALS, per_trade=DECIMALS,
)  # fmt: skip
def test_a_market_views_text_is_json_dumps_of_its_dump(
    price: float, closes: int, return_1: float | None, sma_short: float | None,
    sma_long: float | None, volatility: float | None, pair: str, base: str, quote: str,
    timestamp: int, base_balance: Decimal, quote_balance: Decimal, left: Decimal,
    per_trade: Decimal,
) -> None:  # fmt: skip
    features = Features(
        price=price, closes=closes, return_1=return_1, sma_short=sma_short,
        sma_long=sma_long, volatility=volatility,
    )  # fmt: skip
    view = MarketView(
        pair=pair, base=base, quote=quote, timestamp=timestamp, features=features,
        base_balance=base_balance, quote_balance=quote_balance,
        notional_left_today_usd=left, max_notional_per_trade_usd=per_trade,
    )  # fmt: skip
    assert view.canonical_json() == reference(view)


@given(
    action=st.sampled_from(["buy", "sell", "hold"]),
    pair=st.text(max_size=25),
    amount=st.decimals(min_value=0, max_value=10**21, places=18),
    max_slippage_bps=st.integers(min_value=0, max_value=10_000),
    rationale=st.one_of(st.text(max_size=200), st.just("SMA 2000.00 above 1990.00")),
)
def test_a_decisions_text_is_json_dumps_of_its_dump(
    action: str, pair: str, amount: Decimal, max_slippage_bps: int, rationale: str
) -> None:
    decision = Decision.model_validate(
        {
            "action": action,
            "pair": pair,
            "amount": amount,
            "max_slippage_bps": max_slippage_bps,
            "rationale": rationale,
        }
    )
    assert decision.canonical_json() == reference(decision)


def test_the_texts_of_a_known_view_and_decision() -> None:
    features = Features(
        price=2000.5, closes=64, return_1=-0.01, sma_short=None, sma_long=1990.25,
        volatility=float("nan"),
    )  # fmt: skip
    view = MarketView(
        pair="ETH/USDT", base="WETH", quote="USDT", timestamp=1_700_000_000, features=features,
        base_balance=Decimal("1.5"), quote_balance=Decimal("0E-6"),
        notional_left_today_usd=Decimal("5000"), max_notional_per_trade_usd=Decimal("1E+3"),
    )  # fmt: skip
    assert view.canonical_json() == (
        '{"base":"WETH","base_balance":"1.5","features":{"closes":64,"price":2000.5,'
        '"return_1":-0.01,"sma_long":1990.25,"sma_short":null,"volatility":NaN},'
        '"max_notional_per_trade_usd":"1E+3","notional_left_today_usd":"5000",'
        '"pair":"ETH/USDT","quote":"USDT","quote_balance":"0.000000","timestamp":1700000000}'
    )
    decision = Decision(
        action="sell", pair="ETH/USDT", amount=Decimal("0.25"), max_slippage_bps=50,
        rationale='a "quoted" r\u00e9ason',
    )  # fmt: skip
    assert decision.canonical_json() == (
        '{"action":"sell","amount":"0.25","max_slippage_bps":50,"pair":"ETH/USDT",'
        '"rationale":"a \\"quoted\\" r\\u00e9ason"}'
    )
