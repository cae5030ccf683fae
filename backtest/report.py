"""A backtest's chart and its HTML report: the figures as a table with the chart embedded
(base64), so the report is one file that opens anywhere."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from backtest.candles import Candles, Gap
from backtest.chart import CHART_HEIGHT, CHART_WIDTH, ChartData, ChartError, draw
from backtest.simulation import Outcome
from backtest.summary import table_rows


def chart_png(
    candles: Candles, gaps: list[Gap], outcome: Outcome, summary: dict[str, Any]
) -> bytes:
    """A backtest's chart as PNG bytes."""
    return draw(backtest_chart(candles, gaps, outcome, summary))


def backtest_chart(
    candles: Candles, gaps: list[Gap], outcome: Outcome, summary: dict[str, Any]
) -> ChartData:
    """What a backtest's chart draws: the closes, the fills, the value after each candle,
    and each gap shaded from its last candle to the next."""
    interval = max(candles.interval_ms(), 1)
    title = (
        f"{summary['pair']} {summary['policy']} policy: return {summary['return_pct']:+.2f} %, "
        f"holding {summary['hold_return_pct']:+.2f} %, buy and hold "
        f"{summary['buy_and_hold_return_pct']:+.2f} %, {summary['trades']} trades"
        + (f", {len(gaps)} gap{'' if len(gaps) == 1 else 's'} (shaded)" if gaps else "")
    )
    return ChartData(
        title=title,
        price_label=summary["pair"],
        times_ms=candles.timestamp_ms,
        prices=candles.close,
        values=outcome.values,
        held=_hold_path(candles, summary),
        start_value=float(summary["start_value_usd"]),
        trades=outcome.trades,
        shaded_ms=[(gap.after_ms, gap.after_ms + (gap.missing + 1) * interval) for gap in gaps],
    )


def _hold_path(candles: Candles, summary: dict[str, Any]) -> npt.NDArray[np.float64]:
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
