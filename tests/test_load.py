"""A bounded load test: 50 clients at once against a real host (sim enclave process, rule
policy, SQLite, TCP), each making 200 mixed read calls and one market-data stream, while a
prober checks health throughout. Health answers within a second the whole time, and every
call gets OK or the documented error it was built to get."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tee_agent_rpc import agent_pb2 as pb
from tee_agent_rpc import agent_pb2_grpc as pb_grpc
from tee_agent_rpc import messages_pb2 as messages

from host.api import ApiSettings
from tests.enclave_harness import EnclaveWorld
from tests.host_harness import AUTH, running_host
from tests.load_harness import (
    DOCUMENTED_ERRORS,
    OK,
    TICKS_PER_STREAM,
    percentile,
    prefeed,
    run_load,
)

CLIENTS = 50
CALLS = 200
SEED = 12
HEALTH_BOUND_SECONDS = 1.0


@pytest.fixture
def world(tmp_path: Path) -> EnclaveWorld:
    world = EnclaveWorld(tmp_path)
    world.write_config(decision_interval_seconds=3600)
    return world


def test_50_clients_get_only_documented_answers_while_health_answers_within_a_second(
    world: EnclaveWorld,
) -> None:
    with running_host(world) as host:
        head = prefeed(host.stub)
        assert head >= 5
        result = run_load(
            f"127.0.0.1:{host.running.port}", clients=CLIENTS, calls=CALLS, seed=SEED, head=head
        )
        status = host.stub.GetStatus(pb.GetStatusRequest())

    codes = Counter(call.code for call in result.calls)
    print(
        f"\n{len(result.calls)} calls in {result.seconds:.1f} s ({result.calls_per_second:,.0f}/s); "
        f"health over {len(result.health_seconds)} checks: p50 "
        f"{percentile(result.health_seconds, 0.5) * 1000:.1f} ms, p99 "
        f"{percentile(result.health_seconds, 0.99) * 1000:.1f} ms, max "
        f"{max(result.health_seconds) * 1000:.1f} ms; codes {dict(codes)}"
    )
    assert len(result.calls) == CLIENTS * CALLS
    assert set(codes) <= {OK, *DOCUMENTED_ERRORS}, codes
    wrong = [call for call in result.calls if call.code != call.expected]
    assert not wrong, wrong[:5]
    # The plan includes refused requests: the documented errors were really exercised.
    assert codes[grpc.StatusCode.INVALID_ARGUMENT] > 0 and codes[grpc.StatusCode.NOT_FOUND] > 0

    assert len(result.streams) == CLIENTS
    assert all(s.code == OK and s.received == s.sent == TICKS_PER_STREAM for s in result.streams)
    assert sum(s.accepted + s.refused for s in result.streams) == CLIENTS * TICKS_PER_STREAM
    assert status.ticks_accepted + status.ticks_refused >= CLIENTS * TICKS_PER_STREAM

    assert len(result.health_seconds) >= 10
    assert result.health_statuses == {health_pb2.HealthCheckResponse.SERVING}
    assert max(result.health_seconds) < HEALTH_BOUND_SECONDS, sorted(result.health_seconds)[-5:]


def test_health_answers_while_open_streams_hold_every_thread_of_the_shared_pool(
    world: EnclaveWorld,
) -> None:
    """A market-data stream holds a thread of the server's pool for as long as it is open.
    With the pool full the agent's RPCs wait; health, on threads of its own, answers."""
    release = threading.Event()

    def idle() -> Iterator[messages.TickBatch]:
        release.wait(300)  # a guard against a hang only: the test sets it
        yield from ()

    with running_host(world) as host:
        streams = [
            host.stub.StreamMarketData.future(idle(), metadata=AUTH, timeout=300)
            for _ in range(ApiSettings.max_workers)
        ]
        try:
            deadline = time.monotonic() + 300  # a guard against a hang only
            while not _waits(host.stub):  # until the streams fill the pool
                assert time.monotonic() < deadline, "the streams never filled the pool"
            health = health_pb2_grpc.HealthStub(host.channel)
            started = time.perf_counter()
            answer = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
            assert time.perf_counter() - started < HEALTH_BOUND_SECONDS
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        finally:
            release.set()
        assert all(stream.result(timeout=300).received == 0 for stream in streams)


def test_watchers_beyond_the_bound_are_refused_and_cannot_stall_the_agent(
    world: EnclaveWorld,
) -> None:
    """WatchDecisions needs no token and holds a thread while open: at most max_watchers
    at once, so idle watchers from anyone leave the agent's RPCs threads to run on."""
    with running_host(world) as host:
        channel = grpc.insecure_channel(f"127.0.0.1:{host.running.port}")
        stub = pb_grpc.AgentStub(channel)
        watchers = [
            stub.WatchDecisions(pb.WatchDecisionsRequest(from_seq=0), timeout=300)
            for _ in range(ApiSettings.max_watchers)
        ]
        try:
            deadline = time.monotonic() + 300  # a guard against a hang only
            while True:  # until every watcher is open on the server: one more is refused
                extra = stub.WatchDecisions(pb.WatchDecisionsRequest(from_seq=0), timeout=0.5)
                code = _first_code(extra)
                if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    break
                assert code == grpc.StatusCode.DEADLINE_EXCEEDED, code
                assert time.monotonic() < deadline, "the watchers never all opened"
            started = time.perf_counter()
            host.stub.GetStatus(pb.GetStatusRequest(), timeout=10)
            assert time.perf_counter() - started < HEALTH_BOUND_SECONDS
        finally:
            for watcher in watchers:
                watcher.cancel()
            channel.close()


def _first_code(call: Any) -> grpc.StatusCode:
    """How a WatchDecisions call with nothing to send ends: its status code."""
    try:
        for _ in call:
            pass
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def _waits(stub: pb_grpc.AgentStub) -> bool:
    """Whether GetStatus, a quick read, waits past half a second (for a free thread)."""
    try:
        stub.GetStatus(pb.GetStatusRequest(), timeout=0.5)
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            return True
        raise
    return False
