"""Ticks per second from a gRPC client through the host into the enclave, beside an echo.

End to end: a real host (in this process, as `tests.host_harness.running_host` runs it) with
its real enclave process, SQLite store and sealed state, fed a client stream of TickBatch
messages on 127.0.0.1. Baseline: a plain grpcio streaming echo in this same process, which
sends every TickBatch it receives straight back, fed the same batches (1,000, 2,000 and
5,000 ticks) by the same client code. For scale: a sink that only counts the ticks of each
batch (half an echo), and the enclave's gRPC service alone (called in this process: no
socket, no host) on the same batches.

Each stream carries 1,000,000 ticks, so each figure is a steady rate: a stream of 200,000
lasts about 50 ms here, of which its start (the first batch on its way) and its end (the
last batches through the enclave, the final release) take about 15 ms on our side.

Ticks are a second apart and all accepted; decision_interval_seconds = 3600, so one decision
(a signed receipt) per 3,600 ticks. Not pinned to a core: the enclave is its own process.
The echo's cost per tick keeps falling as batches grow (it never looks at a tick), while
the agent's is bounded by the enclave's own work on every tick and decision, so the ratio
falls as batches grow.

`python -m benchmarks.host_throughput --profile` adds cProfile listings of the host side of
one stream (the servicer thread: AgentService._call) and of the enclave service alone.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from tee_agent_rpc import agent_pb2 as pb
from tee_agent_rpc import agent_pb2_grpc as pb_grpc
from tee_agent_rpc import messages_pb2 as messages

from tests.enclave_harness import START_MS, EnclaveWorld, serialized
from tests.host_harness import AUTH, running_host

TICKS = 1_000_000
BATCH_SIZES = (1_000, 2_000, 5_000)
ROUNDS = 3
TICK_MS = 1_000
TARGET_RATE = 50_000
TARGET_RATIO = 0.5
OPTIONS = [("grpc.max_receive_message_length", 4 << 20), ("grpc.max_send_message_length", 4 << 20)]


class TickSource:
    """Ticks TICK_MS apart, seq strictly increasing across every stream of the run."""

    def __init__(self) -> None:
        self.next_seq = 1

    def batches(self, count: int, size: int) -> list[messages.TickBatch]:
        out = []
        for start in range(0, count, size):
            seqs = range(self.next_seq + start, self.next_seq + min(start + size, count))
            out.append(
                messages.TickBatch(
                    pair="ETH/USDT",
                    seq=seqs,
                    timestamp_ms=[START_MS + seq * TICK_MS for seq in seqs],
                    price=[2000.0 + 25.0 * ((seq // 3600) % 2) + (seq % 37) * 0.5 for seq in seqs],
                    volume=[1.0] * len(seqs),
                )
            )
        self.next_seq += count
        return out


def _baseline_server() -> tuple[grpc.Server, int]:
    """The baselines: /bench.Echo/Echo sends every TickBatch back; StreamMarketData only
    counts the ticks of each batch."""

    def echo(requests: Iterator[messages.TickBatch], context: Any) -> Iterator[messages.TickBatch]:
        yield from requests

    def count(requests: Iterator[messages.TickBatch], context: Any) -> pb.StreamSummary:
        received = sum(len(batch.seq) for batch in requests)
        return pb.StreamSummary(received=received, accepted=received)

    echo_handler = grpc.stream_stream_rpc_method_handler(
        echo, request_deserializer=messages.TickBatch.FromString,
        response_serializer=messages.TickBatch.SerializeToString,
    )  # fmt: skip
    count_handler = grpc.stream_unary_rpc_method_handler(
        count, request_deserializer=messages.TickBatch.FromString,
        response_serializer=pb.StreamSummary.SerializeToString,
    )  # fmt: skip
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), options=OPTIONS)
    server.add_generic_rpc_handlers((
        grpc.method_handlers_generic_handler("bench.Echo", {"Echo": echo_handler}),
        grpc.method_handlers_generic_handler("tee_agent.v1.Agent", {"StreamMarketData": count_handler}),
    ))  # fmt: skip
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def _stream(stub: Any, batches: list[messages.TickBatch]) -> float:
    """Send one client stream; returns ticks per second. Raises AssertionError on loss."""
    ticks = sum(len(batch.seq) for batch in batches)
    started = time.perf_counter()
    summary = stub.StreamMarketData(iter(batches), metadata=AUTH, timeout=600)
    elapsed = time.perf_counter() - started
    assert summary.received == summary.accepted == ticks, summary
    return ticks / elapsed


def _echo(channel: grpc.Channel, batches: list[messages.TickBatch]) -> float:
    """Send one stream to the echo and read every batch back; returns ticks per second."""
    call = channel.stream_stream(
        "/bench.Echo/Echo", request_serializer=messages.TickBatch.SerializeToString,
        response_deserializer=messages.TickBatch.FromString,
    )  # fmt: skip
    ticks = sum(len(batch.seq) for batch in batches)
    started = time.perf_counter()
    echoed = sum(len(batch.seq) for batch in call(iter(batches), timeout=600))
    elapsed = time.perf_counter() - started
    assert echoed == ticks, (echoed, ticks)
    return ticks / elapsed


def main(profile: bool = False) -> dict[str, float]:
    """Measure and print; returns the figures by name."""
    figures: dict[str, float] = {}
    # The agent's ticks follow each other without a gap (the enclave refuses one longer than
    # market.max_timestamp_gap_seconds); the baselines, which check nothing, take their own.
    source, baseline_source = TickSource(), TickSource()
    baseline, baseline_port = _baseline_server()
    channel = grpc.insecure_channel(f"127.0.0.1:{baseline_port}", options=OPTIONS)
    sink = pb_grpc.AgentStub(channel)
    with tempfile.TemporaryDirectory() as tmp:
        world = EnclaveWorld(Path(tmp))
        world.write_config(decision_interval_seconds=3600)
        with running_host(world) as host:
            _stream(host.stub, source.batches(20_000, 1_000))  # warm-up: every path
            _echo(channel, baseline_source.batches(20_000, 1_000))
            _stream(sink, baseline_source.batches(20_000, 1_000))
            print(f"host throughput: {TICKS:,} ticks per stream, {TICK_MS} ms apart, best of "
                  f"{ROUNDS}; targets: >= {TARGET_RATE:,} ticks/s end to end, >= {TARGET_RATIO} "
                  "of the echo baseline")  # fmt: skip
            for size in BATCH_SIZES:
                ours, echoes, sinks = [], [], []
                for _ in range(ROUNDS):
                    ours.append(_stream(host.stub, source.batches(TICKS, size)))
                    echoes.append(_echo(channel, baseline_source.batches(TICKS, size)))
                    sinks.append(_stream(sink, baseline_source.batches(TICKS, size)))
                end_to_end, echo = max(ours), max(echoes)
                _report(size, end_to_end, echo, statistics.median(ours), max(sinks))
                figures[f"end_to_end_{size}"] = end_to_end
                figures[f"echo_{size}"] = echo
                figures[f"sink_{size}"] = max(sinks)
            receipts = host.stub.GetStatus(pb.GetStatusRequest()).receipts
            if profile:
                _profile_host(lambda: _stream(host.stub, source.batches(TICKS, BATCH_SIZES[0])))
        alone = _enclave_alone(world, TickSource().batches(TICKS, BATCH_SIZES[0]), profile)
        figures["enclave_alone"] = alone
        print(f"  enclave service alone (in-process, batches of {BATCH_SIZES[0]:,}): "
              f"{alone:>9,.0f} ticks/s; {receipts:,} receipts signed and stored by the host "
              "during the run")  # fmt: skip
    channel.close()
    baseline.stop(grace=None)
    return figures


def _report(size: int, end_to_end: float, echo: float, median: float, sink: float) -> None:
    ratio = end_to_end / echo
    rate_ok = "ok" if end_to_end >= TARGET_RATE else "MISSED"
    ratio_ok = "ok" if ratio >= TARGET_RATIO else "MISSED"
    print(f"  batches of {size:>5,}: end to end {end_to_end:>9,.0f} ticks/s (median "
          f"{median:,.0f}) [{rate_ok}], echo {echo:>10,.0f} ticks/s, ratio {ratio:.3f} "
          f"[{ratio_ok}]; a sink that only counts: {sink:,.0f} ticks/s")  # fmt: skip


def _profile_host(run: Callable[[], float]) -> None:
    """cProfile the host's side of one stream: the servicer thread that reads the client
    stream, converts each batch, calls the enclave and the store (AgentService._call)."""
    from host.api import AgentService

    profiler = cProfile.Profile()
    original = AgentService._call

    def profiled(self: Any, method: str, context: Any, work: Callable[[], Any]) -> Any:
        profiler.enable()
        try:
            return original(self, method, context, work)
        finally:
            profiler.disable()

    AgentService._call = profiled  # type: ignore[method-assign]
    try:
        rate = run()
    finally:
        AgentService._call = original  # type: ignore[method-assign]
    print(f"host side of one stream under cProfile ({rate:,.0f} ticks/s while profiled):")
    _print_stats(profiler)


def _enclave_alone(world: EnclaveWorld, batches: list[messages.TickBatch], profile: bool) -> float:
    """Ticks/s of the enclave's gRPC service called in this process on `batches` (as the
    IngestRequest the host sends, then Release), on a fresh state; then, with `profile`,
    the same under cProfile."""
    from tee_agent_rpc import enclave_pb2 as epb

    from enclave.config import load_config
    from enclave.core import EnclaveCore
    from enclave.server import PlatformChoice, make_platform, make_policy
    from enclave.service import EnclaveService

    requests = [epb.IngestRequest(tick_batches=serialized(batch)) for batch in batches]
    ticks = sum(len(batch.seq) for batch in batches)

    def run(profiler: cProfile.Profile | None) -> float:
        config = load_config(world.config_path)
        policy = make_policy(config)
        core = EnclaveCore(make_platform(PlatformChoice("sim", world.sim_dir), config, policy),
                           config, policy)  # fmt: skip
        core.open(b"")
        service = EnclaveService(core)
        started = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        for request in requests:
            response = service.Ingest(request, None)
            service.Release(epb.ReleaseRequest(state_version=response.state_version), None)
        if profiler is not None:
            profiler.disable()
        return ticks / (time.perf_counter() - started)

    rate = run(None)
    if profile:
        profiler = cProfile.Profile()
        profiled = run(profiler)
        print(f"enclave service alone under cProfile ({profiled:,.0f} ticks/s while profiled):")
        _print_stats(profiler)
    return rate


def _print_stats(profiler: cProfile.Profile) -> None:
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(18)
    print(text.getvalue())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="ticks/s through the host into the enclave")
    parser.add_argument("--profile", action="store_true", help="also cProfile host and enclave")
    main(profile=parser.parse_args().profile)
