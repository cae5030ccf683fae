"""The enclave's service on a gRPC server, with request bytes decoded safely.

gRPC's generated registration answers INTERNAL ("Exception deserializing request!") to
bytes that do not decode as the request message. The host is not trusted and may send
anything: malformed bytes get INVALID_ARGUMENT naming the message instead, like any other
bad field, and the service never sees them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc
from google.protobuf import message_factory
from google.protobuf.message import DecodeError, Message
from tee_agent_rpc import enclave_pb2 as pb

from enclave.service import EnclaveService

SERVICE = pb.DESCRIPTOR.services_by_name["Enclave"]


@dataclass(frozen=True)
class Malformed:
    """Request bytes that did not decode as their message type."""

    error: str


def request_type(method: str) -> type[Message]:
    """The request message class of the enclave RPC `method` (e.g. "Ingest")."""
    return message_factory.GetMessageClass(SERVICE.methods_by_name[method].input_type)


def decode_request(method: str, data: bytes) -> Message | Malformed:
    """`data` as the request of `method`, or Malformed with the reason."""
    message = request_type(method)
    try:
        return message.FromString(data)
    except DecodeError as exc:
        return Malformed(f"the request is not a valid {message.DESCRIPTOR.name}: {exc}")


def _refusing_malformed(handler: Callable[..., object], streaming: bool) -> Callable[..., object]:
    def check(item: object, context: grpc.ServicerContext) -> object:
        if isinstance(item, Malformed):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, item.error)
        return item

    if streaming:

        def stream(requests: Iterator[object], context: grpc.ServicerContext) -> object:
            return handler((check(r, context) for r in requests), context)

        return stream
    return lambda request, context: handler(check(request, context), context)


def behaviour(service: EnclaveService, method: str) -> Callable[..., object]:
    """What the server runs for `method`: the service's method, taking decoded requests
    (`decode_request`) and refusing a Malformed one with INVALID_ARGUMENT."""
    streaming = SERVICE.methods_by_name[method].client_streaming
    return _refusing_malformed(getattr(service, method), streaming)


def add_enclave_service(service: EnclaveService, server: grpc.Server) -> None:
    """Register `service` on `server` (as the generated add_EnclaveServicer_to_server does,
    but malformed request bytes get INVALID_ARGUMENT)."""
    handlers = {}
    for method in SERVICE.methods:
        kind = {
            (False, False): grpc.unary_unary_rpc_method_handler,
            (False, True): grpc.unary_stream_rpc_method_handler,
            (True, False): grpc.stream_unary_rpc_method_handler,
            (True, True): grpc.stream_stream_rpc_method_handler,
        }[(method.client_streaming, method.server_streaming)]
        response = message_factory.GetMessageClass(method.output_type)
        handlers[method.name] = kind(
            behaviour(service, method.name),
            request_deserializer=lambda data, name=method.name: decode_request(name, data),
            response_serializer=response.SerializeToString,
        )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE.full_name, handlers),)
    )
