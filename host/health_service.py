"""The standard health service (grpc.health.v1) on the public server, answering Check on
threads of its own.

Every RPC of a grpcio server runs on the server's thread pool, and a market-data stream
holds its thread while it waits its turn at the agent. Fifty clients streaming at once
filled the pool, and a health Check waited behind them for half a second. Check is served
from a small pool of its own (grpcio runs a handler on the ThreadPoolExecutor its behaviour
names as `experimental_thread_pool`: grpc/_server.py, _select_thread_pool_for_behavior), so
health answers however busy the agent's RPCs keep the shared pool.
"""

from __future__ import annotations

import weakref
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2

SERVICE_NAME = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
CHECK_THREADS = 2


def add_health_service(servicer: health.HealthServicer, server: grpc.Server) -> None:
    """Register `servicer` on `server`, its Check on CHECK_THREADS threads of its own (shut
    down with the server) and its Watch streams on the server's pool."""
    pool = futures.ThreadPoolExecutor(max_workers=CHECK_THREADS, thread_name_prefix="health")
    weakref.finalize(server, pool.shutdown, wait=False)

    def check(
        request: health_pb2.HealthCheckRequest, context: grpc.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        response: health_pb2.HealthCheckResponse = servicer.Check(request, context)
        return response

    check.experimental_thread_pool = pool  # type: ignore[attr-defined]
    handlers = {
        "Check": grpc.unary_unary_rpc_method_handler(
            check,
            request_deserializer=health_pb2.HealthCheckRequest.FromString,
            response_serializer=health_pb2.HealthCheckResponse.SerializeToString,
        ),
        "Watch": grpc.unary_stream_rpc_method_handler(
            servicer.Watch,
            request_deserializer=health_pb2.HealthCheckRequest.FromString,
            response_serializer=health_pb2.HealthCheckResponse.SerializeToString,
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
