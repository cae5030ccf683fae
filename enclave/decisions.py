"""Per tick: check it, remember it, and when a decision is due ask the policy, build the
transaction, judge it by the guardrails, sign what passes, and write a receipt for all of it.
Runs of plainly acceptable ticks are checked and remembered together (`enclave.tick_columns`).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext

from attestation.receipt import receipt_hash
from enclave.config import EnclaveConfig, Pair
from enclave.guardrails import (
    DAY_SECONDS,
    GWEI,
    GuardrailContext,
    ProposedTransaction,
    SpendEntry,
    judge,
    notional_spent,
)
from enclave.market import features, refusal_reason, remember
from enclave.owner import OwnerCommand
from enclave.policy import Decision, MarketView, Policy, hold
from enclave.receipts import make_receipt
from enclave.signer import AccountSigner, Eip1559Transaction
from enclave.state import EnclaveState, PendingReceipt, PendingTransaction
from enclave.tick_columns import clean_prefix, first_due, remember_run
from enclave.transactions import (
    APPROVE_GAS,
    SWAP_DEADLINE_SECONDS,
    SWAP_GAS,
    SwapPlan,
    approve_calldata,
    swap_calldata,
    to_units,
)
from wire.ticks import DUPLICATE_SEQ, Tick, TickColumns

NO_HASH = bytes(32)
# Ticks `ingest` checks together at first, after a tick it had to take alone, and at most:
# a window doubles while it stays clean, so a long calm run costs a few numpy calls.
_FIRST_WINDOW = 1024
_RETRY_WINDOW = 16
_MAX_WINDOW = 1 << 16
# Ticks taken alone after one the window check stopped at, at most: the count doubles while
# the runs between such ticks stay short, so a hostile batch pays for a window check only
# every few dozen ticks and costs about what checking each tick alone does.
_MAX_ALONE = 64


@dataclass(frozen=True)
class FeeHint:
    max_fee_per_gas: int
    max_priority_fee_per_gas: int


class DecisionEngine:
    """The enclave's work on its state; everything it produces waits for Release."""

    def __init__(
        self, config: EnclaveConfig, policy: Policy, signer: AccountSigner, config_hash: bytes
    ) -> None:
        self.config = config
        self.policy = policy
        self.signer = signer
        self.config_hash = config_hash
        self._keep = max(config.policy.rule.long_window + 1, 64)
        # How long each decision of the last batch took (reported to the host's metrics).
        self.decision_seconds: list[float] = []

    def notional_spent(self, state: EnclaveState, now: int) -> Decimal:
        return notional_spent(state.spent, now)

    def ingest(
        self,
        state: EnclaveState,
        batches: Sequence[TickColumns],
        fees: FeeHint | None,
        balances: dict[str, int],
        now_ms: int,
    ) -> tuple[int, list[tuple[int, str]]]:
        """Take every tick of the batches in order, as `ingest_tick` would one by one: runs
        of plainly acceptable ticks together, any other tick alone."""
        accepted = 0
        refused: list[tuple[int, str]] = []
        self.decision_seconds = []
        for ticks in batches:
            # `alone`: ticks still to take one by one; `burst`: how many the next window
            # check that stops early sends that way.
            index, window, alone, burst = 0, _FIRST_WINDOW, 0, 1
            while index < len(ticks):
                if alone:
                    taken = ticks.ticks(index, index + alone)
                    for tick in taken:
                        reason = self.ingest_tick(state, tick, fees, balances, now_ms)
                        if reason is None:
                            accepted += 1
                        else:
                            refused.append((tick.seq, reason))
                    index, alone = index + len(taken), 0
                    continue
                stop = min(len(ticks), index + window)
                clean = clean_prefix(ticks, index, stop, state.market, self.config, now_ms)
                if clean:
                    accepted += clean
                    state.ticks_accepted += clean
                    self._accept_run(state, ticks, index, index + clean, fees, balances)
                    index += clean
                if index == stop:
                    window, burst = min(2 * window, _MAX_WINDOW), 1
                    continue
                # The tick at `index` failed the window check, and would fail it again: it
                # goes alone, and while the clean runs stay short so do more after it.
                if clean >= _RETRY_WINDOW:
                    burst = 1
                window, alone, burst = _RETRY_WINDOW, burst, min(2 * burst, _MAX_ALONE)
        return accepted, refused

    def _accept_run(
        self,
        state: EnclaveState,
        ticks: TickColumns,
        start: int,
        stop: int,
        fees: FeeHint | None,
        balances: dict[str, int],
    ) -> None:
        """Remember the accepted ticks [start, stop), deciding at every tick a decision is due."""
        interval_ms = self.config.market.decision_interval_seconds * 1000
        while start < stop:
            due_ms = None if state.last_decision is None else state.last_decision + interval_ms
            due = first_due(ticks, start, stop, due_ms)
            upto = stop if due is None else due + 1
            remember_run(ticks, start, upto, state.market, self._keep)
            start = upto
            if due is not None:
                tick = ticks.tick(due)
                state.last_decision = tick.timestamp_ms
                self._decide(state, tick, fees, balances)

    def ingest_tick(
        self,
        state: EnclaveState,
        tick: Tick,
        fees: FeeHint | None,
        balances: dict[str, int],
        now_ms: int,
    ) -> str | None:
        """Check one tick; remember it and decide when a decision is due, or refuse it with
        a receipt. Returns the refusal reason, or None when accepted."""
        reason = refusal_reason(tick, state.market, self.config, now_ms)
        if reason is not None:
            state.ticks_refused += 1
            if reason != DUPLICATE_SEQ:  # a replayed tick is not a new observation
                self._receipt(
                    state,
                    verdict=f"refused:{reason}",
                    input_json=_canonical(tick.as_dict()),
                    decision_json="",
                    tx_hash=NO_HASH,
                    timestamp=max(tick.timestamp_ms, 0) // 1000,
                )
            return reason
        remember(tick, state.market, self._keep)
        state.ticks_accepted += 1
        interval_ms = self.config.market.decision_interval_seconds * 1000
        if state.last_decision is None or tick.timestamp_ms - state.last_decision >= interval_ms:
            state.last_decision = tick.timestamp_ms
            self._decide(state, tick, fees, balances)
        return None

    def apply_owner_command(
        self, state: EnclaveState, command: OwnerCommand, timestamp: int
    ) -> tuple[int, list[tuple[int, str]]]:
        state.owner_counter = command.counter
        state.paused = command.action == "pause"
        self._receipt(
            state,
            verdict=f"owner:{command.action}",
            input_json=_canonical(command.model_dump()),
            decision_json="",
            tx_hash=NO_HASH,
            timestamp=timestamp,
        )
        return 0, []

    # -- one decision ---------------------------------------------------------------------

    def _decide(
        self, state: EnclaveState, tick: Tick, fees: FeeHint | None, balances: dict[str, int]
    ) -> None:
        pair = self.config.pair(tick.pair)
        assert pair is not None  # refusal_reason refused unknown pairs
        view = self._view(state, pair, tick, balances)
        started = time.perf_counter()
        decision = self._ask_policy(view)
        self.decision_seconds.append(time.perf_counter() - started)
        input_json = view.canonical_json()
        decision_json = decision.canonical_json()
        timestamp = tick.timestamp_ms // 1000
        if decision.action == "hold" or decision.amount == 0:
            self._receipt(state, "hold", input_json, decision_json, NO_HASH, timestamp)
            return
        price = Decimal(repr(tick.price))
        plan = self._plan(pair, decision, price)
        max_fee, priority = self._fees(fees)
        swap = ProposedTransaction(
            chain_id=self.config.chain.chain_id,
            to=self.config.chain.router,
            value=0,
            data=swap_calldata(
                plan,
                (plan.token_in, plan.token_out),
                self.signer.address,
                timestamp + SWAP_DEADLINE_SECONDS,
            ),
            max_fee_per_gas=max_fee,
        )
        context = GuardrailContext(
            address=self.signer.address,
            pair=pair,
            price=price,
            now=timestamp,
            paused=state.paused,
            last_trade=state.last_trade,
            spent=state.spent,
            max_slippage_bps_requested=decision.max_slippage_bps,
        )
        verdict = judge(swap, context, self.config)
        if not verdict.allowed:
            self._receipt(
                state, f"refused:{verdict.reason}", input_json, decision_json, NO_HASH, timestamp
            )
            return
        token_in = pair.quote if decision.action == "buy" else pair.base
        if token_in not in state.approved_tokens:
            approve = ProposedTransaction(
                chain_id=swap.chain_id,
                to=self.config.tokens[token_in].address,
                value=0,
                data=approve_calldata(self.config.chain.router),
                max_fee_per_gas=max_fee,
            )
            if judge(approve, context, self.config).allowed:
                self._sign(
                    state, approve, APPROVE_GAS, priority, input_json, decision_json, timestamp
                )
                state.approved_tokens.append(token_in)
        self._sign(state, swap, SWAP_GAS, priority, input_json, decision_json, timestamp)
        state.last_trade = timestamp
        state.spent = [e for e in state.spent if timestamp - e.timestamp < DAY_SECONDS]
        state.spent.append(SpendEntry(timestamp=timestamp, notional_usd=verdict.notional_usd))

    def _view(
        self, state: EnclaveState, pair: Pair, tick: Tick, balances: dict[str, int]
    ) -> MarketView:
        rule = self.config.policy.rule
        base, quote = self.config.tokens[pair.base], self.config.tokens[pair.quote]
        now = tick.timestamp_ms // 1000
        rails = self.config.guardrails
        return MarketView(
            pair=pair.symbol,
            base=pair.base,
            quote=pair.quote,
            timestamp=now,
            features=features(
                state.market.closes[pair.symbol], rule.short_window, rule.long_window
            ),
            base_balance=Decimal(balances.get(pair.base, 0)).scaleb(-base.decimals),
            quote_balance=Decimal(balances.get(pair.quote, 0)).scaleb(-quote.decimals),
            notional_left_today_usd=max(
                Decimal(0), rails.max_notional_per_day_usd - notional_spent(state.spent, now)
            ),
            max_notional_per_trade_usd=rails.max_notional_per_trade_usd,
        )

    def _ask_policy(self, view: MarketView) -> Decision:
        try:
            decision = self.policy.decide(view)
        except Exception as exc:
            return hold(view.pair, f"policy error: {type(exc).__name__}")
        if decision.pair != view.pair:
            return hold(view.pair, f"policy named pair {decision.pair[:25]!r}, not {view.pair}")
        return decision

    def _plan(self, pair: Pair, decision: Decision, price: Decimal) -> SwapPlan:
        with localcontext() as arithmetic:
            arithmetic.prec = 120  # exact for uint256 amounts, as in the guardrails
            return self._plan_exact(pair, decision, price)

    def _plan_exact(self, pair: Pair, decision: Decision, price: Decimal) -> SwapPlan:
        base, quote = self.config.tokens[pair.base], self.config.tokens[pair.quote]
        keep = 1 - Decimal(decision.max_slippage_bps) / 10_000
        if decision.action == "buy":
            amount_in = to_units(decision.amount * price, quote.decimals, round_up=True)
            expected = Decimal(amount_in).scaleb(-quote.decimals) / price
            return SwapPlan(
                token_in=quote.address,
                token_out=base.address,
                amount_in=amount_in,
                min_out=to_units(expected * keep, base.decimals, round_up=True),
                expected_out=to_units(expected, base.decimals),
            )
        amount_in = to_units(decision.amount, base.decimals)
        expected = Decimal(amount_in).scaleb(-base.decimals) * price
        return SwapPlan(
            token_in=base.address,
            token_out=quote.address,
            amount_in=amount_in,
            min_out=to_units(expected * keep, quote.decimals, round_up=True),
            expected_out=to_units(expected, quote.decimals),
        )

    def _fees(self, fees: FeeHint | None) -> tuple[int, int]:
        cap = int(self.config.guardrails.max_fee_per_gas_gwei * GWEI)
        if fees is None or fees.max_fee_per_gas == 0:
            return cap, min(cap, 2 * GWEI)
        return fees.max_fee_per_gas, min(fees.max_priority_fee_per_gas, fees.max_fee_per_gas)

    # -- outputs --------------------------------------------------------------------------

    def _sign(
        self,
        state: EnclaveState,
        proposed: ProposedTransaction,
        gas: int,
        priority: int,
        input_json: str,
        decision_json: str,
        timestamp: int,
    ) -> None:
        signed = self.signer.sign_transaction(
            Eip1559Transaction(
                chain_id=proposed.chain_id,
                nonce=state.tx_nonce,
                max_priority_fee_per_gas=priority,
                max_fee_per_gas=proposed.max_fee_per_gas,
                gas=gas,
                to=bytes.fromhex(proposed.to[2:]),
                value=proposed.value,
                data=proposed.data,
            )
        )
        seq = self._receipt(state, "signed", input_json, decision_json, signed.hash, timestamp)
        state.pending_transactions.append(
            PendingTransaction(
                state_version=0,
                raw_transaction=signed.raw_transaction.hex(),
                tx_hash=signed.hash.hex(),
                nonce=state.tx_nonce,
                receipt_seq=seq,
            )
        )
        state.tx_nonce += 1

    def _receipt(
        self,
        state: EnclaveState,
        verdict: str,
        input_json: str,
        decision_json: str,
        tx_hash: bytes,
        timestamp: int,
    ) -> int:
        receipt = make_receipt(
            self.signer,
            chain_id=self.config.chain.chain_id,
            seq=state.receipt_seq + 1,
            prev_hash=state.head_hash,
            input_digest=hashlib.sha256(input_json.encode()).digest(),
            model_hash=self.policy.model_hash,
            config_hash=self.config_hash,
            decision_hash=hashlib.sha256(decision_json.encode()).digest()
            if decision_json
            else NO_HASH,
            verdict=verdict,
            tx_hash=tx_hash,
            timestamp=timestamp,
        )
        state.receipt_seq = receipt.seq
        state.head_hash = receipt_hash(receipt, self.config.chain.chain_id)
        state.pending_receipts.append(
            PendingReceipt(
                state_version=0,
                receipt=receipt.to_json_dict(),
                decision_json=decision_json,
                input_json=input_json,
            )
        )
        return receipt.seq


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
