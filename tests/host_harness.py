"""A real host (in this process) with its real enclave process, on real sockets."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from tee_agent_rpc import agent_pb2_grpc as pb_grpc
from tee_agent_rpc import messages_pb2 as messages

from host.config import load_host_config
from host.metrics import HostMetrics
from host.run import RunningHost, start_host
from tests.enclave_harness import HOUR_MS, START_MS, EnclaveWorld

TOKEN = "test-token-0123456789"
AUTH = (("authorization", f"Bearer {TOKEN}"),)


def host_toml(world: EnclaveWorld, data_dir: Path, **market: Any) -> str:
    lines = [f"{key} = {value!r}".replace("'", '"') for key, value in market.items()]
    return f"""
[host]
listen = "127.0.0.1:50051"  # the tests bind 127.0.0.1:0 instead
data_dir = "{data_dir}"
auth_token = "{TOKEN}"
metrics_listen = ""

[enclave]
config = "{world.config_path}"
sim_dir = "{world.sim_dir}"
ready_timeout_seconds = 300  # a guard against a hang: the host waits for readiness
restart_backoff_initial_seconds = 0.1
restart_backoff_max_seconds = 1

[market]
source = "none"
{chr(10).join(lines)}
"""


@dataclass
class HostUnderTest:
    running: RunningHost
    channel: grpc.Channel
    stub: Any
    metrics: HostMetrics

    @property
    def agent(self) -> Any:
        return self.running.agent


@contextmanager
def running_host(world: EnclaveWorld, data_dir: Path | None = None) -> Iterator[HostUnderTest]:
    data_dir = data_dir or world.root / "data"
    config_file = world.root / "tee-agent.toml"
    config_file.write_text(host_toml(world, data_dir))
    metrics = HostMetrics()
    running = start_host(load_host_config(config_file), listen="127.0.0.1:0", metrics=metrics)
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield HostUnderTest(running, channel, pb_grpc.AgentStub(channel), metrics)
    finally:
        channel.close()
        running.stop()


def tick_batches(
    count: int, batch: int = 1000, first_seq: int = 1, minute_ms: int = 60_000
) -> Iterator[messages.TickBatch]:
    """`count` ticks a minute apart in batches, price wandering gently with a few spikes."""
    for start in range(0, count, batch):
        indexes = range(start, min(start + batch, count))
        prices = []
        for index in indexes:
            price = 2000.0 + 50.0 * ((index // 600) % 2) + (index % 37) * 0.5
            if index % 25_000 == 12_345:
                price *= 1.5  # a spike the enclave refuses as a price jump
            prices.append(price)
        seqs = [first_seq + index for index in indexes]
        yield messages.TickBatch(
            pair="ETH/USDT",
            seq=seqs,
            timestamp_ms=[START_MS + seq * minute_ms for seq in seqs],
            price=prices,
            volume=[1.0] * len(seqs),
        )


__all__ = ["AUTH", "HOUR_MS", "TOKEN", "running_host", "tick_batches"]
