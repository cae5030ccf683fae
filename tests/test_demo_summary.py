"""The demo's summary, from its --json line: the portfolio's change and the difference to
holding are two figures, each computed as it says (the first once passed off the second as
"PnL": the portfolio fell 188 USD while it said +104); and the chart it writes."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from tests.chart_image import open_chart, shows_trades
from tests.needs_anvil import skip_without_anvil

ROOT = Path(__file__).resolve().parent.parent
START = {"WETH": Decimal(2), "USD": Decimal(10_000)}  # what the demo deposits in the vault


def test_the_rule_demo_reports_the_portfolio_s_change_and_the_difference_to_holding(
    tmp_path: Path,
) -> None:
    skip_without_anvil()
    chart = tmp_path / "demo.png"
    done = subprocess.run(
        [sys.executable, "-m", "devnet.demo", "--policy", "rule", "--hours", "36",
         "--chart", str(chart), "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["trades"] > 0
    start_price, end_price = (
        Decimal(repr(summary["price_start"])),
        Decimal(repr(summary["price_end"])),
    )
    weth, usd = Decimal(summary["position"]["WETH"]), Decimal(summary["position"]["USD"])
    start_value = START["WETH"] * start_price + START["USD"]
    end_value = weth * end_price + usd
    held_value = START["WETH"] * end_price + START["USD"]
    cent = Decimal("0.02")  # rounding of the printed prices and position
    assert abs(Decimal(repr(summary["value_start_usd"])) - start_value) <= cent
    assert abs(Decimal(repr(summary["value_end_usd"])) - end_value) <= Decimal(1)
    assert abs(Decimal(repr(summary["change_usd"])) - (end_value - start_value)) <= Decimal(1)
    assert abs(Decimal(repr(summary["vs_hold_usd"])) - (end_value - held_value)) <= Decimal(1)
    assert "pnl_usd" not in summary
    # The backtest's chart of the run: a real PNG of its size, with the trades marked.
    assert summary["chart"] == str(chart)
    assert shows_trades(open_chart(chart), summary["buys"], summary["sells"])


def test_an_unwritable_chart_path_is_refused_before_the_run(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    done = subprocess.run(
        [sys.executable, "-m", "devnet.demo", "--chart", str(blocker / "sub" / "chart.png")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--chart" in done.stderr and "Traceback" not in done.stderr
