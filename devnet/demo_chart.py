"""The demo's chart: the backtest's chart (`backtest.chart`) of the run on the local chain.

Above, the pool's ETH/USD price after each candle and the agent's trades as the vault
recorded them (its Traded events, at their block's time and the price they filled at);
below, the vault's value after each candle beside holding the starting deposit.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from backtest.chart import ChartData, write_png
from devnet.demo_run import Session

# Where `./scripts/demo` writes its chart unless told otherwise (var/ is not tracked).
DEFAULT_CHART = Path("var") / "demo" / "chart.png"


@dataclass(frozen=True)
class ChainTrade:
    """A swap the vault made for the agent: its block's time, its fill price, its side."""

    timestamp_ms: int
    price: float
    side: str


def write_demo_chart(path: Path, session: Session, summary: dict[str, Any]) -> None:
    """Draw the run of `session` into the PNG `path`, titled with the summary's figures.

    Raises:
        backtest.chart.ChartError: the file cannot be written.
    """
    write_png(path, demo_chart(session, summary))


def demo_chart(session: Session, summary: dict[str, Any]) -> ChartData:
    """What the demo's chart draws (see the module docstring)."""
    weth, usd = session.tokens["WETH"][1], session.tokens["USD"][1]

    def value(balances: dict[str, int], price: Decimal) -> float:
        return float(
            Decimal(balances["WETH"]).scaleb(-weth) * price + Decimal(balances["USD"]).scaleb(-usd)
        )

    marks = session.marks
    title = (
        f"ETH/USD {summary['policy']} policy on the local chain: portfolio "
        f"{summary['change_usd']:+,.2f} USD, vs holding {summary['vs_hold_usd']:+,.2f} USD, "
        f"{summary['trades']} trades"
    )
    return ChartData(
        title=title,
        price_label="ETH/USD (pool)",
        times_ms=np.array([mark.timestamp_ms for mark in marks], dtype=np.int64),
        prices=np.array([float(mark.price) for mark in marks], dtype=np.float64),
        values=np.array([value(mark.balances, mark.price) for mark in marks], dtype=np.float64),
        held=np.array(
            [value(session.start_balances, mark.price) for mark in marks], dtype=np.float64
        ),
        start_value=value(session.start_balances, session.start_price),
        trades=chain_trades(session),
    )


def chain_trades(session: Session) -> list[ChainTrade]:
    """The agent's trades from the vault's Traded events: a buy pays USD for WETH."""
    weth, usd = session.tokens["WETH"][1], session.tokens["USD"][1]
    found = []
    block_times: dict[int, int] = {}
    for trade in session.vault.vault.trades():
        if trade.agent != session.address:
            continue
        if trade.block not in block_times:
            block_times[trade.block] = int(session.w3.eth.get_block(trade.block)["timestamp"])
        buy = trade.token_in == session.dex.usd
        usd_units, weth_units = (
            (trade.amount_in, trade.amount_out) if buy else (trade.amount_out, trade.amount_in)
        )
        if weth_units == 0:
            continue
        price = Decimal(usd_units).scaleb(-usd) / Decimal(weth_units).scaleb(-weth)
        found.append(
            ChainTrade(block_times[trade.block] * 1000, float(price), "buy" if buy else "sell")
        )
    return found
