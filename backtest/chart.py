"""The backtest's chart (PNG) and HTML report: price with the trades, and the portfolio's
value beside holding, drawn with matplotlib's Agg renderer (no display needed).

The PNG is CHART_WIDTH x CHART_HEIGHT pixels; the HTML report embeds it (base64) with the
summary's figures as a table, so it is one file that opens anywhere.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from backtest.candles import Candles, Gap
from backtest.simulation import Outcome
from backtest.summary import table_rows

CHART_WIDTH = 1200
CHART_HEIGHT = 700
_DPI = 100


class ChartError(Exception):
    """The chart or report cannot be written (the message names the file)."""


def chart_png(
    candles: Candles, gaps: list[Gap], outcome: Outcome, summary: dict[str, Any]
) -> bytes:
    """The chart as PNG bytes: price and trades above, portfolio value and holding below."""
    figure = Figure(figsize=(CHART_WIDTH / _DPI, CHART_HEIGHT / _DPI), dpi=_DPI)
    price_axes, value_axes = figure.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    times = candles.timestamp_ms.astype("datetime64[ms]")
    price_axes.plot(times, candles.close, color="#4a4a4a", linewidth=0.8, label="close")
    for side, marker, color in (("buy", "^", "#1a9850"), ("sell", "v", "#d73027")):
        trades = [trade for trade in outcome.trades if trade.side == side]
        if trades:
            price_axes.scatter(
                np.array([t.timestamp_ms for t in trades]).astype("datetime64[ms]"),
                [t.price for t in trades],
                marker=marker,
                color=color,
                s=28 if len(outcome.trades) < 500 else 8,
                zorder=3,
                label=f"{side} ({len(trades)})",
            )
    interval = max(candles.interval_ms(), 1)
    for gap in gaps:
        start = np.datetime64(gap.after_ms, "ms")
        end = np.datetime64(gap.after_ms + (gap.missing + 1) * interval, "ms")
        price_axes.axvspan(start, end, color="#fdae61", alpha=0.4, linewidth=0)
    price_axes.set_ylabel(summary["pair"])
    price_axes.set_title(
        f"{summary['pair']} {summary['policy']} policy: return {summary['return_pct']:+.2f} %, "
        f"holding {summary['hold_return_pct']:+.2f} %, buy and hold "
        f"{summary['buy_and_hold_return_pct']:+.2f} %, {summary['trades']} trades"
        + (f", {len(gaps)} gap{'' if len(gaps) == 1 else 's'} (shaded)" if gaps else "")
    )
    price_axes.legend(loc="upper left")
    price_axes.grid(alpha=0.3)
    start_value = float(summary["start_value_usd"])
    held = start_value * (1 + float(summary["hold_return_pct"]) / 100)
    hold_path = _hold_path(candles, summary)
    value_axes.plot(times, outcome.values, color="#2166ac", linewidth=1.0, label="portfolio")
    value_axes.plot(times, hold_path, color="#999999", linewidth=0.8, label="holding the start")
    value_axes.axhline(start_value, color="#cccccc", linewidth=0.6)
    value_axes.set_ylabel("value (USD)")
    value_axes.legend(loc="upper left", title=f"held: {held:,.0f} USD")
    value_axes.grid(alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI)
    return buffer.getvalue()


def _hold_path(candles: Candles, summary: dict[str, Any]) -> Any:
    """The starting balances' value at each close."""
    start = summary["start_balances"]
    base = float(start.get(summary["base"], 0))
    quote = float(start.get(summary["quote"], 0))
    return base * candles.close + quote


def report_html(png: bytes, summary: dict[str, Any]) -> str:
    """A standalone HTML page: the summary's figures as a table, and the chart embedded."""
    rows = "\n".join(
        f"<tr><th>{html.escape(label)}</th><td>{html.escape(value)}</td></tr>"
        for label, value in table_rows(summary)
    )
    gaps = "".join(
        f"<li>after {html.escape(str(gap['after']))}: {gap['missing']} candles missing</li>"
        for gap in summary["gaps"]
    )
    image = base64.b64encode(png).decode("ascii")
    title = f"tee-agent backtest: {summary['pair']}, {summary['policy']} policy"
    return f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1.5em; }}
th, td {{ padding: 0.25em 1em; border-bottom: 1px solid #ddd; text-align: left; }}
th {{ font-weight: normal; color: #555; }}
</style></head>
<body>
<h1>{html.escape(title)}</h1>
<table>
{rows}
</table>
{f"<h2>Gaps in the candles</h2><ul>{gaps}</ul>" if gaps else ""}
<img alt="price, trades and portfolio value" width="{CHART_WIDTH}" height="{CHART_HEIGHT}"
 src="data:image/png;base64,{image}">
<p>Config hash {html.escape(str(summary["config_hash"]))}, model hash
{html.escape(str(summary["model_hash"]))}. Swaps filled at the candle's close less a
{summary["fee_bps"]} bps pool fee and {summary["slippage_bps"]} bps slippage; no chain.</p>
</body>
</html>
"""


def write_outputs(
    candles: Candles,
    gaps: list[Gap],
    outcome: Outcome,
    summary: dict[str, Any],
    chart: Path | None,
    report: Path | None,
) -> None:
    """Write the chart PNG and/or the HTML report, when asked.

    Raises:
        ChartError: a file cannot be written.
    """
    if chart is None and report is None:
        return
    png = chart_png(candles, gaps, outcome, summary)
    for path, data in ((chart, png), (report, None)):
        if path is None:
            continue
        try:
            if data is not None:
                path.write_bytes(data)
            else:
                path.write_text(report_html(png, summary), encoding="utf-8")
        except OSError as exc:
            raise ChartError(f"cannot write {path}: {exc.strerror or exc}") from None
