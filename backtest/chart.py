"""The chart of a run: price with the trades above, the portfolio's value beside holding its
start below, drawn with matplotlib's Agg renderer (no display needed) as a PNG of
CHART_WIDTH x CHART_HEIGHT pixels. The backtest (`backtest.report`) and the demo on the
local chain (`devnet.demo_chart`) draw theirs with it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt
from matplotlib.figure import Figure

CHART_WIDTH = 1200
CHART_HEIGHT = 700
_DPI = 100
# The trade markers' colours (and their legend's).
BUY_COLOUR = "#1a9850"
SELL_COLOUR = "#d73027"


class ChartError(Exception):
    """The chart or report cannot be written (the message names the file)."""


class ChartTrade(Protocol):
    """A trade as the chart marks it: when, at what price, which way ("buy" or "sell")."""

    @property
    def timestamp_ms(self) -> int: ...
    @property
    def price(self) -> float: ...
    @property
    def side(self) -> str: ...


@dataclass(frozen=True)
class ChartData:
    """What the chart draws: aligned columns of time, price, the portfolio's value and the
    value of holding its start, the trades, and spans to shade (gaps in the data)."""

    title: str
    price_label: str
    times_ms: npt.NDArray[np.int64]
    prices: npt.NDArray[np.float64]
    values: npt.NDArray[np.float64]
    held: npt.NDArray[np.float64]
    start_value: float
    trades: Sequence[ChartTrade] = ()
    shaded_ms: Sequence[tuple[int, int]] = ()


def draw(data: ChartData) -> bytes:
    """The chart as PNG bytes: price and trades above, portfolio value and holding below."""
    figure = Figure(figsize=(CHART_WIDTH / _DPI, CHART_HEIGHT / _DPI), dpi=_DPI)
    price_axes, value_axes = figure.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    times = data.times_ms.astype("datetime64[ms]")
    price_axes.plot(times, data.prices, color="#4a4a4a", linewidth=0.8, label="price")
    for side, marker, color in (("buy", "^", BUY_COLOUR), ("sell", "v", SELL_COLOUR)):
        trades = [trade for trade in data.trades if trade.side == side]
        if trades:
            price_axes.scatter(
                np.array([t.timestamp_ms for t in trades]).astype("datetime64[ms]"),
                [t.price for t in trades],
                marker=marker,
                color=color,
                s=28 if len(data.trades) < 500 else 8,
                zorder=3,
                label=f"{side} ({len(trades)})",
            )
    for start_ms, end_ms in data.shaded_ms:
        price_axes.axvspan(
            np.datetime64(start_ms, "ms"),
            np.datetime64(end_ms, "ms"),
            color="#fdae61",
            alpha=0.4,
            linewidth=0,
        )
    price_axes.set_ylabel(data.price_label)
    price_axes.set_title(data.title)
    price_axes.legend(loc="upper left")
    price_axes.grid(alpha=0.3)
    value_axes.plot(times, data.values, color="#2166ac", linewidth=1.0, label="portfolio")
    value_axes.plot(times, data.held, color="#999999", linewidth=0.8, label="holding the start")
    value_axes.axhline(data.start_value, color="#cccccc", linewidth=0.6)
    value_axes.set_ylabel("value (USD)")
    value_axes.legend(loc="upper left", title=f"held: {float(data.held[-1]):,.0f} USD")
    value_axes.grid(alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI)
    return buffer.getvalue()


def write_png(path: Path, data: ChartData) -> None:
    """Draw `data` into the PNG file `path`.

    Raises:
        ChartError: the file cannot be written.
    """
    png = draw(data)
    try:
        path.write_bytes(png)
    except OSError as exc:
        raise ChartError(f"cannot write {path}: {exc.strerror or exc}") from None
