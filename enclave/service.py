"""The enclave's gRPC service: proto messages in, `EnclaveCore` calls, proto messages out.

This is the one place where messages are converted. Every field from the host is checked
here (sizes, ranges, symbols) before the core sees it, and every refusal maps to a gRPC
status with a message a person can act on; nothing else escapes, and no message ever
carries key material.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import grpc
import numpy as np
from tee_agent_rpc import enclave_pb2 as pb
from tee_agent_rpc import enclave_pb2_grpc as pb_grpc

from attestation.receipt import Receipt
from enclave.core import EnclaveCore, EnclaveError, Identity, Released, Sealed
from enclave.decisions import FeeHint
from enclave.tick_columns import TickColumns

log = logging.getLogger("tee_agent.enclave")

# The host joins client batches (10,000 ticks at most each) into one call when the enclave
# is busy, so a call may carry several; 100,000 ticks are under 3 MB.
MAX_TICKS_PER_BATCH = 100_000
MAX_MESSAGE_BYTES = 16 << 20
_MAX_PAIR_LENGTH = 25
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
                identity=_identity(identity),
                created=created,
                sealed_state=sealed.sealed_state,
                state_version=sealed.state_version,
            )

        return self._call(context, work)

    def GetIdentity(
        self, request: pb.GetIdentityRequest, context: grpc.ServicerContext
    ) -> pb.Identity:
        return self._call(context, lambda: _identity(self._core.identity()))

    def Attest(self, request: pb.AttestRequest, context: grpc.ServicerContext) -> pb.AttestResponse:
        def work() -> pb.AttestResponse:
            quote, report_data = self._core.attest(request.nonce)
            return pb.AttestResponse(
                quote=quote, identity=_identity(self._core.identity()), report_data=report_data
            )

        return self._call(context, work)

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
            ticks, fees, _balances(request.balances), request.release_through
        )
        response = _ingested(sealed)
        if released.receipts or released.transactions:
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
            return pb.EnclaveStatus(open=True, **status)

        return self._call(context, work)


def _ticks(request: pb.IngestRequest) -> list[TickColumns]:
    count = sum(len(batch.seq) for batch in request.batches)
    if count > MAX_TICKS_PER_BATCH:
        raise EnclaveError(
            "invalid_argument", f"{count} ticks in one call; the limit is {MAX_TICKS_PER_BATCH}"
        )
    batches = []
    for number, batch in enumerate(request.batches):
        size = len(batch.seq)
        lengths = {
            "seq": size,
            "timestamp_ms": len(batch.timestamp_ms),
            "price": len(batch.price),
            "volume": len(batch.volume),
        }
        if any(length != size for length in lengths.values()):
            found = ", ".join(f"{name} {length}" for name, length in lengths.items())
            raise EnclaveError(
                "invalid_argument",
                f"batch {number}: the tick columns must have the same length; found {found}",
            )
        if not size:
            continue
        if not batch.pair or len(batch.pair) > _MAX_PAIR_LENGTH:
            raise EnclaveError(
                "invalid_argument",
                f"batch {number}: pair must be 1 to {_MAX_PAIR_LENGTH} characters",
            )
        columns = TickColumns(
            pair=batch.pair,
            seq=np.asarray(batch.seq, dtype=np.uint64),
            timestamp_ms=np.asarray(batch.timestamp_ms, dtype=np.int64),
            price=np.asarray(batch.price, dtype=np.float64),
            volume=np.asarray(batch.volume, dtype=np.float64),
        )
        if columns.seq.min() == 0:
            raise EnclaveError(
                "invalid_argument",
                f"batch {number}, tick {int(columns.seq.argmin())}: seq must be at least 1",
            )
        batches.append(columns)
    return batches


def _balances(balances: Any) -> dict[str, int]:
    parsed = {}
    for symbol, text in balances.items():
        if not text.isdigit() or len(text) > 78:
            raise EnclaveError(
                "invalid_argument",
                f"balance of {symbol[:16]!r} must be a non-negative integer in the token's "
                f"smallest unit, found {text[:32]!r}",
            )
        parsed[symbol] = int(text)
    return parsed


def _identity(identity: Identity) -> pb.Identity:
    return pb.Identity(
        address=identity.address,
        x25519_public_key=identity.x25519_public_key,
        config_hash=identity.config_hash,
        model_hash=identity.model_hash,
        measurement=identity.measurement.values,
        platform=identity.platform,
        simulated=identity.simulated,
        chain_id=identity.chain_id,
        policy=identity.policy,
    )


def _ingested(sealed: Sealed) -> pb.IngestResponse:
    return pb.IngestResponse(
        sealed_state=sealed.sealed_state,
        state_version=sealed.state_version,
        accepted=sealed.accepted,
        refused=[pb.RefusedTick(seq=seq, reason=reason) for seq, reason in sealed.refused],
        pending_receipts=sealed.pending_receipts,
        pending_transactions=sealed.pending_transactions,
        decision_seconds=sealed.decision_seconds,
    )


def _released(released: Released) -> pb.ReleaseResponse:
    return pb.ReleaseResponse(
        receipts=[
            _receipt(item.receipt, item.decision_json, item.input_json)
            for item in released.receipts
        ],
        transactions=[
            pb.SignedTransaction(
                raw_transaction=bytes.fromhex(item.raw_transaction),
                tx_hash=bytes.fromhex(item.tx_hash),
                nonce=item.nonce,
                receipt_seq=item.receipt_seq,
            )
            for item in released.transactions
        ],
    )


def _receipt(receipt: dict[str, Any], decision_json: str, input_json: str) -> pb.Receipt:
    signed = Receipt.from_json_dict(receipt)
    return pb.Receipt(**signed.model_dump(), decision_json=decision_json, input_json=input_json)


def server_options() -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ]
