"""Ticks per second from a gRPC client through the host into the enclave, beside an echo.

End to end: a real host (in this process, as `tests.host_harness.running_host` runs it) with
its real enclave process, SQLite store and sealed state, fed by a client stream of TickBatch
messages on 127.0.0.1. Baseline: a minimal grpcio server in this same process that only
counts the ticks of each TickBatch it receives and returns a StreamSummary, fed the same
batches by the same client code. Both see the same message shapes (1,000 and 5,000 ticks per
batch); the ratio is what the host and the enclave cost on top of gRPC itself. Ticks are a
second apart (decision_interval_seconds = 3600: one decision per hour of market time), all
accepted. Not pinned to a core: the enclave is a process of its own.

`python -m benchmarks.host_throughput --profile` adds a cProfile of the host side (the
server threads of this process) for one end-to-end stream and prints where the time goes.
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

from tests.enclave_harness import START_MS, EnclaveWorld
from tests.host_harness import AUTH, running_host

TICKS = 200_000
BATCH_SIZES = (1_000, 5_000)
ROUNDS = 3
TICK_MS = 1_000
TARGET_RATE = 50_000
TARGET_RATIO = 0.5
OPTIONS = [("grpc.max_receive_message_length", 4 << 20), ("grpc.max_send_message_length", 4 << 20)]


class TickSource:
    """Ticks a second apart with strictly increasing seq across every stream of the run."""

    def __init__(self) -> None:
        self.next_seq = 1

    def batches(self, count: int, size: int) -> list[pb.TickBatch]:
        out = []
        for start in range(0, count, size):
            ticks = []
            for index in range(start, min(start + size, count)):
                seq = self.next_seq + index
                price = 2000.0 + 25.0 * ((seq // 3600) % 2) + (seq % 37) * 0.5
                ticks.append(pb.Tick(seq=seq, timestamp_ms=START_MS + seq * TICK_MS,
                                     pair="ETH/USDT", price=price, volume=1.0))  # fmt: skip
            out.append(pb.TickBatch(ticks=ticks))
        self.next_seq += count
        return out


def _echo_server() -> tuple[grpc.Server, int]:
    """The baseline: StreamMarketData that only counts the ticks of each batch."""

    def count(requests: Iterator[pb.TickBatch], context: Any) -> pb.StreamSummary:
        received = sum(len(batch.ticks) for batch in requests)
        return pb.StreamSummary(received=received, accepted=received)

    handler = grpc.stream_unary_rpc_method_handler(
        count, request_deserializer=pb.TickBatch.FromString,
        response_serializer=pb.StreamSummary.SerializeToString,
    )  # fmt: skip
    service = grpc.method_handlers_generic_handler(
        "tee_agent.v1.Agent", {"StreamMarketData": handler}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), options=OPTIONS)
    server.add_generic_rpc_handlers((service,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def _stream(stub: Any, batches: list[pb.TickBatch]) -> float:
    """Send one client stream; returns ticks per second. Raises AssertionError on loss."""
    ticks = sum(len(batch.ticks) for batch in batches)
    started = time.perf_counter()
    summary = stub.StreamMarketData(iter(batches), metadata=AUTH, timeout=600)
    elapsed = time.perf_counter() - started
    assert summary.received == summary.accepted == ticks, summary
    return ticks / elapsed


def main(profile: bool = False) -> dict[str, float]:
    """Measure and print; returns the figures by name."""
    figures: dict[str, float] = {}
    source = TickSource()
    echo, echo_port = _echo_server()
    echo_channel = grpc.insecure_channel(f"127.0.0.1:{echo_port}", options=OPTIONS)
    echo_stub = pb_grpc.AgentStub(echo_channel)
    with tempfile.TemporaryDirectory() as tmp:
        world = EnclaveWorld(Path(tmp))
        world.write_config(decision_interval_seconds=3600)
        with running_host(world) as host:
            _stream(host.stub, source.batches(20_000, 1_000))  # warm-up: both paths
            _stream(echo_stub, source.batches(20_000, 1_000))
            print(f"host throughput: {TICKS:,} ticks per stream, ticks {TICK_MS} ms apart, "
                  f"best of {ROUNDS} rounds; targets >= {TARGET_RATE:,} ticks/s end to end and "
                  f">= {TARGET_RATIO} of the echo baseline")  # fmt: skip
            for size in BATCH_SIZES:
                ours, echo_rates = [], []
                for _ in range(ROUNDS):
                    ours.append(_stream(host.stub, source.batches(TICKS, size)))
                    echo_rates.append(_stream(echo_stub, source.batches(TICKS, size)))
                end_to_end, baseline = max(ours), max(echo_rates)
                _report(size, end_to_end, baseline, statistics.median(ours))
                figures[f"end_to_end_{size}"] = end_to_end
                figures[f"echo_{size}"] = baseline
            receipts = host.stub.GetStatus(pb.GetStatusRequest()).receipts
            print(f"  ({receipts:,} receipts signed and stored during the run)")
            if profile:
                _profile(lambda: _stream(host.stub, source.batches(TICKS, BATCH_SIZES[0])))
    echo_channel.close()
    echo.stop(grace=None)
    return figures


def _report(size: int, end_to_end: float, baseline: float, median: float) -> None:
    ratio = end_to_end / baseline
    verdict = "meets" if end_to_end >= TARGET_RATE and ratio >= TARGET_RATIO else "MISSES"
    print(f"  batches of {size:>5,}: end to end {end_to_end:>9,.0f} ticks/s (median "
          f"{median:,.0f}), echo baseline {baseline:>9,.0f} ticks/s, ratio {ratio:.2f} "
          f"-> {verdict} the targets")  # fmt: skip


def _profile(run: Callable[[], float]) -> None:
    """cProfile the host's side of one stream: the servicer thread that reads the client
    stream, converts each batch, and calls the enclave and the store (AgentService._call)."""
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
    print(f"  profiled stream (batches of {BATCH_SIZES[0]:,}): {rate:,.0f} ticks/s under cProfile")
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(20)
    print(text.getvalue())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--profile", action="store_true", help="also cProfile the host side")
    main(profile=parser.parse_args().profile)
