"""`tee-agent backtest`, driven as a subprocess the way a user runs it: its JSON and exit
codes, gaps, freqtrade files, the chart, and the same decisions as a live enclave."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import rlp  # type: ignore[import-untyped]
from tee_agent_rpc import enclave_pb2 as pb
from tee_agent_rpc import messages_pb2 as messages

from backtest.fills import Fill, FillCosts, fill_swap
from enclave.llm_policy import sha256_file
from enclave.transactions import SwapPlan, decode_call
from host.agent_directory import enclave_config_text
from tests.chart_image import open_chart, shows_trades
from tests.enclave_harness import EnclaveWorld, config_toml
from wire.records import receipt_record

REPO = Path(__file__).resolve().parent.parent
ETH = REPO / "data" / "market" / "eth-usdt-binance-1h-2022-2023.csv"
# Two weeks of the bundled file: the rule policy warms up (48 closes) and then trades.
START, END = "2022-01-01", "2022-01-15"
HOUR_MS = 3_600_000


def backtest(*argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    beside_python = Path(sys.executable).parent / "tee-agent"
    script = str(beside_python) if beside_python.exists() else shutil.which("tee-agent")
    assert script is not None, "the tee-agent console script is not installed"
    return subprocess.run(
        [script, "backtest", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=REPO,
    )


def json_run(*argv: str) -> dict[str, Any]:
    done = backtest(*argv, "--json")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1, "--json prints one object on one line"
    summary: dict[str, Any] = json.loads(lines[0])
    return summary


def bundled_rows(start: str, end: str) -> list[dict[str, str]]:
    with ETH.open() as stream:
        return [row for row in csv.DictReader(stream) if start <= row["timestamp"][:10] < end]


def test_a_backtest_of_the_bundled_file_reports_consistent_figures(tmp_path: Path) -> None:
    chart, report = tmp_path / "chart.png", tmp_path / "report.html"
    summary = json_run(
        "--candles", str(ETH), "--start", START, "--end", END,
        "--chart", str(chart), "--report", str(report),
    )  # fmt: skip
    rows = bundled_rows(START, END)
    first, last = float(rows[0]["close"]), float(rows[-1]["close"])
    assert summary["candles"] == len(rows) == 14 * 24
    assert summary["first"] == rows[0]["timestamp"] and summary["last"] == rows[-1]["timestamp"]
    # The demo's starting portfolio, valued at the first close; holding it to the last.
    assert summary["start_balances"] == {"USDT": "10000", "WETH": "2"}
    assert summary["start_value_usd"] == pytest.approx(2 * first + 10_000, abs=0.01)
    held = (2 * last + 10_000) / (2 * first + 10_000) - 1
    assert summary["hold_return_pct"] == pytest.approx(held * 100, abs=1e-4)
    assert summary["buy_and_hold_return_pct"] == pytest.approx((last / first - 1) * 100, abs=1e-4)
    end = summary["end_balances"]
    end_value = float(end["WETH"]) * last + float(end["USDT"])
    assert summary["end_value_usd"] == pytest.approx(end_value, abs=0.01)
    start_value = summary["start_value_usd"]
    assert summary["return_pct"] == pytest.approx((end_value / start_value - 1) * 100, abs=1e-3)
    assert summary["trades"] == summary["buys"] + summary["sells"] > 0
    assert summary["decisions"] == summary["holds"] + summary["trades"] + sum(
        summary["refusals"].values()
    ) + sum(summary["reverted"].values())
    assert summary["fees_usd"] > 0 and 0 <= summary["max_drawdown_pct"] < 100
    assert summary["refusals"] == {} or all(v > 0 for v in summary["refusals"].values())
    assert summary["gaps"] == [] and summary["policy"] == "rule"
    # The chart is a real PNG of the documented size; the report embeds it with the figures.
    assert shows_trades(open_chart(chart), summary["buys"], summary["sells"])
    page = report.read_text()
    assert "data:image/png;base64," in page
    assert f"{summary['end_value_usd']} USD" in page and f"{summary['trades']}" in page


def test_a_table_is_printed_without_json() -> None:
    done = backtest("--candles", str(ETH), "--start", START, "--end", "2022-01-03")
    assert done.returncode == 0, done.stderr
    assert "end value" in done.stdout and "refusals by guardrail" in done.stdout
    assert "candles                      48" in done.stdout


def test_fees_and_slippage_cost_what_they_say() -> None:
    base = ("--candles", str(ETH), "--start", START, "--end", END)
    free = json_run(*base, "--fee-bps", "0", "--slippage-bps", "0")
    costly = json_run(*base, "--fee-bps", "40", "--slippage-bps", "0")
    assert free["fees_usd"] == 0 and free["slippage_usd"] == 0
    assert costly["fees_usd"] > 0 and costly["end_value_usd"] < free["end_value_usd"]
    # The rule signs a minimum out 50 bps below the close: a fill costing more reverts.
    too_costly = json_run(*base, "--fee-bps", "40", "--slippage-bps", "20")
    assert too_costly["trades"] == 0 and too_costly["fees_usd"] == 0
    assert too_costly["reverted"]["min_out"] > 0


def test_a_gap_in_the_candles_is_reported_not_filled(tmp_path: Path) -> None:
    path = tmp_path / "holes.csv"
    rows = bundled_rows(START, END)
    kept = rows[:100] + rows[104:]  # an outage of four hours after row 99
    with path.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(kept)
    done = backtest("--candles", str(path), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["candles"] == len(kept)
    assert summary["gaps"] == [{"after": rows[99]["timestamp"], "missing": 4}]
    assert f"gap: 4 candles missing after {rows[99]['timestamp']}" in done.stderr


def test_a_freqtrade_json_file_gives_the_same_backtest_as_its_csv(tmp_path: Path) -> None:
    rows = bundled_rows(START, END)
    path = tmp_path / "ETH_USDT-1h.json"
    path.write_text(
        json.dumps(
            [
                [
                    int(datetime.fromisoformat(row["timestamp"]).timestamp() * 1000),
                    *(float(row[k]) for k in ("open", "high", "low", "close", "volume")),
                ]
                for row in rows
            ]
        )
    )
    from_json = json_run("--candles", str(path))
    from_csv = json_run("--candles", str(ETH), "--start", START, "--end", END)
    for key in ("candles", "first", "last", "end_value_usd", "trades", "fees_usd", "refusals"):
        assert from_json[key] == from_csv[key], key


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--candles", "no/such/file.csv"], "cannot read"),
        (["--candles", "README.md"], "header"),
        (["--candles", str(ETH), "--balance", "DOGE=5"], "not a token of the config"),
        (["--candles", str(ETH), "--balance", "WETH=lots"], "must be a number"),
        (["--candles", str(ETH), "--start", "2022-02-01", "--end", "2022-01-01"], "not before"),
        (["--candles", str(ETH), "--start", "2030-01-01"], "no candles"),
        (["--candles", str(ETH), "--start", "yesterday"], "not a time"),
        (["--candles", str(ETH), "--fee-bps", "-1"], "basis points"),
        (["--candles", str(ETH), "--config", "README.md"], "not valid TOML"),
    ],
)
def test_input_that_cannot_be_used_exits_2_with_one_line(argv: list[str], message: str) -> None:
    done = backtest(*argv)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr
    as_json = backtest(*argv, "--json")
    assert as_json.returncode == 2
    (line,) = as_json.stdout.splitlines()
    assert message in json.loads(line)["error"]


def test_a_malformed_freqtrade_file_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("[[1640995200000, 1, 2, 3]]")
    done = backtest("--candles", str(path))
    assert done.returncode == 2 and "entry 0" in done.stderr and "Traceback" not in done.stderr


def test_the_llm_policy_backtests_with_a_model(tmp_path: Path, tiny_model: Path) -> None:
    # The tiny model's tokenizer packs the prompt worse than SmolLM2's: a larger context.
    config = tmp_path / "enclave.toml"
    config.write_text(config_toml("00" * 32, llm={"context_size": 8192, "max_tokens": 256}))
    summary = json_run(
        "--candles", str(ETH), "--start", START, "--end", "2022-01-02",
        "--config", str(config), "--model", str(tiny_model),
    )  # fmt: skip
    assert summary["policy"] == "llm" and summary["candles"] == 24
    assert summary["model_hash"] == "0x" + sha256_file(tiny_model).hex()
    assert summary["decisions"] == 24
    assert summary["trades"] == summary["buys"] + summary["sells"]


# --- the same decisions as a live enclave ----------------------------------------------


def live_receipts(world: EnclaveWorld, rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    """The rows as ticks through a real enclave process, one Ingest per candle, with the
    close as the TWAP and the balances a chain would show after filling what it signed (at
    the close, 30 bps fee, 10 bps slippage: the backtest's defaults)."""
    balances = {"WETH": 2 * 10**18, "USDT": 10_000 * 10**6}
    addresses = {"0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2": "WETH",
                 "0xdAC17F958D2ee523a2206206994597C13D831ec7": "USDT"}  # fmt: skip
    out: list[dict[str, Any]] = []
    with world.enclave() as enclave:
        stub = enclave.stub
        stub.Open(pb.OpenRequest())
        for seq, row in enumerate(rows, start=1):
            close = float(row["close"])
            stamp = int(datetime.fromisoformat(row["timestamp"]).timestamp() * 1000)
            batch = messages.TickBatch(
                pair="ETH/USDT", seq=[seq], timestamp_ms=[stamp], price=[close],
                volume=[float(row["volume"])],
            )  # fmt: skip
            response = stub.Ingest(
                pb.IngestRequest(
                    tick_batches=[batch.SerializeToString()],
                    balances={k: str(v) for k, v in balances.items()},
                    twap_prices={"ETH/USDT": close},
                )
            )
            released = stub.Release(pb.ReleaseRequest(state_version=response.state_version))
            for message in released.receipts:
                record = receipt_record(message)
                out.append(
                    {
                        "receipt": record.receipt.to_json_dict(),
                        "decision_json": record.decision_json,
                        "input_json": record.input_json,
                    }
                )
            for transaction in released.transactions:
                fields = rlp.decode(transaction.raw_transaction[1:])  # EIP-1559: 0x02 || rlp
                call = decode_call(fields[7])
                assert call is not None
                selling = addresses[call.token_in] == "WETH"
                plan = SwapPlan(call.token_in, call.token_out, call.amount_in, call.min_out, 0)
                paid, got = addresses[call.token_in], addresses[call.token_out]
                fill = fill_swap(
                    plan, selling=selling, price=Decimal(repr(close)), base_decimals=18,
                    quote_decimals=6, balance_in=balances[paid], costs=FillCosts(30, 10),
                )  # fmt: skip
                assert isinstance(fill, Fill)
                balances[paid] -= fill.amount_in
                balances[got] += fill.amount_out
    return out


def test_a_backtest_decides_as_the_live_enclave_does_on_the_same_candles(tmp_path: Path) -> None:
    world = EnclaveWorld(tmp_path)
    world.config_path.write_text(enclave_config_text(world.owner.verify_key.encode().hex()))
    rows = bundled_rows(START, "2022-01-06")
    receipts_file = tmp_path / "receipts.jsonl"
    summary = json_run(
        "--candles", str(ETH), "--start", START, "--end", "2022-01-06",
        "--config", str(world.config_path), "--receipts", str(receipts_file),
    )  # fmt: skip
    assert summary["trades"] > 0, "a comparison without trades would show little"
    ours = [json.loads(line) for line in receipts_file.read_text().splitlines()]
    live = live_receipts(world, rows)
    assert len(ours) == len(live) == summary["receipts"]
    for backtested, lived in zip(ours, live, strict=True):
        for key in ("decision_json", "input_json"):
            assert backtested[key] == lived[key]
        for key in ("seq", "verdict", "timestamp", "config_hash", "model_hash", "decision_hash",
                    "input_digest"):  # fmt: skip
            assert backtested["receipt"][key] == lived["receipt"][key], key
    signed = sum(1 for r in live if r["receipt"]["verdict"] == "signed")
    assert signed == summary["trades"] + sum(summary["reverted"].values())
