"""The backtest's loop: every candle through the enclave's own decision path, every signed
swap filled at the candle's close.

The enclave's `DecisionEngine` runs in this process on a fresh `EnclaveState` (a throwaway
key that never leaves it), as `EnclaveCore.ingest` runs it: each candle is one tick (its
close, its volume, its open time), one Ingest of its own, with the simulated portfolio as
the balances (smallest units) and the close as the pair's TWAP (no chain, so no on-chain
TWAP: the TWAP-deviation guardrail sees the close). The enclave's clock is the candle's
time, so a config on the wall clock accepts history too. After each candle the receipts and
transactions it produced are read and dropped, so memory stays bounded on any length.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from backtest.candles import Candles
from backtest.fills import Fill, FillCosts, fill_swap
from enclave.config import EnclaveConfig, Pair
from enclave.decisions import DecisionEngine
from enclave.policy import Decision, Policy
from enclave.refusals import VERDICT_PREFIX
from enclave.signer import AccountSigner
from enclave.state import EnclaveState, PendingReceipt
from enclave.vault_trades import plan_swap
from wire.ticks import TickColumns

REFUSED_PREFIX = "refused:"


@dataclass(frozen=True)
class Trade:
    """A filled swap: when, at what close, which way, and the amounts in whole tokens."""

    timestamp_ms: int
    side: str  # "buy" or "sell" (of the base asset)
    price: float
    base_amount: float
    quote_amount: float
    receipt_seq: int


@dataclass
class Outcome:
    """What a backtest produced, candle by candle and in total."""

    values: npt.NDArray[np.float64]
    start_balances: dict[str, int]
    end_balances: dict[str, int]
    trades: list[Trade] = field(default_factory=list)
    holds: int = 0
    decisions: int = 0
    receipts: int = 0
    # Guardrail refusals by guardrail, and ticks the enclave refused by reason.
    refusals: Counter[str] = field(default_factory=Counter)
    tick_refusals: Counter[str] = field(default_factory=Counter)
    reverts: Counter[str] = field(default_factory=Counter)
    fees_quote: Decimal = Decimal(0)
    slippage_quote: Decimal = Decimal(0)
    decision_seconds: float = 0.0
    seconds: float = 0.0


ReceiptSink = Callable[[PendingReceipt], None]


class Simulation:
    """One backtest of `policy` under `config` on `pair`, from `balances` (smallest units)."""

    def __init__(
        self,
        config: EnclaveConfig,
        policy: Policy,
        pair: Pair,
        balances: dict[str, int],
        costs: FillCosts,
        on_receipt: ReceiptSink | None = None,
    ) -> None:
        self.config = config
        self.pair = pair
        self.costs = costs
        self.balances = dict(balances)
        self.on_receipt = on_receipt
        self.state = EnclaveState.fresh()
        signer = AccountSigner.from_bytes(self.state.account_secret)
        self.engine = DecisionEngine(config, policy, signer, config.config_hash())
        self._base = config.tokens[pair.base]
        self._quote = config.tokens[pair.quote]
        self._base_unit = float(10**self._base.decimals)
        self._quote_unit = float(10**self._quote.decimals)

    def run(
        self, candles: Candles, progress: Callable[[int], None] | None = None, every: int = 256
    ) -> Outcome:
        """Every candle in turn; `progress(n)` is told of every `every` candles done."""
        started = time.perf_counter()
        outcome = Outcome(
            values=np.empty(len(candles), dtype=np.float64),
            start_balances=dict(self.balances),
            end_balances=self.balances,
        )
        symbol = self.pair.symbol
        closes, stamps = candles.close.tolist(), candles.timestamp_ms.tolist()
        done = 0
        for index, close in enumerate(closes):
            columns = TickColumns(
                symbol,
                candles.seq[index : index + 1],
                candles.timestamp_ms[index : index + 1],
                candles.close[index : index + 1],
                candles.volume[index : index + 1],
            )
            self.engine.report_twaps({symbol: close})
            now_ms = stamps[index]
            self.engine.ingest(self.state, [columns], None, self.balances, now_ms)
            outcome.decision_seconds += sum(self.engine.decision_seconds)
            self._collect(outcome, close, now_ms)
            outcome.values[index] = self.value(close)
            done += 1
            if progress is not None and done == every:
                progress(done)
                done = 0
        if progress is not None and done:
            progress(done)
        outcome.seconds = time.perf_counter() - started
        return outcome

    def value(self, close: float) -> float:
        """The portfolio at `close`, in the quote token (a USD stablecoin)."""
        base = self.balances.get(self.pair.base, 0) / self._base_unit
        quote = self.balances.get(self.pair.quote, 0) / self._quote_unit
        return base * close + quote

    def _collect(self, outcome: Outcome, close: float, now_ms: int) -> None:
        """Read and drop what the candle produced: count the receipts, fill the swaps."""
        state = self.state
        signed: list[PendingReceipt] = []
        for pending in state.pending_receipts:
            outcome.receipts += 1
            verdict = str(pending.receipt["verdict"])
            if pending.decision_json:
                outcome.decisions += 1
            if verdict == "hold":
                outcome.holds += 1
            elif verdict == "signed":
                signed.append(pending)
            elif verdict.startswith(REFUSED_PREFIX):
                outcome.refusals[verdict.removeprefix(REFUSED_PREFIX)] += 1
            elif verdict.startswith(VERDICT_PREFIX):
                outcome.tick_refusals.update(_refused_by_reason(pending.input_json))
            if self.on_receipt is not None:
                self.on_receipt(pending)
        state.pending_receipts.clear()
        state.pending_transactions.clear()
        for pending in signed:
            decision = Decision.model_validate_json(pending.decision_json)
            self._fill(outcome, decision, close, now_ms, int(str(pending.receipt["seq"])))

    def _fill(
        self, outcome: Outcome, decision: Decision, close: float, now_ms: int, seq: int
    ) -> None:
        # The swap as the enclave planned and signed it: the same function, the same price.
        price = Decimal(repr(close))
        plan = plan_swap(self.config, self.pair, decision, price)
        selling = decision.action == "sell"
        paid, got = (
            (self.pair.base, self.pair.quote) if selling else (self.pair.quote, self.pair.base)
        )
        result = fill_swap(
            plan,
            selling=selling,
            price=price,
            base_decimals=self._base.decimals,
            quote_decimals=self._quote.decimals,
            balance_in=self.balances.get(paid, 0),
            costs=self.costs,
        )
        if not isinstance(result, Fill):
            outcome.reverts[result.reason] += 1
            return
        self.balances[paid] = self.balances.get(paid, 0) - result.amount_in
        self.balances[got] = self.balances.get(got, 0) + result.amount_out
        outcome.fees_quote += result.fee_quote
        outcome.slippage_quote += result.slippage_quote
        base_units, quote_units = (
            (result.amount_in, result.amount_out)
            if selling
            else (result.amount_out, result.amount_in)
        )
        outcome.trades.append(
            Trade(
                timestamp_ms=now_ms,
                side=decision.action,
                price=close,
                base_amount=base_units / self._base_unit,
                quote_amount=quote_units / self._quote_unit,
                receipt_seq=seq,
            )
        )


def _refused_by_reason(input_json: str) -> dict[str, int]:
    """The counts by reason of a "ticks_refused" receipt's input (`enclave.refusals`)."""
    summary = json.loads(input_json)
    by_reason = summary.get("by_reason", {}) if isinstance(summary, dict) else {}
    return {str(reason): int(count) for reason, count in by_reason.items()}
