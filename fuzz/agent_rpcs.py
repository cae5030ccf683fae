"""Target `agent_rpcs`: every public RPC's request bytes (proto/tee_agent_rpc/agent.proto),
sent as raw bytes over a real channel to a real host (sim enclave process, rule policy,
SQLite) started once per process by `prepare`.

The first byte picks the RPC and whether the bearer token goes along; for StreamMarketData
the rest is cut into several TickBatch messages (`fuzz.harness.split`). Documented outcomes
(docs/host.md, "Public API"): OK, INVALID_ARGUMENT (malformed request, bad batch, wrong-sized
nonce), NOT_FOUND (no such receipt), UNAUTHENTICATED (a write RPC without the token),
PERMISSION_DENIED (an owner command the enclave refuses), RESOURCE_EXHAUSTED (a
WatchDecisions beyond the bound of open ones, a watcher that fell behind). WatchDecisions stays open for
live receipts, so it is read until a short deadline: DEADLINE_EXCEEDED is its normal end.
Anything else (UNKNOWN, INTERNAL, UNAVAILABLE: the enclave fell over) is a finding.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import grpc
from tee_agent_rpc import agent_pb2 as pb
from tee_agent_rpc import messages_pb2 as messages

from enclave.owner import make_owner_command
from fuzz.harness import Finding, choose, join, split, with_choice
from tests.enclave_harness import EnclaveWorld
from tests.host_harness import AUTH, HostUnderTest, running_host, tick_batches

METHODS = (
    "StreamMarketData",
    "WatchDecisions",
    "GetAttestation",
    "GetStatus",
    "ListReceipts",
    "GetReceipt",
    "SubmitOwnerCommand",
)
DOCUMENTED = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
WATCH_SECONDS = 0.2
CALL_SECONDS = 60.0  # a guard against a hang only

_host: list[tuple[HostUnderTest, EnclaveWorld]] = []


def prepare() -> HostUnderTest:
    """Start the host (once per process; stopped at exit)."""
    if _host:
        return _host[0][0]
    root = Path(tempfile.mkdtemp(prefix="tee-agent-fuzz-host-"))
    stack = ExitStack()
    stack.callback(shutil.rmtree, root, ignore_errors=True)
    world = EnclaveWorld(root)
    world.write_config(decision_interval_seconds=3600)
    _host.append((stack.enter_context(running_host(world)), world))
    atexit.register(stack.close)
    return _host[0][0]


def TestOneInput(data: bytes) -> None:
    channel = prepare().channel
    index, payload = choose(data, 2 * len(METHODS))
    method, authorized = METHODS[index % len(METHODS)], index < len(METHODS)
    path = f"/tee_agent.v1.Agent/{method}"
    metadata = AUTH if authorized else ()
    try:
        if method == "StreamMarketData":
            parts = split(payload, 4)
            channel.stream_unary(path)(iter(parts), metadata=metadata, timeout=CALL_SECONDS)
        elif method == "WatchDecisions":
            _drain(channel.unary_stream(path)(payload, metadata=metadata, timeout=WATCH_SECONDS))
        else:
            channel.unary_unary(path)(payload, metadata=metadata, timeout=CALL_SECONDS)
    except grpc.RpcError as exc:
        code = exc.code()
        if code in DOCUMENTED:
            return
        if method == "WatchDecisions" and code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return
        raise Finding(f"{method} answered {code.name}: {exc.details()}") from None


def _drain(events: Iterator[bytes]) -> None:
    for _ in events:
        pass


def seeds() -> list[bytes]:
    host = prepare()
    identity = host.agent.supervisor.identity
    batches = [batch.SerializeToString() for batch in tick_batches(6, batch=3, first_seq=1)]
    requests: dict[str, list[bytes]] = {
        "StreamMarketData": [join(batches), join([b"", batches[0]])],
        "WatchDecisions": [pb.WatchDecisionsRequest(from_seq=1).SerializeToString()],
        "GetAttestation": [pb.GetAttestationRequest(nonce=bytes(range(32))).SerializeToString()],
        "GetStatus": [b""],
        "ListReceipts": [pb.ListReceiptsRequest(from_seq=1, limit=10).SerializeToString()],
        "GetReceipt": [pb.GetReceiptRequest(seq=1).SerializeToString()],
        "SubmitOwnerCommand": [],
    }
    if identity is not None:
        owner = _host[0][1].owner
        command = make_owner_command(
            owner, identity.x25519_public_key, identity.address, "pause", 1
        )
        requests["SubmitOwnerCommand"].append(
            pb.SubmitOwnerCommandRequest(ciphertext=command).SerializeToString()
        )
    found = [
        with_choice(METHODS.index(method), payload)
        for method, payloads in requests.items()
        for payload in payloads
    ]
    found.append(with_choice(len(METHODS), join(batches)))  # a write without the token
    found.append(messages.TickBatch().SerializeToString())
    return found
