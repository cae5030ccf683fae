"""The enclave's state machine: open, attest, ingest ticks, decide, judge, sign, seal, release.

No gRPC here: `enclave.service` converts messages at one place and calls this. The order of
work on every change is fixed: update the state in memory, seal it, hand the sealed state
to the host, and only when the host says it stored that version release the receipts and
signed transactions it produced. A crash at any point therefore either loses nothing that
left the enclave, or replays outputs the host already has (same receipts, same bytes).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from nacl.public import PrivateKey
from pydantic import ValidationError

from attestation.binding import AgentAttestation, AgentIdentity, identity_report_data
from attestation.receipt import Receipt, receipt_hash
from enclave.config import EnclaveConfig
from enclave.decisions import DecisionEngine
from enclave.in_flight import AccountView
from enclave.owner import OwnerCommandError, open_owner_command
from enclave.platform.base import Platform
from enclave.policy import Policy
from enclave.sealing import Sealer, SealingError
from enclave.served_event_log import EventLogUnservable, served_event_log
from enclave.signer import AccountSigner
from enclave.state import (
    MAX_PENDING_BYTES,
    MAX_PENDING_OUTPUTS,
    RELEASE_BUDGET_BYTES,
    EnclaveState,
    PendingReceipt,
    PendingTransaction,
    output_bytes,
)
from enclave.vault_trades import FeeHint
from wire.records import ReceiptRecord, TransactionRecord
from wire.ticks import TickColumns


class EnclaveError(Exception):
    """A request the enclave refuses; `kind` maps to a gRPC status in the service."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # "not_open", "invalid_argument", "failed_precondition", "denied"


@dataclass(frozen=True)
class Sealed:
    """The outcome of a change: the sealed state the host must store, and what changed."""

    sealed_state: bytes
    state_version: int
    accepted: int = 0
    refused: tuple[tuple[int, str], ...] = ()
    pending_receipts: int = 0
    pending_transactions: int = 0
    decision_seconds: tuple[float, ...] = ()


@dataclass(frozen=True)
class Status:
    """The enclave's counters and what its daily limit leaves (USD, market time)."""

    paused: bool
    state_version: int
    last_tick_seq: int
    last_tick_timestamp_ms: int
    receipts: int
    next_nonce: int
    notional_24h_usd: float
    notional_24h_left_usd: float
    ticks_accepted: int
    ticks_refused: int


@dataclass(frozen=True)
class Released:
    """Outputs handed to the host: receipts in order, and the transactions signed under them."""

    receipts: list[ReceiptRecord]
    transactions: list[TransactionRecord]
    # More outputs up to the version asked for wait: ask again (each reply carries at most
    # RELEASE_BUDGET_BYTES of them, so it stays below the transport's limit).
    more: bool = False


class EnclaveCore:
    """One enclave: a platform, a measured config, a policy, and (once open) its state."""

    def __init__(
        self,
        platform: Platform,
        config: EnclaveConfig,
        policy: Policy,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._platform = platform
        self._config = config
        self._policy = policy
        self._clock = clock
        self.config_hash = config.config_hash()
        self.measurement = platform.measurement()
        self._sealer = Sealer(
            platform.sealing_key(),
            self.measurement,
            config_hash=self.config_hash,
            model_hash=policy.model_hash,
            # Only the simulated platform's version 1 blobs were bound to config and model
            # (through rtmr0 and rtmr1); see enclave.sealing.
            opens_version_1=platform.name == "sim",
        )
        self._state: EnclaveState | None = None
        self._last_sealed = b""
        self._engine: DecisionEngine | None = None

    def __repr__(self) -> str:
        return f"EnclaveCore(platform={self._platform.name}, open={self._state is not None})"

    # -- lifecycle ------------------------------------------------------------------------

    def open(self, sealed_state: bytes) -> tuple[Sealed, bool]:
        """Restore from `sealed_state`, or make fresh state (new keys) when it is empty.

        Raises:
            EnclaveError("failed_precondition"): already open, or the sealed state is
                garbage, tampered, or from another measurement; the enclave stays closed.
        """
        if self._state is not None:
            raise EnclaveError("failed_precondition", "the enclave is already open")
        created = not sealed_state
        if created:
            state = EnclaveState.fresh()
        else:
            try:
                plaintext = self._sealer.unseal(sealed_state)
            except SealingError as exc:
                # Chained, so the typed cause (another config, model, measurement) stays
                # reachable to in-process callers; the message names it for everyone else.
                raise EnclaveError("failed_precondition", f"refusing to start: {exc}") from exc
            try:
                state = EnclaveState.from_bytes(plaintext)
            except ValidationError as exc:
                where = ", ".join(".".join(map(str, e["loc"])) for e in exc.errors()[:3])
                raise EnclaveError(
                    "failed_precondition",
                    f"refusing to start: the sealed state does not fit this version ({where})",
                ) from None
        signer = AccountSigner.from_bytes(state.account_secret)
        self._engine = DecisionEngine(self._config, self._policy, signer, self.config_hash)
        self._state = state
        self._box = PrivateKey(state.box_secret)
        return self._seal(), created

    def _require(self) -> tuple[EnclaveState, DecisionEngine]:
        if self._state is None or self._engine is None:
            raise EnclaveError("not_open", "the enclave is not open: call Open first")
        return self._state, self._engine

    def identity(self) -> AgentIdentity:
        _, engine = self._require()
        return AgentIdentity(
            address=engine.signer.address,
            x25519_public_key=bytes(self._box.public_key),
            config_hash=self.config_hash,
            model_hash=self._policy.model_hash,
            measurement=self.measurement.values,
            platform=self._platform.name,
            simulated=self._platform.simulated,
            chain_id=self._config.chain.chain_id,
            policy=self._policy.name,
        )

    def attest(self, nonce: bytes) -> AgentAttestation:
        """A quote whose report_data binds the identity and `nonce`, with the platform's
        event log (read after the quote, so it holds every extension the quote shows).

        Raises:
            EnclaveError("invalid_argument"): the nonce is not 32 bytes.
            EnclaveError("failed_precondition"): the event log cannot be served (over
                1 MiB, unreadable, not JSON: `enclave.served_event_log`).
        """
        identity = self.identity()
        if len(nonce) != 32:
            raise EnclaveError("invalid_argument", f"the nonce must be 32 bytes, got {len(nonce)}")
        quote = self._platform.quote(identity_report_data(identity.binding(), nonce))
        try:
            event_log = served_event_log(self._platform)
        except EventLogUnservable as exc:
            raise EnclaveError("failed_precondition", str(exc)) from None
        return AgentAttestation(quote=quote, nonce=nonce, identity=identity, event_log=event_log)

    # -- changes --------------------------------------------------------------------------

    def ingest(
        self,
        ticks: Sequence[TickColumns],
        fees: FeeHint | None,
        balances: dict[str, int],
        release_through: int = 0,
        twap_prices: Mapping[str, float] | None = None,
        account: AccountView | None = None,
    ) -> tuple[Sealed, Released]:
        """Release the outputs up to `release_through` (0: none), take the TWAPs the host
        reports (pair symbol -> quote per base; the latest of each pair is kept), take the
        chain's view of the account when reported (`enclave.in_flight`: nonces, and the
        replacement of transactions stuck unmined), then process the batches of ticks in
        order; returns the new sealed state and what was refused, and the released outputs.

        Raises:
            EnclaveError: not open, too many outputs waiting for release, a balance for a
                token that is not configured, a TWAP for a pair that is not configured, or
                a release version never sealed. Nothing is released then, and no TWAP
                taken: the outputs stay pending.
        """
        state, engine = self._require()
        unknown = sorted(set(balances) - set(self._config.tokens))
        if unknown:
            raise EnclaveError("invalid_argument", f"balances name unknown tokens {unknown}")
        twap_prices = twap_prices or {}
        pairs = {pair.symbol for pair in self._config.pairs}
        unknown_pairs = sorted(symbol[:25] for symbol in set(twap_prices) - pairs)
        if unknown_pairs:
            raise EnclaveError(
                "invalid_argument",
                f"twap_prices name pairs that are not configured: {unknown_pairs[:5]} "
                f"(configured: {sorted(pairs)})",
            )
        # Every check comes before the release, so a refused request releases nothing. The
        # backlog is what would stay pending: every output has a sealed version >= 1, so
        # release_through 0 keeps them all.
        self._check_sealed(state, release_through)
        self._check_backlog(state, release_through)
        released = self.release(release_through) if release_through else Released([], [])
        engine.report_twaps(twap_prices)
        now_ms = int(self._clock() * 1000)

        def work() -> tuple[int, list[tuple[int, str]]]:
            if account is not None:
                engine.take_account_view(state, account, fees)
            return engine.ingest(state, ticks, fees, balances, now_ms)

        return self._change(work), released

    def owner_command(self, ciphertext: bytes) -> Sealed:
        """Apply an encrypted, owner-signed command (pause, resume).

        Raises:
            EnclaveError("denied"): the command is undecryptable, forged, malformed,
                for another enclave, or replayed (the message names which).
        """
        state, engine = self._require()
        self._check_backlog(state, 0)
        try:
            command = open_owner_command(
                ciphertext,
                box_key=self._box,
                owner_public_key=bytes.fromhex(self._config.owner.public_key),
                enclave_address=engine.signer.address,
                last_counter=state.owner_counter,
            )
        except OwnerCommandError as exc:
            raise EnclaveError("denied", str(exc)) from None
        timestamp = int(self._clock())
        engine.decision_seconds = []
        return self._change(lambda: engine.apply_owner_command(state, command, timestamp))

    def release(self, state_version: int) -> Released:
        """Hand out the outputs of every version up to `state_version` (stored by the host),
        in order, at most RELEASE_BUDGET_BYTES of them (`more` says that some remain): the
        receipts, and the transactions signed under the receipts handed out.

        Raises:
            EnclaveError("invalid_argument"): a version the enclave has not sealed yet.
        """
        state, _ = self._require()
        self._check_sealed(state, state_version)
        ready = [p for p in state.pending_receipts if p.state_version <= state_version]
        receipts: list[PendingReceipt] = []
        budget = RELEASE_BUDGET_BYTES
        for pending in ready:
            budget -= output_bytes(pending)
            if receipts and budget < 0:
                break
            receipts.append(pending)
        last_seq = int(str(receipts[-1].receipt["seq"])) if receipts else 0
        transactions = [
            p
            for p in state.pending_transactions
            if p.state_version <= state_version and p.receipt_seq <= last_seq
        ]
        state.pending_receipts = state.pending_receipts[len(receipts) :]
        taken = {id(p) for p in transactions}
        state.pending_transactions = [p for p in state.pending_transactions if id(p) not in taken]
        chain_id = self._config.chain.chain_id
        return Released(
            [_receipt_record(p, chain_id) for p in receipts],
            [_transaction_record(p) for p in transactions],
            more=len(receipts) < len(ready),
        )

    def _check_sealed(self, state: EnclaveState, state_version: int) -> None:
        if state_version > state.state_version:
            raise EnclaveError(
                "invalid_argument",
                f"version {state_version} was never sealed (the latest is {state.state_version})",
            )

    def _check_backlog(self, state: EnclaveState, release_through: int) -> None:
        """Refuse new work while too many outputs, or too many bytes of them, would still
        wait for Release after releasing those up to `release_through` (0: none)."""
        receipts = [p for p in state.pending_receipts if p.state_version > release_through]
        transactions = [p for p in state.pending_transactions if p.state_version > release_through]
        weight = sum(map(output_bytes, receipts)) + sum(map(output_bytes, transactions))
        if len(receipts) >= MAX_PENDING_OUTPUTS or weight >= MAX_PENDING_BYTES:
            raise EnclaveError(
                "failed_precondition",
                f"{len(receipts)} receipts ({weight:,} bytes) wait for Release; store the "
                "latest sealed state and release them first",
            )

    def _change(self, work: Callable[[], tuple[int, list[tuple[int, str]]]]) -> Sealed:
        state, _ = self._require()
        try:
            accepted, refused = work()
        except Exception:
            self._restore()
            raise
        sealed = self._seal()
        _, engine = self._require()
        return Sealed(
            sealed.sealed_state,
            sealed.state_version,
            accepted,
            tuple(refused),
            len(state.pending_receipts),
            len(state.pending_transactions),
            tuple(engine.decision_seconds),
        )

    def _restore(self) -> None:
        """Never keep a half-applied change: go back to the last sealed state."""
        self._state = EnclaveState.from_bytes(self._sealer.unseal(self._last_sealed))

    def _seal(self) -> Sealed:
        state, _ = self._require()
        state.state_version += 1
        for item in state.pending_receipts + state.pending_transactions:
            if item.state_version == 0:
                item.state_version = state.state_version
        self._last_sealed = self._sealer.seal(state.to_bytes())
        return Sealed(self._last_sealed, state.state_version)

    # -- reading --------------------------------------------------------------------------

    def status(self) -> Status:
        state, engine = self._require()
        now = int(state.market.last_timestamp_ms or 0) // 1000
        spent = engine.notional_spent(state, now)
        return Status(
            paused=state.paused,
            state_version=state.state_version,
            last_tick_seq=state.market.last_seq,
            last_tick_timestamp_ms=state.market.last_timestamp_ms or 0,
            receipts=state.receipt_seq,
            next_nonce=state.tx_nonce,
            notional_24h_usd=float(spent),
            notional_24h_left_usd=float(
                max(Decimal(0), self._config.guardrails.max_notional_per_day_usd - spent)
            ),
            ticks_accepted=state.ticks_accepted,
            ticks_refused=state.ticks_refused,
        )


def _receipt_record(pending: PendingReceipt, chain_id: int) -> ReceiptRecord:
    receipt = Receipt.from_json_dict(pending.receipt)
    return ReceiptRecord(
        receipt=receipt,
        receipt_hash=receipt_hash(receipt, chain_id),
        decision_json=pending.decision_json,
        input_json=pending.input_json,
    )


def _transaction_record(pending: PendingTransaction) -> TransactionRecord:
    return TransactionRecord(
        tx_hash=bytes.fromhex(pending.tx_hash),
        nonce=pending.nonce,
        raw_transaction=bytes.fromhex(pending.raw_transaction),
        receipt_seq=pending.receipt_seq,
    )
