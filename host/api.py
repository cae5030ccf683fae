"""The public gRPC API (proto/tee_agent_rpc/agent.proto), with health checking, reflection,
a bearer token on write RPCs, message-size limits, and optional TLS.

Requests become calls on the agent here; the messages both services carry (receipts,
transactions, identities) convert through `wire`, the same code the enclave and the
clients use. A request the agent cannot take gets INVALID_ARGUMENT (or the status the
agent names) with a message; nothing a client sends can crash the server or reach it as a
traceback.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import grpc
from google.protobuf import message_factory
from google.protobuf.message import DecodeError, Message
from grpc_health.v1 import health, health_pb2
from tee_agent_rpc import agent_pb2 as pb
from tee_agent_rpc import agent_pb2_grpc as pb_grpc
from tee_agent_rpc import messages_pb2 as messages

from host.agent import Agent
from host.health_service import add_health_service
from host.outcomes import AgentError, BatchResult
from host.reflection import enable_reflection
from host.tick_stream import JoinedBatches
from host.vault_watch import VaultReading, whole_tokens
from wire.identity import attestation_message
from wire.records import ReceiptRecord, TransactionRecord, receipt_message, transaction_message
from wire.ticks import InvalidBatch

log = logging.getLogger("tee_agent.host.api")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Agent"].full_name
WRITE_METHODS = {"StreamMarketData", "SubmitOwnerCommand"}
MAX_LIST = 1000
Response = TypeVar("Response")


@dataclass(frozen=True)
class ApiSettings:
    listen: str
    auth_token: str
    max_message_bytes: int = 4 << 20
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_workers: int = 16
    # WatchDecisions streams open at once (each holds one of the max_workers threads).
    max_watchers: int = 8


class AgentService(pb_grpc.AgentServicer):  # type: ignore[misc]  # generated, untyped
    def __init__(
        self,
        agent: Agent,
        token: str,
        observe: Callable[[str, float], None] | None = None,
        max_watchers: int = 8,
    ) -> None:
        self._agent = agent
        self._token = token.encode()
        self._observe = observe
        # Watchers hold a server thread each and need no token: unbounded, idle ones stall all.
        self._max_watchers = max_watchers
        self._watch_slots = threading.BoundedSemaphore(max_watchers)

    # -- plumbing -------------------------------------------------------------------------

    def _authorize(self, method: str, context: grpc.ServicerContext) -> None:
        if method not in WRITE_METHODS:
            return
        metadata = dict(context.invocation_metadata())
        header = str(metadata.get("authorization", ""))
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                f"{method} needs the metadata 'authorization: Bearer <token>'",
            )
        if not hmac.compare_digest(token.encode(), self._token):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "the bearer token is not valid")

    def _call(
        self, method: str, context: grpc.ServicerContext, work: Callable[[], Response]
    ) -> Response:
        started = time.perf_counter()
        self._authorize(method, context)
        try:
            return work()
        except AgentError as exc:
            context.abort(exc.code, str(exc))
        except grpc.RpcError:
            raise
        except Exception as exc:
            log.exception("%s failed", method)
            context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}")
        finally:
            if self._observe is not None:
                self._observe(method, time.perf_counter() - started)
        raise AssertionError("unreachable: context.abort raises")

    # -- RPCs -----------------------------------------------------------------------------

    def StreamMarketData(
        self, request_iterator: Iterator[bytes], context: grpc.ServicerContext
    ) -> pb.StreamSummary:
        def work() -> pb.StreamSummary:
            summary = pb.StreamSummary()

            def add(result: BatchResult) -> None:
                summary.accepted += result.accepted
                summary.refused += len(result.refused)
                summary.receipts += result.receipts
                summary.transactions += result.transactions
                for seq, reason in result.refused:
                    summary.refused_by_reason[reason] += 1
                    if len(summary.refused_ticks) < MAX_LIST:
                        summary.refused_ticks.add(seq=seq, reason=reason)

            try:
                with closing(JoinedBatches(request_iterator)) as batches:
                    self._agent.ingest_stream(batches, add)
                    summary.received = batches.received
            except InvalidBatch as exc:
                raise AgentError(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
            return summary

        return self._call("StreamMarketData", context, work)

    def WatchDecisions(
        self, request: pb.WatchDecisionsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.DecisionEvent]:
        self._authorize("WatchDecisions", context)
        if not self._watch_slots.acquire(blocking=False):
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{self._max_watchers} WatchDecisions streams are open, the most this host "
                "serves at once; try again later",
            )
        try:
            for record, transaction in self._agent.watch(
                request.from_seq, stop=lambda: not context.is_active()
            ):
                yield decision_event(record, transaction)
        except AgentError as exc:
            context.abort(exc.code, str(exc))
        finally:
            self._watch_slots.release()

    def GetAttestation(
        self, request: pb.GetAttestationRequest, context: grpc.ServicerContext
    ) -> messages.Attestation:
        def work() -> messages.Attestation:
            if len(request.nonce) != 32:
                raise AgentError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"nonce must be 32 bytes, got {len(request.nonce)}",
                )
            return attestation_message(self._agent.attest(request.nonce))

        return self._call("GetAttestation", context, work)

    def GetStatus(self, request: pb.GetStatusRequest, context: grpc.ServicerContext) -> pb.Status:
        def work() -> pb.Status:
            agent = self._agent
            supervisor = agent.supervisor
            seq, head_hash = agent.storage.head()
            status = pb.Status(
                uptime_seconds=time.time() - agent.started,
                enclave_state="follower" if agent.following else supervisor.state,
                enclave_restarts=supervisor.restarts,
                receipts=seq,
                head_hash=head_hash,
                transactions=len(agent.storage.transactions()),
                address=supervisor.identity.address if supervisor.identity else "",
                alarm=agent.alarm,
            )
            if agent.vault_watch is not None:
                status.vault.CopyFrom(vault_status(agent.vault_watch.latest))
            try:
                enclave = agent.enclave_status()
            except AgentError:
                return status  # restarting: the host's own figures still answer
            status.last_tick_seq = enclave.last_tick_seq
            status.last_tick_timestamp_ms = enclave.last_tick_timestamp_ms
            status.ticks_accepted = enclave.ticks_accepted
            status.ticks_refused = enclave.ticks_refused
            status.notional_24h_usd = enclave.notional_24h_usd
            status.notional_24h_left_usd = enclave.notional_24h_left_usd
            status.paused = enclave.paused
            return status

        return self._call("GetStatus", context, work)

    def ListReceipts(
        self, request: pb.ListReceiptsRequest, context: grpc.ServicerContext
    ) -> pb.ListReceiptsResponse:
        def work() -> pb.ListReceiptsResponse:
            limit = request.limit or 100
            if request.from_seq < 1 or limit > MAX_LIST:
                raise AgentError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"from_seq must be >= 1 and limit at most {MAX_LIST} "
                    f"(got from_seq {request.from_seq}, limit {request.limit})",
                )
            records = self._agent.storage.receipts(request.from_seq, limit)
            transactions = _transactions_of(self._agent, records)
            return pb.ListReceiptsResponse(
                receipts=[decision_event(r, transactions.get(r.receipt.seq)) for r in records]
            )

        return self._call("ListReceipts", context, work)

    def GetReceipt(
        self, request: pb.GetReceiptRequest, context: grpc.ServicerContext
    ) -> pb.DecisionEvent:
        def work() -> pb.DecisionEvent:
            record = self._agent.storage.receipt(request.seq)
            if record is None:
                head = self._agent.storage.head()[0]
                raise AgentError(
                    grpc.StatusCode.NOT_FOUND,
                    f"no receipt with seq {request.seq} (receipts run from 1 to {head})",
                )
            return decision_event(record, _transactions_of(self._agent, [record]).get(request.seq))

        return self._call("GetReceipt", context, work)

    def SubmitOwnerCommand(
        self, request: pb.SubmitOwnerCommandRequest, context: grpc.ServicerContext
    ) -> pb.SubmitOwnerCommandResponse:
        def work() -> pb.SubmitOwnerCommandResponse:
            if not request.ciphertext or len(request.ciphertext) > 4096:
                raise AgentError(
                    grpc.StatusCode.INVALID_ARGUMENT, "ciphertext must be 1 to 4096 bytes"
                )
            seq, paused = self._agent.owner_command(request.ciphertext)
            return pb.SubmitOwnerCommandResponse(receipt_seq=seq, paused=paused)

        return self._call("SubmitOwnerCommand", context, work)


def _transactions_of(agent: Agent, records: list[ReceiptRecord]) -> dict[int, TransactionRecord]:
    # A trade's receipt is made before its transaction (which carries the receipt's digest
    # to the vault), so it names no tx hash: the transaction names the receipt's seq.
    wanted = {r.receipt.seq for r in records if r.receipt.verdict == "signed"}
    if not wanted:
        return {}
    return {tx.receipt_seq: tx for tx in agent.storage.transactions() if tx.receipt_seq in wanted}


def decision_event(
    record: ReceiptRecord, transaction: TransactionRecord | None
) -> pb.DecisionEvent:
    """A stored receipt, with the transaction signed under it, as the API serves it."""
    event = pb.DecisionEvent(receipt=receipt_message(record))
    if transaction is not None:
        event.transaction.CopyFrom(transaction_message(transaction))
    return event


def vault_status(reading: VaultReading) -> pb.VaultStatus:
    """The vault as the host last read it, as GetStatus serves it (amounts in whole quote
    tokens, see agent.proto)."""
    message = pb.VaultStatus(address=reading.address, error=reading.error or "")
    state = reading.state
    if state is None:
        return message
    message.block = state.block
    message.quote_token = state.quote_token
    message.paused = state.paused
    message.twap_window_seconds = state.twap_window
    message.max_deviation_bps = state.max_deviation_bps
    record, decimals = state.agent, reading.quote_decimals
    if record is not None:
        message.agent_active = record.active
        message.cap_per_trade = whole_tokens(record.cap_per_trade, decimals)
        message.cap_per_day = whole_tokens(record.cap_per_day, decimals)
        message.notional_24h = whole_tokens(record.notional_24h, decimals)
        message.notional_24h_left = whole_tokens(record.left_today, decimals)
        message.last_receipt_seq = record.last_receipt_seq
    return message


@dataclass(frozen=True)
class Malformed:
    """A request whose bytes did not decode as its message type."""

    error: str


def _decoder(message: type[Message]) -> Callable[[bytes], Message | Malformed]:
    def decode(data: bytes) -> Message | Malformed:
        try:
            return message.FromString(data)
        except DecodeError as exc:
            return Malformed(f"the request is not a valid {message.DESCRIPTOR.name}: {exc}")

    return decode


def _refuse_malformed(
    method: Callable[..., object], client_streaming: bool
) -> Callable[..., object]:
    """Malformed bytes get INVALID_ARGUMENT with the reason (gRPC's default is INTERNAL)."""

    def check(item: object, context: grpc.ServicerContext) -> object:
        if isinstance(item, Malformed):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, item.error)
        return item

    if client_streaming:
        return lambda requests, context: method((check(r, context) for r in requests), context)
    return lambda request, context: method(check(request, context), context)


def register_agent_service(servicer: AgentService, server: grpc.Server) -> None:
    """Add the Agent service, built from its descriptor, with safe request decoding."""
    service = pb.DESCRIPTOR.services_by_name["Agent"]
    handlers = {}
    for method in service.methods:
        request_type = message_factory.GetMessageClass(method.input_type)
        response_type = message_factory.GetMessageClass(method.output_type)
        kind = {
            (False, False): grpc.unary_unary_rpc_method_handler,
            (False, True): grpc.unary_stream_rpc_method_handler,
            (True, False): grpc.stream_unary_rpc_method_handler,
            (True, True): grpc.stream_stream_rpc_method_handler,
        }[(method.client_streaming, method.server_streaming)]
        # StreamMarketData takes each batch as bytes: the host parses and checks it as it
        # arrives (host.tick_stream) and hands the enclave those very bytes.
        raw = method.name == "StreamMarketData"
        handlers[method.name] = kind(
            _refuse_malformed(getattr(servicer, method.name), method.client_streaming),
            request_deserializer=None if raw else _decoder(request_type),
            response_serializer=response_type.SerializeToString,
        )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service.full_name, handlers),)
    )


def start_api(
    agent: Agent, settings: ApiSettings, observe: Callable[[str, float], None] | None = None
) -> tuple[grpc.Server, int, health.HealthServicer]:
    """Start the public server; returns it, the bound port, and its health servicer.

    Raises:
        ValueError: the listen address cannot be bound (another process serves it, say), or
            TLS files cannot be read.
    """
    options = [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        # gRPC sets SO_REUSEPORT by default: a second agent would then bind the same port
        # and clients would reach one or the other at random.
        ("grpc.so_reuseport", 0),
    ]
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.max_workers), options=options
    )
    servicer = AgentService(agent, settings.auth_token, observe, settings.max_watchers)
    register_agent_service(servicer, server)
    health_servicer = health.HealthServicer()
    add_health_service(health_servicer, server)
    enable_reflection(
        (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name), server
    )
    credentials = None
    if settings.tls_cert is not None and settings.tls_key is not None:
        credentials = grpc.ssl_server_credentials(
            [(settings.tls_key.read_bytes(), settings.tls_cert.read_bytes())]
        )
    try:
        if credentials is not None:
            port = server.add_secure_port(settings.listen, credentials)
        else:
            port = server.add_insecure_port(settings.listen)
    except RuntimeError:  # grpcio's "Failed to bind to address"
        port = 0
    if port == 0:
        raise ValueError(
            f"cannot listen on {settings.listen}: the address is in use (another agent?) "
            "or not one of this machine's"
        )
    server.start()
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, port, health_servicer
