"""The enclave's gRPC service: proto messages in, `EnclaveCore` calls, proto messages out.

Every field from the host is checked here (sizes, ranges, symbols) before the core sees
it, the messages both services carry are converted by `wire` (the same code the host and
the clients use), and every refusal maps to a gRPC status with a message a person can act
on; nothing else escapes, and no message ever carries key material.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import TypeVar

import grpc
from tee_agent_rpc import enclave_pb2 as pb
from tee_agent_rpc import enclave_pb2_grpc as pb_grpc
from tee_agent_rpc import messages_pb2 as messages

from enclave.core import EnclaveCore, EnclaveError, Released, Sealed
from enclave.in_flight import AccountView
from enclave.market import MAX_NUMBER
from enclave.vault_trades import FeeHint
from wire.identity import attestation_message, identity_message
from wire.numbers import MalformedNumber, parse_uint256_text
from wire.records import receipt_message, transaction_message
from wire.ticks import InvalidBatch, TickColumns, columns_from_message, decode_tick_batch

log = logging.getLogger("tee_agent.enclave")

# The host joins client batches (10,000 ticks at most each) into one call when the enclave
# is busy, so a call may carry several; 100,000 ticks are under 3 MB.
MAX_TICKS_PER_CALL = 100_000
MAX_MESSAGE_BYTES = 16 << 20
# The largest nonce a reported account view may name: the host stores nonces as int64, and a
# nonce near the EIP-2681 limit (2**64-1) would leave the agent no nonce to sign with.
MAX_NONCE = 2**63 - 1
_STATUS = {
    "not_open": grpc.StatusCode.FAILED_PRECONDITION,
    "failed_precondition": grpc.StatusCode.FAILED_PRECONDITION,
    "invalid_argument": grpc.StatusCode.INVALID_ARGUMENT,
    "denied": grpc.StatusCode.PERMISSION_DENIED,
}

Response = TypeVar("Response")


class EnclaveService(pb_grpc.EnclaveServicer):  # type: ignore[misc]  # generated, untyped
    """Serializes every call: the enclave is one state machine, one change at a time."""

    def __init__(self, core: EnclaveCore) -> None:
        self._core = core
        self._lock = threading.Lock()

    def _call(self, context: grpc.ServicerContext, work: Callable[[], Response]) -> Response:
        with self._lock:
            try:
                return work()
            except EnclaveError as exc:
                context.abort(_STATUS[exc.kind], str(exc))
            except Exception as exc:
                log.exception("enclave call failed")
                context.abort(grpc.StatusCode.INTERNAL, f"enclave error: {type(exc).__name__}")
        raise AssertionError("unreachable: context.abort raises")

    def Open(self, request: pb.OpenRequest, context: grpc.ServicerContext) -> pb.OpenResponse:
        def work() -> pb.OpenResponse:
            sealed, created = self._core.open(request.sealed_state)
            identity = self._core.identity()
            log.info("opened (%s) as %s", "new state" if created else "restored", identity.address)
            return pb.OpenResponse(
                identity=identity_message(identity),
                created=created,
                sealed_state=sealed.sealed_state,
                state_version=sealed.state_version,
            )

        return self._call(context, work)

    def GetIdentity(
        self, request: pb.GetIdentityRequest, context: grpc.ServicerContext
    ) -> messages.Identity:
        return self._call(context, lambda: identity_message(self._core.identity()))

    def Attest(
        self, request: pb.AttestRequest, context: grpc.ServicerContext
    ) -> messages.Attestation:
        return self._call(context, lambda: attestation_message(self._core.attest(request.nonce)))

    def Ingest(self, request: pb.IngestRequest, context: grpc.ServicerContext) -> pb.IngestResponse:
        return self._call(context, lambda: self._ingest(request))

    def IngestStream(
        self, requests: Iterator[pb.IngestRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.IngestResponse]:
        for request in requests:
            yield self._call(context, lambda: self._ingest(request))  # noqa: B023 (called now)

    def _ingest(self, request: pb.IngestRequest) -> pb.IngestResponse:
        ticks = _ticks(request)
        fees = (
            FeeHint(request.fees.max_fee_per_gas_wei, request.fees.max_priority_fee_per_gas_wei)
            if request.HasField("fees")
            else None
        )
        sealed, released = self._core.ingest(
            ticks,
            fees,
            _balances(request.balances),
            request.release_through,
            _twap_prices(request.twap_prices),
            _account(request),
        )
        response = _ingested(sealed)
        if released.receipts or released.transactions or released.more:
            response.released.CopyFrom(_released(released))
        return response

    def Release(
        self, request: pb.ReleaseRequest, context: grpc.ServicerContext
    ) -> pb.ReleaseResponse:
        return self._call(context, lambda: _released(self._core.release(request.state_version)))

    def SubmitOwnerCommand(
        self, request: pb.OwnerCommandRequest, context: grpc.ServicerContext
    ) -> pb.IngestResponse:
        return self._call(context, lambda: _ingested(self._core.owner_command(request.ciphertext)))

    def GetStatus(
        self, request: pb.GetStatusRequest, context: grpc.ServicerContext
    ) -> pb.EnclaveStatus:
        def work() -> pb.EnclaveStatus:
            try:
                status = self._core.status()
            except EnclaveError:
                return pb.EnclaveStatus(open=False)
            return pb.EnclaveStatus(open=True, **dataclasses.asdict(status))

        return self._call(context, work)


def _ticks(request: pb.IngestRequest) -> list[TickColumns]:
    """The request's tick batches, each decoded and checked (`wire.ticks`) as the host did.

    Raises:
        EnclaveError("invalid_argument"): a batch is not a TickBatch or fails the check, or
            the batches hold more than MAX_TICKS_PER_CALL ticks together.
    """
    batches, count = [], 0
    try:
        for number, data in enumerate(request.tick_batches, start=1):
            columns = columns_from_message(decode_tick_batch(data, number), number)
            if columns is None:
                continue
            count += len(columns)
            if count > MAX_TICKS_PER_CALL:
                raise EnclaveError(
                    "invalid_argument",
                    f"over {MAX_TICKS_PER_CALL} ticks in one call (batch {number} reaches {count})",
                )
            batches.append(columns)
    except InvalidBatch as exc:
        raise EnclaveError("invalid_argument", str(exc)) from None
    return batches


def _balances(balances: Mapping[str, str]) -> dict[str, int]:
    """The reported balances, each an unsigned integer in the token's smallest unit (the
    core checks that each names a configured token).

    Raises:
        EnclaveError("invalid_argument"): a balance that is not ASCII digits within uint256.
    """
    try:
        return {
            symbol: parse_uint256_text(
                text, f"balances[{symbol[:16]!r}] (the token's smallest unit)"
            )
            for symbol, text in balances.items()
        }
    except MalformedNumber as exc:
        raise EnclaveError("invalid_argument", str(exc)) from None


def _twap_prices(prices: Mapping[str, float]) -> dict[str, float]:
    """The reported TWAPs, each a finite number above 0 and at most MAX_NUMBER (the core
    checks that each names a configured pair).

    Raises:
        EnclaveError("invalid_argument"): a TWAP out of that range.
    """
    for symbol, price in prices.items():
        if not (math.isfinite(price) and 0 < price <= MAX_NUMBER):
            raise EnclaveError(
                "invalid_argument",
                f"the TWAP of {symbol[:25]!r} must be a finite number above 0 and at most "
                f"{MAX_NUMBER:g}, found {price!r}",
            )
    return dict(prices)


def _account(request: pb.IngestRequest) -> AccountView | None:
    """The chain's view of the account, or None when the host sent none (every uint64 is a
    block number: the enclave only ever moves forward with them).

    Raises:
        EnclaveError("invalid_argument"): a nonce beyond MAX_NONCE.
    """
    if not request.HasField("account"):
        return None
    view = request.account
    for name in ("mined_nonce", "pending_nonce"):
        if getattr(view, name) > MAX_NONCE:
            raise EnclaveError(
                "invalid_argument",
                f"account.{name} {getattr(view, name)} is beyond the largest nonce {MAX_NONCE}",
            )
    return AccountView(view.block_number, view.mined_nonce, view.pending_nonce)


def _ingested(sealed: Sealed) -> pb.IngestResponse:
    return pb.IngestResponse(
        sealed_state=sealed.sealed_state,
        state_version=sealed.state_version,
        accepted=sealed.accepted,
        refused=[messages.RefusedTick(seq=seq, reason=reason) for seq, reason in sealed.refused],
        pending_receipts=sealed.pending_receipts,
        pending_transactions=sealed.pending_transactions,
        decision_seconds=sealed.decision_seconds,
    )


def _released(released: Released) -> pb.ReleaseResponse:
    return pb.ReleaseResponse(
        receipts=[receipt_message(record) for record in released.receipts],
        transactions=[transaction_message(record) for record in released.transactions],
        more=released.more,
    )


def server_options() -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ]
