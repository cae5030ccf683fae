"""Candles per second through `tee-agent backtest`, beside the live enclave's decision path.

Rule policy: the whole bundled ETH/USDT file (10,235 hourly candles, one decision each)
through `backtest.simulation.Simulation` (the enclave's `DecisionEngine` in process, each
signed swap filled at the close). Baseline, in the same run on the same candles: the live
path, an `EnclaveCore` on the simulated platform driven as a host with a chain drives it:
one Ingest per candle with the balances and the close as the TWAP, its state sealed, then
the outputs released and each signed swap filled by the same fill code. Target: >= 5,000
candles/s.

LLM policy (SmolLM2-135M, when installed): LLM_CANDLES candles from row LLM_START through the
backtest, beside the model's own decode of the very same prompts: llama-cpp-python's
`create_completion` with the same grammar, greedy, on the same loaded model. Target: the
backtest within 5 % of the model's own speed. From its rate, the time a year of hourly
candles would take (target: 30 minutes); `--llm-year` runs that year for real (2022, 8,760
candles, about 25 minutes on 2 cores) and prints its wall time.
"""

from __future__ import annotations

import tempfile
import time
from decimal import Decimal
from pathlib import Path

from backtest.candles import Candles, read_candle_file
from backtest.cli import backtest_config, starting_balances
from backtest.fills import Fill, FillCosts, fill_swap
from backtest.simulation import Simulation
from enclave.config import EnclaveConfig
from enclave.core import EnclaveCore
from enclave.llm_policy import LlamaPolicy, packaged_model
from enclave.platform.sim import SimPlatform
from enclave.platform.sim_pki import create_sim_pki
from enclave.policy import Decision, MarketView, Policy
from enclave.server import make_policy
from enclave.state import PendingReceipt
from enclave.vault_trades import plan_swap
from wire.ticks import TickColumns

REPO = Path(__file__).resolve().parent.parent
CANDLES = REPO / "data" / "market" / "eth-usdt-binance-1h-2022-2023.csv"
RULE_TARGET = 5_000
LLM_START = 3_000
LLM_CANDLES = 120
LLM_TARGET = 0.05
YEAR_CANDLES = 8_760
YEAR_TARGET_MINUTES = 30
# The init config's long_window: the candles the policy holds on before it has its averages.
WARM_UP = 48


def backtest_rate(config: EnclaveConfig, policy: Policy, candles: Candles) -> tuple[float, int]:
    """(candles per second, trades) of a backtest from the demo's balances."""
    pair = config.pairs[0]
    simulation = Simulation(config, policy, pair, starting_balances(config, pair, []), FillCosts())
    outcome = simulation.run(candles)
    return len(candles) / outcome.seconds, len(outcome.trades)


def live_rate(config: EnclaveConfig, policy: Policy, candles: Candles) -> tuple[float, int]:
    """(candles per second, trades) through an EnclaveCore, one Ingest and Release a candle."""
    pair = config.pairs[0]
    base, quote = config.tokens[pair.base], config.tokens[pair.quote]
    balances = starting_balances(config, pair, [])
    costs, trades = FillCosts(), 0
    with tempfile.TemporaryDirectory() as directory:
        sim_dir = Path(directory) / "sim"
        create_sim_pki(sim_dir)
        platform = SimPlatform(sim_dir, config_hash=config.config_hash(), model_hash=None)
        core = EnclaveCore(platform, config, policy, clock=lambda: 0.0)
        core.open(b"")
        started = time.perf_counter()
        for index, close in enumerate(candles.close.tolist()):
            window = slice(index, index + 1)
            columns = TickColumns(
                pair.symbol, candles.seq[window], candles.timestamp_ms[window],
                candles.close[window], candles.volume[window],
            )  # fmt: skip
            sealed, _ = core.ingest([columns], None, balances, 0, {pair.symbol: close})
            released = core.release(sealed.state_version)
            price = Decimal(repr(close))
            for record in released.receipts:
                if record.receipt.verdict != "signed":
                    continue
                decision = Decision.model_validate_json(record.decision_json)
                selling = decision.action == "sell"
                paid, got = (pair.base, pair.quote) if selling else (pair.quote, pair.base)
                fill = fill_swap(
                    plan_swap(config, pair, decision, price), selling=selling, price=price,
                    base_decimals=base.decimals, quote_decimals=quote.decimals,
                    balance_in=balances[paid], costs=costs,
                )  # fmt: skip
                if isinstance(fill, Fill):
                    balances[paid] -= fill.amount_in
                    balances[got] += fill.amount_out
                    trades += 1
        elapsed = time.perf_counter() - started
    return len(candles) / elapsed, trades


def rule(candles: Candles) -> None:
    config = backtest_config(None, "rule")
    ours, our_trades = backtest_rate(config, make_policy(config), candles)
    live, live_trades = live_rate(config, make_policy(config), candles)
    print(f"backtest: rule policy, {len(candles)} ETH/USDT hourly candles, one decision each")
    print(f"  backtest (DecisionEngine + fills)   {ours:10.0f} candles/s  ({our_trades} trades)")
    print(f"  live path (EnclaveCore, baseline)   {live:10.0f} candles/s  ({live_trades} trades)")
    print(f"  backtest / live                     {ours / live:10.2f}x  (target >= {RULE_TARGET} candles/s)")  # fmt: skip


def llm(candles: Candles, model: Path) -> None:
    config = backtest_config(None, "llm")
    policy = make_policy(config, model)
    assert isinstance(policy, LlamaPolicy) and config.policy.llm is not None
    views: list[MarketView] = []

    def keep(pending: PendingReceipt) -> None:
        if pending.decision_json:
            views.append(MarketView.model_validate_json(pending.input_json))

    pair = config.pairs[0]
    balances = starting_balances(config, pair, [])
    simulation = Simulation(config, policy, pair, balances, FillCosts(), keep)
    # The policy holds until it has long_window closes: those candles warm the enclave up,
    # unmeasured, and the candles after them each ask the model.
    warm = config.policy.rule.long_window
    simulation.run(_part(candles, 0, warm))
    views.clear()
    measured = _part(candles, warm, len(candles))
    outcome = simulation.run(measured)
    ours = len(measured) / outcome.seconds
    llama = policy._llm
    grammar = policy._grammar  # the policy's own (compact JSON) grammar
    prompts = [
        policy._prefix_tokens + policy._tokenize(policy.prompt_suffix(view), bos=False)
        for view in views
    ]
    started = time.perf_counter()
    for prompt in prompts:
        llama.create_completion(
            prompt, max_tokens=config.policy.llm.max_tokens, temperature=0.0, top_k=1,
            grammar=grammar,
        )  # fmt: skip
    theirs = len(prompts) / (time.perf_counter() - started)
    print(
        f"backtest: LLM policy (SmolLM2-135M), {len(measured)} ETH/USDT candles after {warm} "
        "to warm up (the policy holds until it has its averages)"
    )
    print(f"  backtest                            {ours:10.2f} candles/s  ({len(outcome.trades)} trades)")  # fmt: skip
    print(f"  model's own decode (baseline)       {theirs:10.2f} decisions/s  (create_completion, same prompts)")  # fmt: skip
    print(f"  backtest / model's own decode       {ours / theirs:10.2f}x  (target: at most {LLM_TARGET:.0%} slower, >= {1 - LLM_TARGET:.2f}x)")  # fmt: skip
    print(
        f"  a year ({YEAR_CANDLES:,} candles) at this rate  {YEAR_CANDLES / ours / 60:8.1f} min"
        f"  (target <= {YEAR_TARGET_MINUTES} min; the model's own decode: "
        f"{YEAR_CANDLES / theirs / 60:.1f} min)"
    )


def llm_year(candles: Candles, model: Path) -> None:
    """The LLM policy over all of 2022, for real: wall time beside the 30-minute target."""
    config = backtest_config(None, "llm")
    pair = config.pairs[0]
    year = _part(candles, 0, YEAR_CANDLES)
    started = time.perf_counter()
    policy = make_policy(config, model)
    simulation = Simulation(config, policy, pair, starting_balances(config, pair, []), FillCosts())
    outcome = simulation.run(year)
    minutes = (time.perf_counter() - started) / 60
    print(f"backtest: LLM policy (SmolLM2-135M) over a year, {len(year):,} hourly candles of 2022")
    print(
        f"  wall time, model load included      {minutes:10.1f} min  (target <= "
        f"{YEAR_TARGET_MINUTES} min; {len(outcome.trades)} trades, policy "
        f"{outcome.decision_seconds / 60:.1f} min)"
    )


def main(llm_candles: int = LLM_CANDLES, *, llm_year_run: bool = False) -> None:
    candles = read_candle_file(CANDLES)
    rule(candles)
    model = packaged_model()
    if model is None:
        print("backtest: SmolLM2 not installed (./scripts/bootstrap installs it); LLM skipped")
        return
    llm(_part(candles, LLM_START - WARM_UP, LLM_START + llm_candles), model)
    if llm_year_run:
        llm_year(candles, model)


def _part(candles: Candles, start: int, stop: int) -> Candles:
    """Candles [start, stop)."""
    return Candles(
        candles.seq[start:stop], candles.timestamp_ms[start:stop],
        candles.close[start:stop], candles.volume[start:stop],
    )  # fmt: skip


if __name__ == "__main__":
    import sys

    main(llm_year_run="--llm-year" in sys.argv[1:])
