"""The figures of a backtest: values, returns beside two ways of holding, drawdown, trades,
costs and refusals, as one JSON-ready object and as a table.

- `start_value_usd`: the starting balances at the first candle's close;
- `end_value_usd`: the balances after the last candle, at its close;
- `hold_return_pct`: holding the starting balances, unchanged, to the last close;
- `buy_and_hold_return_pct`: all of the starting value in the base asset at the first
  close (no fee), held to the last close;
- `max_drawdown_pct`: the largest fall of the portfolio's value (at each close, after that
  candle's trades) from an earlier peak, the start included.
The quote token is taken to be a USD stablecoin, as the enclave's config asks.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

from backtest.candles import Candles, Gap, iso_time
from backtest.simulation import Outcome
from enclave.config import EnclaveConfig, Pair


@dataclass(frozen=True)
class RunFacts:
    """What the run was, beside what it produced."""

    config: EnclaveConfig
    pair: Pair
    policy: str
    model_hash: bytes
    fee_bps: int
    slippage_bps: int


def summarise(
    candles: Candles, gaps: list[Gap], outcome: Outcome, facts: RunFacts
) -> dict[str, Any]:
    """The backtest's figures as one JSON-ready object (see the module docstring)."""
    first, last = float(candles.close[0]), float(candles.close[-1])
    start_value = _value(outcome.start_balances, facts, first)
    held_value = _value(outcome.start_balances, facts, last)
    end_value = float(outcome.values[-1])
    path = np.concatenate(([start_value], outcome.values))
    peaks = np.maximum.accumulate(path)
    drawdown = float(np.max((peaks - path) / peaks)) if start_value > 0 else 0.0
    buys = sum(1 for trade in outcome.trades if trade.side == "buy")
    return {
        "pair": facts.pair.symbol,
        "base": facts.pair.base,
        "quote": facts.pair.quote,
        "policy": facts.policy,
        "model_hash": "0x" + facts.model_hash.hex(),
        "config_hash": "0x" + facts.config.config_hash().hex(),
        "candles": len(candles),
        "first": iso_time(int(candles.timestamp_ms[0])),
        "last": iso_time(int(candles.timestamp_ms[-1])),
        "interval_seconds": candles.interval_ms() // 1000,
        "start_price": first,
        "end_price": last,
        "start_value_usd": round(start_value, 2),
        "end_value_usd": round(end_value, 2),
        "return_pct": _percent(end_value, start_value),
        "hold_return_pct": _percent(held_value, start_value),
        "buy_and_hold_return_pct": _percent(last, first),
        "max_drawdown_pct": round(drawdown * 100, 4),
        "trades": len(outcome.trades),
        "buys": buys,
        "sells": len(outcome.trades) - buys,
        "reverted": dict(sorted(outcome.reverts.items())),
        "decisions": outcome.decisions,
        "holds": outcome.holds,
        "receipts": outcome.receipts,
        "fees_usd": round(float(outcome.fees_quote), 2),
        "slippage_usd": round(float(outcome.slippage_quote), 2),
        "fee_bps": facts.fee_bps,
        "slippage_bps": facts.slippage_bps,
        "refusals": dict(sorted(outcome.refusals.items())),
        "ticks_refused": dict(sorted(outcome.tick_refusals.items())),
        "gaps": [gap.as_dict() for gap in gaps],
        "start_balances": _whole(outcome.start_balances, facts),
        "end_balances": _whole(outcome.end_balances, facts),
        "seconds": round(outcome.seconds, 3),
        "candles_per_second": round(len(candles) / outcome.seconds, 1) if outcome.seconds else None,
        "decision_seconds": round(outcome.decision_seconds, 3),
    }


def _value(balances: dict[str, int], facts: RunFacts, price: float) -> float:
    base = facts.config.tokens[facts.pair.base]
    quote = facts.config.tokens[facts.pair.quote]
    return float(
        balances.get(facts.pair.base, 0) / 10**base.decimals * price
        + balances.get(facts.pair.quote, 0) / 10**quote.decimals
    )


def _percent(now: float, then: float) -> float:
    return round((now / then - 1) * 100, 4) if then else 0.0


def _whole(balances: dict[str, int], facts: RunFacts) -> dict[str, str]:
    """Balances in whole tokens, exactly, as decimal strings."""
    return {
        symbol: f"{Decimal(units).scaleb(-facts.config.tokens[symbol].decimals).normalize():f}"
        for symbol, units in sorted(balances.items())
    }


# (key, label, unit) of the table's rows, in order.
_ROWS = (
    ("pair", "pair", ""),
    ("policy", "policy", ""),
    ("candles", "candles", ""),
    ("first", "from", ""),
    ("last", "to", ""),
    ("start_price", "first close", ""),
    ("end_price", "last close", ""),
    ("start_value_usd", "start value", " USD"),
    ("end_value_usd", "end value", " USD"),
    ("return_pct", "return", " %"),
    ("hold_return_pct", "holding the start portfolio", " %"),
    ("buy_and_hold_return_pct", "buy and hold the base asset", " %"),
    ("max_drawdown_pct", "max drawdown", " %"),
    ("trades", "trades", ""),
    ("buys", "buys", ""),
    ("sells", "sells", ""),
    ("holds", "holds", ""),
    ("fees_usd", "fees paid", " USD"),
    ("slippage_usd", "slippage paid", " USD"),
)


def table_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) rows of the summary, for the table and the HTML report."""
    rows = [(label, f"{summary[key]}{unit}") for key, label, unit in _ROWS]
    rows.append(("refusals by guardrail", _counts(summary["refusals"])))
    if summary["reverted"]:
        rows.append(("reverted swaps", _counts(summary["reverted"])))
    if summary["ticks_refused"]:
        rows.append(("ticks refused", _counts(summary["ticks_refused"])))
    gaps = summary["gaps"]
    missing = sum(gap["missing"] for gap in gaps)
    rows.append(("gaps", f"{len(gaps)} ({missing} candles missing)" if gaps else "none"))
    rows.append(("end balances", _counts(summary["end_balances"])))
    return rows


def table(summary: dict[str, Any]) -> str:
    """The summary as an aligned two-column text table."""
    rows = table_rows(summary)
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


def _counts(counts: dict[str, Any]) -> str:
    return ", ".join(f"{key} {value}" for key, value in counts.items()) or "none"
