"""Many clients at once against a real host: mixed read calls, one market-data stream
each, and a health prober timing every Check meanwhile (tests/test_load.py and
benchmarks/load.py)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tee_agent_rpc import agent_pb2 as pb
from tee_agent_rpc import agent_pb2_grpc as pb_grpc
from tee_agent_rpc import messages_pb2 as messages

from tests.enclave_harness import START_MS
from tests.host_harness import AUTH, tick_batches

OK = grpc.StatusCode.OK
# The errors the public API documents (docs/host.md, "Public API"): a malformed request, a
# batch over the limit or a wrong-sized nonce INVALID_ARGUMENT; a missing receipt
# NOT_FOUND; a write RPC without the token UNAUTHENTICATED; a refused owner command
# PERMISSION_DENIED; a WatchDecisions beyond the bound of open ones, or one that fell
# behind, RESOURCE_EXHAUSTED. A call may end with OK or one of these, nothing else.
DOCUMENTED_ERRORS = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
TICKS_PER_STREAM = 5
PREFED_TICKS = 600  # a minute apart, one decision an hour: 10 receipts to read
CALL_TIMEOUT = 120.0  # a guard against a hang only
MINUTE_MS = 60_000


@dataclass(frozen=True)
class Call:
    method: str
    expected: grpc.StatusCode
    code: grpc.StatusCode
    seconds: float


@dataclass(frozen=True)
class StreamOutcome:
    code: grpc.StatusCode
    sent: int
    received: int
    accepted: int
    refused: int


@dataclass
class LoadResult:
    calls: list[Call] = field(default_factory=list)
    streams: list[StreamOutcome] = field(default_factory=list)
    health_seconds: list[float] = field(default_factory=list)
    health_statuses: set[int] = field(default_factory=set)
    seconds: float = 0.0

    @property
    def calls_per_second(self) -> float:
        return len(self.calls) / self.seconds


def prefeed(stub: Any) -> int:
    """Feed PREFED_TICKS ticks so there are receipts to read; returns the head seq."""
    summary = stub.StreamMarketData(
        tick_batches(PREFED_TICKS, batch=200), metadata=AUTH, timeout=CALL_TIMEOUT
    )
    assert summary.accepted == PREFED_TICKS, summary
    return int(stub.GetStatus(pb.GetStatusRequest(), timeout=CALL_TIMEOUT).receipts)


class SeqBlocks:
    """Hands each stream the next block of seqs, after the prefed ones."""

    def __init__(self, first: int) -> None:
        self._next = first
        self._lock = threading.Lock()

    def take(self, count: int) -> list[int]:
        with self._lock:
            block = list(range(self._next, self._next + count))
            self._next += count
            return block


def _planned(rng: random.Random, head: int) -> tuple[str, Callable[[Any], object], grpc.StatusCode]:
    """One read call, chosen by `rng`: (method, how to make it, the status it must get)."""
    pick = rng.random()
    if pick < 0.30:
        return "GetStatus", lambda s: s.GetStatus(pb.GetStatusRequest(), timeout=CALL_TIMEOUT), OK
    if pick < 0.55:
        start, limit = rng.randint(1, head), rng.randint(1, 50)
        request = pb.ListReceiptsRequest(from_seq=start, limit=limit)
        return "ListReceipts", lambda s: s.ListReceipts(request, timeout=CALL_TIMEOUT), OK
    if pick < 0.75:
        get = pb.GetReceiptRequest(seq=rng.randint(1, head))
        return "GetReceipt", lambda s: s.GetReceipt(get, timeout=CALL_TIMEOUT), OK
    if pick < 0.90:
        nonce = rng.randbytes(32)
        attest = pb.GetAttestationRequest(nonce=nonce)
        return "GetAttestation", lambda s: s.GetAttestation(attest, timeout=CALL_TIMEOUT), OK
    if pick < 0.95:
        return "WatchDecisions", lambda s: _watch_stored(s, min(head, 3)), OK
    # Requests the API refuses, with the documented status.
    wrong = rng.randrange(3)
    if wrong == 0:
        short = pb.GetAttestationRequest(nonce=rng.randbytes(31))
        return ("GetAttestation", lambda s: s.GetAttestation(short, timeout=CALL_TIMEOUT),
                grpc.StatusCode.INVALID_ARGUMENT)  # fmt: skip
    if wrong == 1:
        too_many = pb.ListReceiptsRequest(from_seq=1, limit=1001)
        return ("ListReceipts", lambda s: s.ListReceipts(too_many, timeout=CALL_TIMEOUT),
                grpc.StatusCode.INVALID_ARGUMENT)  # fmt: skip
    missing = pb.GetReceiptRequest(seq=10**12)
    return ("GetReceipt", lambda s: s.GetReceipt(missing, timeout=CALL_TIMEOUT),
            grpc.StatusCode.NOT_FOUND)  # fmt: skip


def _watch_stored(stub: Any, count: int) -> None:
    """Read the first `count` stored receipts of WatchDecisions, then leave."""
    events = stub.WatchDecisions(pb.WatchDecisionsRequest(from_seq=1), timeout=CALL_TIMEOUT)
    try:
        for index, _event in enumerate(events, start=1):
            if index >= count:
                break
    finally:
        events.cancel()


def _stream(stub: Any, seqs: list[int], rng: random.Random) -> StreamOutcome:
    batch = messages.TickBatch(
        pair="ETH/USDT",
        seq=seqs,
        timestamp_ms=[START_MS + seq * MINUTE_MS for seq in seqs],
        price=[2000.0 + rng.uniform(-2, 2) for _ in seqs],
        volume=[1.0] * len(seqs),
    )
    try:
        summary = stub.StreamMarketData(iter([batch]), metadata=AUTH, timeout=CALL_TIMEOUT)
    except grpc.RpcError as exc:
        return StreamOutcome(exc.code(), len(seqs), 0, 0, 0)
    return StreamOutcome(OK, len(seqs), summary.received, summary.accepted, summary.refused)


def _client(
    address: str, index: int, calls: int, seed: int, head: int, seqs: SeqBlocks
) -> tuple[list[Call], StreamOutcome]:
    rng = random.Random(seed * 1_000_003 + index)
    stream_at = rng.randrange(calls)
    made: list[Call] = []
    stream = None
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.AgentStub(channel)
        for number in range(calls):
            if number == stream_at:
                stream = _stream(stub, seqs.take(TICKS_PER_STREAM), rng)
            method, call, expected = _planned(rng, head)
            started = time.perf_counter()
            try:
                call(stub)
                code = OK
            except grpc.RpcError as exc:
                code = exc.code()
            made.append(Call(method, expected, code, time.perf_counter() - started))
    assert stream is not None
    return made, stream


class HealthProber:
    """Checks health over its own channel until stopped, timing each Check."""

    def __init__(self, address: str, interval: float = 0.05) -> None:
        self.seconds: list[float] = []
        self.statuses: set[int] = set()
        self._address = address
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="health-prober", daemon=True)

    def __enter__(self) -> HealthProber:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=CALL_TIMEOUT)

    def _run(self) -> None:
        with grpc.insecure_channel(self._address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            request = health_pb2.HealthCheckRequest(service="")
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    status = stub.Check(request, timeout=CALL_TIMEOUT).status
                except grpc.RpcError:
                    status = -1
                self.seconds.append(time.perf_counter() - started)
                self.statuses.add(status)
                self._stop.wait(self._interval)


def run_load(
    address: str,
    *,
    clients: int,
    calls: int,
    seed: int,
    head: int,
    seqs: SeqBlocks | None = None,
) -> LoadResult:
    """`clients` clients at once, each with its own channel making `calls` mixed read calls
    and one market-data stream (ticks from `seqs`, by default those after the prefed ones),
    while a prober times health; returns what each got."""
    result = LoadResult()
    seqs = seqs or SeqBlocks(PREFED_TICKS + 1)
    with HealthProber(address) as prober:
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=clients) as pool:
            futures = [
                pool.submit(_client, address, index, calls, seed, head, seqs)
                for index in range(clients)
            ]
            for future in futures:
                made, stream = future.result(timeout=CALL_TIMEOUT * calls)
                result.calls.extend(made)
                result.streams.append(stream)
        result.seconds = time.perf_counter() - started
    result.health_seconds = prober.seconds
    result.health_statuses = prober.statuses
    return result


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
