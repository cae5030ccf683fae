"""What the LLM policy shows the model, and what the model writes back.

- The market view is a compact JSON object of the fields `[policy.llm] view` names, in that
  order, built only from enclave-computed numbers and allowlisted symbols: no text from the
  host can reach it. Every field costs prompt tokens, and on CPU evaluating those is most of
  a decision's time (about 5 ms per token for SmolLM2-135M on 2 cores), so the view carries
  what the strategy uses and nothing more.
- The answer is the action and a short rationale. The model chooses a direction; the
  enclave sizes the trade (`enclave.policy.trade_amount`, the rule policy's sizing) and
  sets its slippage, so no amount the model writes can be wrong, and a direction with
  nothing to trade is a hold that says why.
- The worked examples are checked against both at start: a view with other fields, or a
  decision the answer's grammar could never produce, would teach the model something it
  cannot do.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from enclave.policy import Decision, MarketView, ModelError, hold, trade_amount
from enclave.policy_config import LlmPolicyConfig, RulePolicyConfig


def market_view(view: MarketView, fields: Sequence[str], fraction: Decimal) -> str:
    """The view as the model reads it: the named fields, in order, as compact JSON."""
    f = view.features
    trend = "flat"
    if f.sma_short is not None and f.sma_long is not None:
        trend = "up" if f.sma_short > f.sma_long else "down" if f.sma_short < f.sma_long else "flat"
    values: dict[str, Any] = {
        "trend": trend,
        "can_buy": trade_amount(view, "buy", fraction) > 0,
        "can_sell": trade_amount(view, "sell", fraction) > 0,
        "pair": view.pair,
        "price": _round(f.price, 2),
        "change_1h_pct": _round(f.return_1 * 100 if f.return_1 is not None else None, 2),
        "sma_short": _round(f.sma_short, 2),
        "sma_long": _round(f.sma_long, 2),
        "volatility_pct": _round(f.volatility * 100 if f.volatility is not None else None, 2),
        "base_balance": _round(float(view.base_balance), 6),
        "quote_balance": _round(float(view.quote_balance), 2),
    }
    return json.dumps({name: values[name] for name in fields}, separators=(",", ":"))


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def answer_model(rationale_max: int) -> type[BaseModel]:
    """What the model must write, as a pydantic model; its JSON schema becomes the grammar.

    The action comes first, then at most `rationale_max` characters of plain words and
    numbers (nothing that needs escaping in JSON, no control bytes), so an answer always
    fits the token budget.
    """
    action: Any = Literal["buy", "sell", "hold"]
    return create_model(
        "LlmAnswer",
        __config__=ConfigDict(extra="forbid"),
        action=(action, ...),
        rationale=(str, Field(pattern=rf"^[a-zA-Z0-9 ,.:;%+()/=<>-]{{0,{rationale_max}}}$")),
    )


def check_examples(config: LlmPolicyConfig, answer: type[BaseModel]) -> None:
    """Refuse worked examples the model could not follow.

    Raises:
        ModelError: an example's market is not a JSON object of exactly the view's fields in
            its order, or its decision is not an answer the grammar allows (compact JSON).
    """
    for number, example in enumerate(config.examples, 1):
        try:
            market = json.loads(example.market)
        except json.JSONDecodeError:
            market = None
        if not isinstance(market, dict) or list(market) != list(config.view):
            raise ModelError(
                f"[policy.llm] example {number}: its market must be a JSON object of the view's "
                f"fields in order ({', '.join(config.view)})"
            )
        try:
            parsed = answer.model_validate_json(example.decision)
        except ValidationError as exc:
            raise ModelError(
                f"[policy.llm] example {number}: its decision is not an answer the model may "
                f"write: {_first_error(exc)}"
            ) from None
        if example.decision != parsed.model_dump_json():
            raise ModelError(
                f"[policy.llm] example {number}: write its decision as compact JSON "
                f"({parsed.model_dump_json()}), as the model must"
            )


def parse_answer(
    text: str, view: MarketView, answer: type[BaseModel], sizing: RulePolicyConfig
) -> Decision:
    """The model's JSON as a Decision, sized by the enclave; anything unusable is a hold."""
    try:
        parsed = answer.model_validate_json(text).model_dump()
    except ValidationError as exc:
        return hold(view.pair, f"invalid policy output: {_first_error(exc)}"[:200])
    action, rationale = parsed["action"], parsed["rationale"]
    if action == "hold":
        return hold(view.pair, rationale)
    amount = trade_amount(view, action, sizing.trade_fraction)
    if amount <= 0:
        return hold(view.pair, f"the model chose {action}, but {_nothing_to_trade(view, action)}")
    return Decision(
        action=action,
        pair=view.pair,
        amount=amount,
        max_slippage_bps=sizing.slippage_bps,
        rationale=rationale,
    )


def _nothing_to_trade(view: MarketView, action: Literal["buy", "sell"]) -> str:
    if action == "buy" and view.quote_balance <= 0:
        return f"there is no {view.quote} to spend"
    if action == "sell" and view.base_balance <= 0:
        return f"there is no {view.base} to sell"
    if view.notional_left_today_usd <= 0:
        return "the day's notional limit is used up"
    return "the trade would be below the smallest amount (0.000001)"


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "answer"
    return f"{where}: {error['msg']}"
