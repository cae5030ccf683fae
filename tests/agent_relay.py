"""A hostile host for the clients: it relays a real agent's public API, editing answers.

It serves the reads `attest`, `receipts` and `verify agent` make (GetAttestation, GetStatus,
ListReceipts), each the real host's answer passed through an edit: the way a host nobody
trusts can change what it relays. Edits change the answer in place.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import grpc
from tee_agent_rpc import agent_pb2_grpc as pb_grpc

Edit = Callable[[Any], None]


def _unchanged(_: Any) -> None:
    pass


class _Relay(pb_grpc.AgentServicer):  # type: ignore[misc]  # generated, untyped
    def __init__(self, upstream: Any, attestation: Edit, receipts: Edit) -> None:
        self.upstream = upstream
        self.edit_attestation = attestation
        self.edit_receipts = receipts

    def GetAttestation(self, request: Any, context: Any) -> Any:
        answer = self.upstream.GetAttestation(request)
        self.edit_attestation(answer)
        return answer

    def GetStatus(self, request: Any, context: Any) -> Any:
        return self.upstream.GetStatus(request)

    def ListReceipts(self, request: Any, context: Any) -> Any:
        answer = self.upstream.ListReceipts(request)
        self.edit_receipts(answer)
        return answer


@contextmanager
def relay(
    upstream: Any, *, attestation: Edit = _unchanged, receipts: Edit = _unchanged
) -> Iterator[str]:
    """HOST:PORT of a relay to `upstream` (an Agent stub) applying these edits."""
    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    pb_grpc.add_AgentServicer_to_server(_Relay(upstream, attestation, receipts), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


def cut_signatures(answer: Any) -> None:
    """Each receipt's signature cut to 3 bytes."""
    for event in answer.receipts:
        event.receipt.signature = event.receipt.signature[:3]


def flip_first_digest(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events in dstack's JSON form, one bit of the first one's digest flipped."""
    digest = bytearray.fromhex(events[0]["digest"])
    digest[0] ^= 1
    return [{**events[0], "digest": digest.hex()}, *events[1:]]


def flip_first_event(answer: Any) -> None:
    """One bit of the first event's digest flipped, in the served event log."""
    answer.event_log = json.dumps(flip_first_digest(json.loads(answer.event_log))).encode()
