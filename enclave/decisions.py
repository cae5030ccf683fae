"""Per tick: check it, remember it, and when a decision is due ask the policy, build the
vault call, judge it by the guardrails, sign what passes, and write a receipt for all of it.
Runs of plainly acceptable ticks are checked and remembered together (`enclave.tick_columns`).

A trade's receipt comes before its transaction: the vault call carries the receipt's
sequence number and EIP-712 digest (the vault emits both with the trade), so the receipt
cannot carry the transaction's hash, and its tx_hash is zero.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from decimal import ROUND_DOWN, Decimal

from attestation.receipt import receipt_hash
from enclave.config import EnclaveConfig, Pair
from enclave.guardrails import (
    SPEND_WINDOW_SECONDS,
    GuardrailContext,
    ProposedTransaction,
    SpendEntry,
    judge,
    notional_spent,
)
from enclave.in_flight import AccountView, apply_account_view, track
from enclave.market import refusal_reason, remember
from enclave.owner import OwnerCommand
from enclave.policy import Decision, MarketView, Policy, hold
from enclave.receipts import make_receipt
from enclave.refusals import RefusalTally
from enclave.rolling_features import RollingFeatures
from enclave.signer import AccountSigner, Eip1559Transaction
from enclave.state import (
    MAX_PENDING_BYTES,
    EnclaveState,
    PendingReceipt,
    PendingTransaction,
    output_bytes,
)
from enclave.tick_columns import clean_prefix, first_due, remember_run
from enclave.transactions import SWAP_DEADLINE_SECONDS, VAULT_SWAP_GAS
from enclave.vault_trades import FeeHint, offered_fees, plan_swap, vault_swap
from wire.ticks import BACKLOG, Tick, TickColumns

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
# Batches of at most this many ticks (a backtest's one candle) go alone: cheaper for so few.
_FEW_TICKS = 4


class DecisionEngine:
    """The enclave's work on its state; everything it produces waits for Release."""

    def __init__(
        self, config: EnclaveConfig, policy: Policy, signer: AccountSigner, config_hash: bytes
    ) -> None:
        self.config = config
        self.policy = policy
        self.signer = signer
        self.config_hash = config_hash
        rule = config.policy.rule
        self._keep = max(rule.long_window + 1, 64)
        self._window_ms = config.market.price_move_window_seconds * 1000
        self._features = RollingFeatures(rule.short_window, rule.long_window)
        # How long each decision of the last batch took (reported to the host's metrics).
        self.decision_seconds: list[float] = []
        # The vault's TWAP per pair symbol as the host last reported it: host input, so not
        # sealed (a restarted enclave knows none until the host reports again).
        self.twap_prices: dict[str, float] = {}
        # What the outputs waiting for release weigh, counted from each `ingest` on.
        self._pending_bytes = 0

    def report_twaps(self, prices: Mapping[str, float]) -> None:
        """Take the TWAPs the host reports (pair symbol -> quote per base, already checked:
        configured pairs, finite and positive); a pair left out keeps its last one."""
        self.twap_prices.update(prices)

    def take_account_view(
        self, state: EnclaveState, view: AccountView, fees: FeeHint | None
    ) -> int:
        """Apply the chain's view of the account (`enclave.in_flight`; receipts at the market
        time of the last tick). Returns how many transactions were replaced."""
        timestamp = (state.market.last_timestamp_ms or 0) // 1000
        return apply_account_view(
            state, view, config=self.config, signer=self.signer, fees=fees,
            write_receipt=lambda verdict, text, tx: self._receipt(
                state, verdict, text, "", tx, timestamp
            ),
        )  # fmt: skip

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
        of plainly acceptable ticks together, any other tick alone; then write one receipt
        for the ticks refused (`summarise`). Once the outputs waiting for release reach
        MAX_PENDING_BYTES, the remaining ticks are refused as BACKLOG, not taken."""
        accepted = 0
        refused: list[tuple[int, str]] = []
        tally = RefusalTally()
        self.decision_seconds = []
        self._pending_bytes = state.pending_bytes()
        for ticks in batches:
            # `alone`: ticks still to take one by one; `burst`: how many the next window
            # check that stops early sends that way.
            index, window, burst = 0, _FIRST_WINDOW, 1
            alone = len(ticks) if len(ticks) <= _FEW_TICKS else 0
            while index < len(ticks) and not self._backlogged():
                if alone:
                    taken = ticks.ticks(index, index + alone)
                    for tick in taken:
                        if self._backlogged():
                            break
                        reason = self.ingest_tick(state, tick, fees, balances, now_ms)
                        if reason is None:
                            accepted += 1
                        else:
                            refused.append((tick.seq, reason))
                            tally.add(tick, reason)
                        index += 1
                    alone = 0
                    continue
                stop = min(len(ticks), index + window)
                clean = clean_prefix(ticks, index, stop, state.market, self.config, now_ms)
                if clean:
                    took = self._accept_run(state, ticks, index, index + clean, fees, balances)
                    accepted += took
                    state.ticks_accepted += took
                    index += took
                    if took < clean:
                        break
                if index == stop:
                    window, burst = min(2 * window, _MAX_WINDOW), 1
                    continue
                # The tick at `index` failed the window check, and would fail it again: it
                # goes alone, and while the clean runs stay short so do more after it.
                if clean >= _RETRY_WINDOW:
                    burst = 1
                window, alone, burst = _RETRY_WINDOW, burst, min(2 * burst, _MAX_ALONE)
            for tick in ticks.ticks(index, len(ticks)) if index < len(ticks) else ():
                state.ticks_refused += 1
                refused.append((tick.seq, BACKLOG))
                tally.add(tick, BACKLOG)
        self.summarise(state, tally)
        return accepted, refused

    def summarise(self, state: EnclaveState, tally: RefusalTally) -> None:
        """One receipt for the refused ticks of `tally`, when any but duplicates."""
        if tally.evidence:
            timestamp = max(state.market.last_timestamp_ms or 0, 0) // 1000
            self._receipt(state, tally.verdict(), tally.input_json(), "", NO_HASH, timestamp)

    def _backlogged(self) -> bool:
        return self._pending_bytes >= MAX_PENDING_BYTES

    def _accept_run(
        self,
        state: EnclaveState,
        ticks: TickColumns,
        start: int,
        stop: int,
        fees: FeeHint | None,
        balances: dict[str, int],
    ) -> int:
        """Remember the accepted ticks [start, stop), deciding at every tick a decision is
        due; returns how many it took: fewer when the backlog filled before a decision."""
        interval_ms = self.config.market.decision_interval_seconds * 1000
        first = start
        while start < stop:
            due_ms = None if state.last_decision is None else state.last_decision + interval_ms
            due = first_due(ticks, start, stop, due_ms)
            if due is not None and self._backlogged():
                remember_run(ticks, start, due, state.market, self._keep, self._window_ms)
                return due - first
            upto = stop if due is None else due + 1
            remember_run(ticks, start, upto, state.market, self._keep, self._window_ms)
            start = upto
            if due is not None:
                tick = ticks.tick(due)
                state.last_decision = tick.timestamp_ms
                self._decide(state, tick, fees, balances)
        return stop - first

    def ingest_tick(
        self,
        state: EnclaveState,
        tick: Tick,
        fees: FeeHint | None,
        balances: dict[str, int],
        now_ms: int,
    ) -> str | None:
        """Check one tick; remember it and decide when a decision is due, or refuse it (the
        caller counts it for the batch's refusal receipt, `summarise`). Returns the refusal
        reason, or None when accepted."""
        reason = refusal_reason(tick, state.market, self.config, now_ms)
        if reason is not None:
            state.ticks_refused += 1
            return reason
        remember(tick, state.market, self._keep, self._window_ms)
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
        plan = plan_swap(self.config, pair, decision, price)
        max_fee, priority = offered_fees(self.config, fees)
        deadline = timestamp + SWAP_DEADLINE_SECONDS
        # The call carries its receipt's digest, which exists only once the receipt is made:
        # the guardrails judge it with a zero digest, the one field the signed call changes.
        judged = vault_swap(self.config, plan, max_fee, deadline, state.receipt_seq + 1, NO_HASH)
        context = GuardrailContext(
            pair=pair,
            price=price,
            now=timestamp,
            paused=state.paused,
            last_trade=state.last_trade,
            spent=state.spent,
            max_slippage_bps_requested=decision.max_slippage_bps,
            twap=self.twap_prices.get(pair.symbol),
        )
        verdict = judge(judged, context, self.config)
        if not verdict.allowed:
            refused = f"refused:{verdict.reason}"
            self._receipt(state, refused, input_json, decision_json, NO_HASH, timestamp)
            return
        seq = self._receipt(state, "signed", input_json, decision_json, NO_HASH, timestamp)
        call = vault_swap(self.config, plan, max_fee, deadline, seq, state.head_hash)
        self._sign(state, call, VAULT_SWAP_GAS, priority, seq)
        state.last_trade = timestamp
        state.spent = [e for e in state.spent if timestamp - e.timestamp < SPEND_WINDOW_SECONDS]
        state.spent.append(SpendEntry(timestamp=timestamp, notional_usd=verdict.notional_usd))

    def _view(
        self, state: EnclaveState, pair: Pair, tick: Tick, balances: dict[str, int]
    ) -> MarketView:
        base, quote = self.config.tokens[pair.base], self.config.tokens[pair.quote]
        now = tick.timestamp_ms // 1000
        rails = self.config.guardrails
        # The vault values a sale at its TWAP; when that is above the tick's price, the caps
        # allow that much less notional at the tick's price, and the policy sizes with that.
        twap = self.twap_prices.get(pair.symbol)
        price = Decimal(repr(tick.price))
        scale = min(Decimal(1), price / Decimal(repr(twap))) if twap else Decimal(1)
        left = max(Decimal(0), rails.max_notional_per_day_usd - notional_spent(state.spent, now))
        return MarketView(
            pair=pair.symbol,
            base=pair.base,
            quote=pair.quote,
            timestamp=now,
            features=self._features.features(pair.symbol, state.market.closes[pair.symbol]),
            base_balance=Decimal(balances.get(pair.base, 0)).scaleb(-base.decimals),
            quote_balance=Decimal(balances.get(pair.quote, 0)).scaleb(-quote.decimals),
            notional_left_today_usd=_scaled(left, scale),
            max_notional_per_trade_usd=_scaled(rails.max_notional_per_trade_usd, scale),
        )

    def _ask_policy(self, view: MarketView) -> Decision:
        try:
            decision = self.policy.decide(view)
        except Exception as exc:
            return hold(view.pair, f"policy error: {type(exc).__name__}")
        if decision.pair != view.pair:
            return hold(view.pair, f"policy named pair {decision.pair[:25]!r}, not {view.pair}")
        return decision

    # -- outputs --------------------------------------------------------------------------

    def _sign(
        self,
        state: EnclaveState,
        proposed: ProposedTransaction,
        gas: int,
        priority: int,
        receipt_seq: int,
    ) -> None:
        """Sign `proposed` at the next nonce, as the transaction of receipt `receipt_seq`."""
        tx = Eip1559Transaction(
            chain_id=proposed.chain_id,
            nonce=state.tx_nonce,
            max_priority_fee_per_gas=priority,
            max_fee_per_gas=proposed.max_fee_per_gas,
            gas=gas,
            to=bytes.fromhex(proposed.to[2:]),
            value=proposed.value,
            data=proposed.data,
        )
        signed = self.signer.sign_transaction(tx)
        track(state, tx, signed.hash, receipt_seq)
        pending = PendingTransaction(
            state_version=0,
            raw_transaction=signed.raw_transaction.hex(),
            tx_hash=signed.hash.hex(),
            nonce=state.tx_nonce,
            receipt_seq=receipt_seq,
        )
        state.pending_transactions.append(pending)
        self._pending_bytes += output_bytes(pending)
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
        pending = PendingReceipt(
            state_version=0,
            receipt=receipt.to_json_dict(),
            decision_json=decision_json,
            input_json=input_json,
        )
        state.pending_receipts.append(pending)
        self._pending_bytes += output_bytes(pending)
        return receipt.seq


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _scaled(amount: Decimal, scale: Decimal) -> Decimal:
    """`amount` times `scale` (at most 1), rounded down to the cent when scaled: a cap stated
    to the policy never rounds up."""
    if scale >= 1:
        return amount
    return (amount * scale).quantize(Decimal("0.01"), rounding=ROUND_DOWN)
