"""`tee-agent backtest`: a policy over a candles file, through the enclave's decision path.

Exit codes: 0 the backtest ran (its figures are on stdout: a table, or with --json one JSON
object on one line); 2 the input cannot be used (a missing or malformed candles file or
config, an unknown --balance symbol or --pair, --start not before --end, no candles in the
range, no model for the LLM policy), with a one-line message on stderr (and with --json
the object {"error": message} on stdout).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any

from tqdm import tqdm

from backtest.candles import CandleFileError, read_candle_file
from backtest.chart import ChartError
from backtest.fills import FillCosts
from backtest.report import write_outputs
from backtest.simulation import Simulation
from backtest.summary import RunFacts, summarise, table
from enclave.config import ConfigError, EnclaveConfig, Pair, PolicyConfig, load_config
from enclave.policy import ModelError
from enclave.server import make_policy
from enclave.state import PendingReceipt
from enclave.transactions import to_units
from host.agent_directory import enclave_config
from host.bundled import bundled_example
from host.cli.outcome import EXIT_OK, EXIT_USAGE, UsageError

# The demo's starting portfolio: 2 of the base asset and 10,000 of the quote token.
DEFAULT_BASE_BALANCE = Decimal(2)
DEFAULT_QUOTE_BALANCE = Decimal(10_000)
# The owner key of the default config: no one holds it, and no backtest needs an owner.
_PLACEHOLDER_OWNER = "00" * 32
# Where `--policy llm` takes its [policy.llm] table when the config has none.
LLM_EXAMPLE = bundled_example("enclave-llm.toml")
# A progress bar (on a terminal's stderr) for runs of at least this many candles.
_PROGRESS_CANDLES = {"rule": 20_000, "llm": 50}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def run(args: argparse.Namespace) -> int:
    """Run the backtest `args` describe; print its figures; return the exit code."""
    try:
        return _run(args)
    except (UsageError, CandleFileError, ConfigError, ModelError, ChartError) as exc:
        message = f"tee-agent backtest: {exc}"
        print(message, file=sys.stderr)
        if args.json:
            print(json.dumps({"error": message}))
        return EXIT_USAGE


def _run(args: argparse.Namespace) -> int:
    start_ms, end_ms = time_ms(args.start, "--start"), time_ms(args.end, "--end")
    if start_ms is not None and end_ms is not None and start_ms >= end_ms:
        raise UsageError(f"--start {args.start} is not before --end {args.end}")
    costs = FillCosts(_bps(args.fee_bps, "--fee-bps"), _bps(args.slippage_bps, "--slippage-bps"))
    config = backtest_config(args.config, args.policy)
    pair = _pair(config, args.pair)
    balances = starting_balances(config, pair, args.balance)
    candles = read_candle_file(args.candles).between(start_ms, end_ms)
    if len(candles) == 0:
        raise UsageError(f"{args.candles}: no candles {_range_text(args.start, args.end)}")
    gaps = candles.gaps()
    for gap in gaps:
        after = gap.as_dict()["after"]
        print(f"gap: {gap.missing} candles missing after {after}", file=sys.stderr)
    policy = make_policy(config, args.model)
    with _receipt_sink(args.receipts) as sink:
        simulation = Simulation(config, policy, pair, balances, costs, sink)
        with _progress(len(candles), config.policy.kind) as progress:
            every = 1 if config.policy.kind == "llm" else 256
            outcome = simulation.run(candles, progress, every)
    facts = RunFacts(
        config, pair, policy.name, policy.model_hash, costs.fee_bps, costs.slippage_bps
    )
    summary = summarise(candles, gaps, outcome, facts)
    summary["chart"] = str(args.chart) if args.chart else None
    summary["report"] = str(args.report) if args.report else None
    write_outputs(candles, gaps, outcome, summary, args.chart, args.report)
    if args.json:
        print(json.dumps(summary))
    else:
        print(table(summary))
        for label, path in (("chart", args.chart), ("report", args.report)):
            if path:
                print(f"wrote the {label} to {path}")
    return EXIT_OK


def time_ms(text: str | None, option: str) -> int | None:
    """A time as epoch milliseconds: ISO 8601 (a date is its midnight, no zone is UTC) or
    epoch milliseconds; None for None.

    Raises:
        UsageError: neither.
    """
    if text is None:
        return None
    if text.isascii() and text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"{option} {text!r} is not a time: use ISO 8601 (2022-06-01 or "
            "2022-06-01T12:00:00Z) or epoch milliseconds"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _bps(value: int, option: str) -> int:
    if not 0 <= value < 10_000:
        raise UsageError(f"{option} {value} must be 0 to 9999 basis points")
    return value


def backtest_config(path: Path | None, kind: str | None) -> EnclaveConfig:
    """The measured config as given (default: the one `init` writes), with the policy asked
    for: `--policy llm` on a config without [policy.llm] takes that of the example LLM
    config. Raises ConfigError, UsageError."""
    config = load_config(path) if path is not None else enclave_config(_PLACEHOLDER_OWNER)
    if kind is None or kind == config.policy.kind:
        return config
    llm = config.policy.llm
    if kind == "llm" and llm is None:
        if not LLM_EXAMPLE.is_file():
            raise UsageError(
                "--policy llm: the config has no [policy.llm] table; pass --config with one"
            )
        llm = load_config(LLM_EXAMPLE).policy.llm
    policy = PolicyConfig(kind="llm" if kind == "llm" else "rule", rule=config.policy.rule, llm=llm)
    return config.model_copy(update={"policy": policy})


def _pair(config: EnclaveConfig, symbol: str | None) -> Pair:
    if symbol is None:
        return config.pairs[0]
    pair = config.pair(symbol)
    if pair is None:
        known = ", ".join(p.symbol for p in config.pairs)
        raise UsageError(f"--pair {symbol} is not in the config's pairs ({known})")
    return pair


def starting_balances(config: EnclaveConfig, pair: Pair, given: list[str]) -> dict[str, int]:
    """The starting portfolio in smallest units: 2 of the pair's base asset and 10,000 of
    its quote token, each replaced by a `SYMBOL=AMOUNT` given (whole tokens).

    Raises:
        UsageError: not SYMBOL=AMOUNT, a symbol not among the config's tokens, an amount
            that is not a number 0 or above.
    """
    whole = {pair.base: DEFAULT_BASE_BALANCE, pair.quote: DEFAULT_QUOTE_BALANCE}
    for item in given:
        symbol, sep, amount = item.partition("=")
        if not sep:
            raise UsageError(f"--balance {item!r} is not SYMBOL=AMOUNT (e.g. WETH=2)")
        if symbol not in config.tokens:
            known = ", ".join(sorted(config.tokens))
            raise UsageError(f"--balance {symbol}: not a token of the config ({known})")
        try:
            value = Decimal(amount)
        except InvalidOperation:
            value = Decimal(-1)
        if not value.is_finite() or value < 0:
            raise UsageError(f"--balance {item!r}: the amount must be a number, 0 or more")
        whole[symbol] = value
    return {s: to_units(v, config.tokens[s].decimals) for s, v in whole.items()}


def _range_text(start: str | None, end: str | None) -> str:
    if start and end:
        return f"from {start} to before {end}"
    if start:
        return f"from {start} on"
    return f"before {end}" if end else "at all"


@contextmanager
def _receipt_sink(path: Path | None) -> Iterator[Callable[[PendingReceipt], None] | None]:
    """With a path: a function writing each receipt as a JSON line (receipt, decision and
    input texts) to it, as the run goes."""
    if path is None:
        yield None
        return
    try:
        stream: IO[str] = path.open("w", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--receipts {path}: cannot write: {exc.strerror or exc}") from None

    def write(pending: PendingReceipt) -> None:
        line: dict[str, Any] = {
            "receipt": pending.receipt,
            "decision_json": pending.decision_json,
            "input_json": pending.input_json,
        }
        stream.write(json.dumps(line, separators=(",", ":")) + "\n")

    with stream:
        yield write


@contextmanager
def _progress(total: int, kind: str) -> Iterator[Callable[[int], None] | None]:
    """A progress bar on stderr for a long run when stderr is a terminal (never on stdout)."""
    if total < _PROGRESS_CANDLES.get(kind, 0) or not sys.stderr.isatty():
        yield None
        return
    with tqdm(total=total, desc="backtest", unit="candle", file=sys.stderr) as bar:

        def update(done: int) -> None:
            bar.update(done)

        yield update
