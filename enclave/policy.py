"""The decision step: a `Policy` turns a market view into a `Decision`; guardrails judge it.

A policy sees only what the enclave computed from validated ticks (numbers and allowlisted
symbols), the agent's balances and its remaining limits. It may propose anything; the
guardrails that run after it decide what is signed.
"""

from __future__ import annotations

import math
from decimal import ROUND_DOWN, Decimal
from json.encoder import encode_basestring_ascii
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from enclave.market import Features
from enclave.policy_config import RulePolicyConfig

NO_MODEL = bytes(32)


class ModelError(Exception):
    """A policy's model file cannot be used: missing, unreadable, or not the configured one."""


class Decision(BaseModel):
    """What the policy wants to do."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: Literal["buy", "sell", "hold"]
    pair: str = Field(max_length=25)
    # Amount of the pair's base asset to buy or sell (0 for hold).
    amount: Decimal = Field(ge=0, max_digits=40, decimal_places=18)
    max_slippage_bps: int = Field(ge=0, le=10_000)
    rationale: str = Field(max_length=200)

    def canonical_json(self) -> str:
        """The receipt's decision text: `json.dumps(self.model_dump(mode="json"),
        sort_keys=True, separators=(",", ":"))`, written field by field in that order."""
        return (
            f'{{"action":{_text(self.action)},"amount":"{self.amount}",'
            f'"max_slippage_bps":{int.__repr__(self.max_slippage_bps)},'
            f'"pair":{_text(self.pair)},"rationale":{_text(self.rationale)}}}'
        )


class MarketView(BaseModel):
    """Everything a policy may see: enclave-computed numbers and allowlisted symbols."""

    model_config = ConfigDict(frozen=True)

    pair: str
    base: str
    quote: str
    timestamp: int
    features: Features
    # Balances in whole tokens (host-reported, used for sizing only).
    base_balance: Decimal
    quote_balance: Decimal
    notional_left_today_usd: Decimal
    max_notional_per_trade_usd: Decimal

    def canonical_json(self) -> str:
        """The receipt's input text: `json.dumps(self.model_dump(mode="json"),
        sort_keys=True, separators=(",", ":"))`, written field by field in that order (a
        decision's receipt is made on every tick that falls due, and json.dumps of the
        dumped model costs several times this)."""
        f = self.features
        return (
            f'{{"base":{_text(self.base)},"base_balance":"{self.base_balance}",'
            f'"features":{{"closes":{int.__repr__(f.closes)},"price":{_number(f.price)},'
            f'"return_1":{_number(f.return_1)},"sma_long":{_number(f.sma_long)},'
            f'"sma_short":{_number(f.sma_short)},"volatility":{_number(f.volatility)}}},'
            f'"max_notional_per_trade_usd":"{self.max_notional_per_trade_usd}",'
            f'"notional_left_today_usd":"{self.notional_left_today_usd}",'
            f'"pair":{_text(self.pair)},"quote":{_text(self.quote)},'
            f'"quote_balance":"{self.quote_balance}","timestamp":{int.__repr__(self.timestamp)}}}'
        )


# JSON values as json.dumps writes them (ensure_ascii, allow_nan): a string escaped to ASCII
# by the same C function; a float by float.__repr__, or NaN, Infinity, -Infinity; None as
# null. (A Decimal is its str() in quotes, as model_dump(mode="json") makes it a string.)
_text = encode_basestring_ascii


def _number(value: float | None) -> str:
    if value is None:
        return "null"
    if math.isfinite(value):
        return float.__repr__(value)
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


class Policy(Protocol):
    """A decision policy that runs inside the enclave."""

    name: str
    # SHA-256 of the model file behind the policy; 32 zero bytes when there is none.
    model_hash: bytes

    def decide(self, view: MarketView) -> Decision:
        """The decision for this view. Must not raise; an unusable answer is a hold."""
        ...


def hold(pair: str, reason: str) -> Decision:
    return Decision(
        action="hold", pair=pair, amount=Decimal(0), max_slippage_bps=0, rationale=reason
    )


class RulePolicy:
    """Moving-average crossover with position sizing.

    Buy `trade_fraction` of the quote balance (within the per-trade limit) when the short
    average is above the long one and little of the base asset is held; sell that fraction
    of the base balance when it is below and base is held; otherwise hold.
    """

    name = "rule"
    model_hash = NO_MODEL

    def __init__(self, config: RulePolicyConfig) -> None:
        self._config = config

    def decide(self, view: MarketView) -> Decision:
        short, long = view.features.sma_short, view.features.sma_long
        if short is None or long is None:
            return hold(view.pair, f"warming up: {view.features.closes} closes so far")
        base_value = view.base_balance * Decimal(repr(view.features.price))
        if short > long and base_value < view.quote_balance:
            amount = trade_amount(view, "buy", self._config.trade_fraction)
            if amount > 0:
                return self._trade("buy", view, amount, f"SMA {short:.2f} above {long:.2f}")
        elif short < long and view.base_balance > 0:
            amount = trade_amount(view, "sell", self._config.trade_fraction)
            if amount > 0:
                return self._trade("sell", view, amount, f"SMA {short:.2f} below {long:.2f}")
        return hold(view.pair, f"no signal: SMA short {short:.2f}, long {long:.2f}")

    def _trade(
        self, action: Literal["buy", "sell"], view: MarketView, amount: Decimal, why: str
    ) -> Decision:
        return Decision(
            action=action,
            pair=view.pair,
            amount=amount,
            max_slippage_bps=self._config.slippage_bps,
            rationale=why,
        )


def trade_amount(view: MarketView, action: Literal["buy", "sell"], fraction: Decimal) -> Decimal:
    """The base asset a trade moves: `fraction` of the balance it pays with, within the
    per-trade and the day's notional limits, rounded down to 0.000001 (0: nothing to trade).

    Both policies size their trades with it: the LLM chooses only the direction.
    """
    price = Decimal(repr(view.features.price))
    if action == "buy":
        spend = min(
            view.quote_balance * fraction,
            view.max_notional_per_trade_usd,
            view.notional_left_today_usd,
        )
        return _quantize(spend / price)
    return _quantize(
        min(
            view.base_balance * fraction,
            view.max_notional_per_trade_usd / price,
            view.notional_left_today_usd / price,
        )
    )


def _quantize(amount: Decimal) -> Decimal:
    return amount.quantize(Decimal("0.000001"), rounding=ROUND_DOWN)
