"""The host's client of the enclave's service (proto/tee_agent_rpc/enclave.proto).

Every call into the enclave, and every enclave message, goes through here: requests are
built from the host's values and answers come back as small frozen values (the messages
both services carry convert through `wire`, as everywhere else). The client does not
retry: a call that breaks off raises `grpc.RpcError`, and the agent decides what that
means (`host.agent`).
"""

from __future__ import annotations

import queue
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import grpc
from tee_agent_rpc import enclave_pb2 as pb
from tee_agent_rpc import enclave_pb2_grpc as pb_grpc

from attestation.binding import AgentAttestation, AgentIdentity
from host.outcomes import Released
from wire.identity import attestation_from_message, identity_from_message
from wire.records import receipt_record, transaction_record

# Longest wait for an answer that changes state (an ingest, a release, an owner command).
CALL_TIMEOUT = 120.0
# Longest wait for a quote (a real TEE's quoting service can take seconds).
ATTEST_TIMEOUT = 60.0
# Longest wait for the enclave's counters.
STATUS_TIMEOUT = 10.0
# The enclave sends up to 16 MiB; the host takes more, so the limit is the enclave's.
MAX_MESSAGE_BYTES = 64 << 20


def answers(channel: grpc.Channel, timeout: float) -> bool:
    """Whether the enclave's server answers on `channel` within `timeout` seconds.

    One status call that waits for the connection: its answer, or its refusal, means the
    server is up. Not `grpc.channel_ready_future`: its polling thread can still be watching
    the channel after the future resolves, and it raises in that thread when the channel is
    closed under it (grpc/grpc#18995), as a failed start does.
    """
    try:
        pb_grpc.EnclaveStub(channel).GetStatus(
            pb.GetStatusRequest(), timeout=timeout, wait_for_ready=True
        )
    except grpc.RpcError as exc:
        return exc.code() not in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE)
    return True


@dataclass(frozen=True)
class FeeHint:
    """The host's proposal for EIP-1559 fees (wei); the enclave caps them by its guardrails."""

    max_fee_per_gas_wei: int
    max_priority_fee_per_gas_wei: int


@dataclass(frozen=True)
class AccountView:
    """The chain's view of the agent's account before a batch: the latest block number, and
    the agent's transaction count at it ("latest") and with the node's mempool ("pending")."""

    block_number: int
    mined_nonce: int
    pending_nonce: int


@dataclass(frozen=True)
class IngestInput:
    """What one Ingest call carries: tick batches, each a serialized TickBatch message (a
    client's own bytes, already checked by `wire.ticks.check_tick_batch`), how many ticks
    they hold, and what the host reads on chain: fees, the agent's balances by token symbol
    in the token's smallest unit (untrusted: only used within the enclave's caps), and the
    vault's TWAP by pair symbol, quote per base (untrusted: the enclave refuses to decide on
    a tick price that disagrees with it, and the vault checks the real one)."""

    tick_batches: tuple[bytes, ...]
    ticks: int
    fees: FeeHint | None = None
    balances: Mapping[str, int] = field(default_factory=dict)
    twaps: Mapping[str, float] = field(default_factory=dict)
    # None when the chain could not be read: the enclave then changes nothing of its nonces.
    account: AccountView | None = None


@dataclass(frozen=True)
class Opened:
    """The enclave opened on the host's sealed state (or on fresh state: `created`)."""

    identity: AgentIdentity
    created: bool
    # Sealed right after opening: stored before anything else.
    sealed_state: bytes
    state_version: int
    # Receipts and transactions made before a restart but not yet released.
    pending_outputs: int


@dataclass(frozen=True)
class Ingested:
    """The enclave's answer to a change (ticks, an owner command): its new sealed state, the
    ticks it accepted and refused (seq, reason), how long each decision took, and the
    outputs of an earlier stored version that it released along with it."""

    sealed_state: bytes
    state_version: int
    accepted: int
    refused: tuple[tuple[int, str], ...]
    decision_seconds: tuple[float, ...]
    released: Released


@dataclass(frozen=True)
class EnclaveStatus:
    """The enclave's own counters (all zero but `open` when it is not open)."""

    open: bool
    paused: bool = False
    state_version: int = 0
    last_tick_seq: int = 0
    last_tick_timestamp_ms: int = 0
    receipts: int = 0
    next_nonce: int = 0
    # Notional traded in the last 24 hours of market time, and what the daily limit leaves.
    notional_24h_usd: float = 0.0
    notional_24h_left_usd: float = 0.0
    ticks_accepted: int = 0
    ticks_refused: int = 0


class EnclaveClient:
    """The calls the host makes into one enclave process, over `channel` (a unix socket)."""

    def __init__(self, channel: grpc.Channel) -> None:
        self._stub = pb_grpc.EnclaveStub(channel)

    def open(self, sealed_state: bytes, timeout: float) -> Opened:
        """Open the enclave on `sealed_state` (empty: make fresh state with new keys).

        Raises:
            grpc.RpcError: FAILED_PRECONDITION for a state the enclave refuses; any code
                when the call breaks off.
        """
        opened = self._stub.Open(pb.OpenRequest(sealed_state=sealed_state), timeout=timeout)
        return Opened(
            identity=identity_from_message(opened.identity),
            created=opened.created,
            sealed_state=opened.sealed_state,
            state_version=opened.state_version,
            pending_outputs=opened.pending_outputs,
        )

    def ingest_stream(self) -> IngestStream:
        """A new IngestStream call: ticks go to the enclave only this way, one batch or many."""
        return IngestStream(self._stub)

    def release(self, state_version: int) -> Released:
        """The outputs of every version up to `state_version`, which the host has stored.

        Raises:
            grpc.RpcError: the call broke off, or the version was never sealed.
        """
        request = pb.ReleaseRequest(state_version=state_version)
        return _released(self._stub.Release(request, timeout=CALL_TIMEOUT))

    def owner_command(self, ciphertext: bytes) -> Ingested:
        """Relay an encrypted owner command.

        Raises:
            grpc.RpcError: PERMISSION_DENIED when the enclave refuses it (forged, replayed).
        """
        request = pb.OwnerCommandRequest(ciphertext=ciphertext)
        return _ingested(self._stub.SubmitOwnerCommand(request, timeout=CALL_TIMEOUT))

    def attest(self, nonce: bytes) -> AgentAttestation:
        """A fresh quote over `nonce`, with the identity it binds.

        Raises:
            grpc.RpcError: INVALID_ARGUMENT for a nonce that is not 32 bytes.
        """
        answer = self._stub.Attest(pb.AttestRequest(nonce=nonce), timeout=ATTEST_TIMEOUT)
        return attestation_from_message(answer)

    def status(self) -> EnclaveStatus:
        """The enclave's counters.

        Raises:
            grpc.RpcError: the enclave cannot be reached.
        """
        status = self._stub.GetStatus(pb.GetStatusRequest(), timeout=STATUS_TIMEOUT)
        return EnclaveStatus(
            open=status.open,
            paused=status.paused,
            state_version=status.state_version,
            last_tick_seq=status.last_tick_seq,
            last_tick_timestamp_ms=status.last_tick_timestamp_ms,
            receipts=status.receipts,
            next_nonce=status.next_nonce,
            notional_24h_usd=status.notional_24h_usd,
            notional_24h_left_usd=status.notional_24h_left_usd,
            ticks_accepted=status.ticks_accepted,
            ticks_refused=status.ticks_refused,
        )


class IngestStream:
    """One IngestStream call: requests go in with `send` and are taken in order; `next`
    gives the answer to the oldest unanswered one. `close` ends the requests; `cancel`
    breaks the call off (a reader waiting in `next` gets CANCELLED)."""

    def __init__(self, stub: pb_grpc.EnclaveStub) -> None:
        self._outbox: queue.SimpleQueue[pb.IngestRequest | None] = queue.SimpleQueue()
        self._answers: Iterator[pb.IngestResponse] = stub.IngestStream(iter(self._outbox.get, None))

    def send(self, work: IngestInput, release_through: int) -> None:
        """Put a request on its way; with `release_through`, its answer also hands out the
        outputs of that stored version (0: none)."""
        self._outbox.put(ingest_request(work, release_through))

    def __iter__(self) -> IngestStream:
        return self

    def __next__(self) -> Ingested:
        """The next answer.

        Raises:
            grpc.RpcError: the enclave refused the request (the stream ends with it), or
                the call broke off or was cancelled.
            StopIteration: the enclave ended the stream.
        """
        return _ingested(next(self._answers))

    def close(self) -> None:
        self._outbox.put(None)

    def cancel(self) -> None:
        self._answers.cancel()  # type: ignore[attr-defined]  # a grpc call is also a Future


def ingest_request(work: IngestInput, release_through: int) -> pb.IngestRequest:
    """The IngestRequest message for `work`."""
    request = pb.IngestRequest(
        tick_batches=work.tick_batches,
        balances={symbol: str(amount) for symbol, amount in work.balances.items()},
        release_through=release_through,
        twap_prices=dict(work.twaps),
    )
    if work.fees is not None:
        request.fees.max_fee_per_gas_wei = work.fees.max_fee_per_gas_wei
        request.fees.max_priority_fee_per_gas_wei = work.fees.max_priority_fee_per_gas_wei
    if work.account is not None:
        request.account.block_number = work.account.block_number
        request.account.mined_nonce = work.account.mined_nonce
        request.account.pending_nonce = work.account.pending_nonce
    return request


def _ingested(answer: pb.IngestResponse) -> Ingested:
    return Ingested(
        sealed_state=answer.sealed_state,
        state_version=answer.state_version,
        accepted=answer.accepted,
        refused=tuple((item.seq, item.reason) for item in answer.refused),
        decision_seconds=tuple(answer.decision_seconds),
        released=_released(answer.released),
    )


def _released(released: pb.ReleaseResponse) -> Released:
    return Released(
        receipts=[receipt_record(item) for item in released.receipts],
        transactions=[transaction_record(item) for item in released.transactions],
        more=released.more,
    )
