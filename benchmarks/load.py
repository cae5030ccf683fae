"""Calls per second and health latency with 50 clients at once, beside one client alone.

A real host (in this process, as `tests.host_harness.running_host` runs it) with its real
enclave process, rule policy and SQLite store, on 127.0.0.1. The load (tests/test_load.py):
50 clients, each on its own channel, make 200 mixed read calls (GetStatus, ListReceipts,
GetReceipt, GetAttestation, WatchDecisions, and a few requests the API refuses with a
documented error) and one market-data stream of 5 ticks, while a prober checks health every
50 ms. Baseline, measured in the same run on the same host: one client doing the same.
The clients run in this process too, so they share its interpreter lock with the server:
the figures are a floor for clients on other machines.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

from tests.enclave_harness import EnclaveWorld
from tests.host_harness import running_host
from tests.load_harness import (
    DOCUMENTED_ERRORS,
    OK,
    PREFED_TICKS,
    LoadResult,
    SeqBlocks,
    percentile,
    prefeed,
    run_load,
)

CLIENTS = 50
CALLS = 200
SEED = 12
HEALTH_TARGET_SECONDS = 1.0


def _describe(name: str, result: LoadResult) -> str:
    health = result.health_seconds
    codes = Counter(call.code for call in result.calls)
    unexpected = sum(count for code, count in codes.items() if code not in {OK, *DOCUMENTED_ERRORS})
    return (f"{name}: {len(result.calls):,} calls in {result.seconds:.1f} s, "
            f"{result.calls_per_second:,.0f} calls/s; health p50 {percentile(health, 0.5) * 1e3:.1f} "
            f"ms, p99 {percentile(health, 0.99) * 1e3:.1f} ms, max {max(health) * 1e3:.1f} ms "
            f"({len(health)} checks); undocumented answers: {unexpected}")  # fmt: skip


def main() -> dict[str, float]:
    """Measure and print; returns the figures by name."""
    with tempfile.TemporaryDirectory() as tmp:
        world = EnclaveWorld(Path(tmp))
        world.write_config(decision_interval_seconds=3600)
        with running_host(world) as host:
            address = f"127.0.0.1:{host.running.port}"
            head = prefeed(host.stub)
            seqs = SeqBlocks(PREFED_TICKS + 1)
            alone = run_load(address, clients=1, calls=CALLS, seed=SEED, head=head, seqs=seqs)
            loaded = run_load(address, clients=CLIENTS, calls=CALLS, seed=SEED, head=head,
                              seqs=seqs)  # fmt: skip
    worst = max(loaded.health_seconds)
    verdict = "ok" if worst < HEALTH_TARGET_SECONDS else "MISSED"
    print(f"load: {CLIENTS} clients x {CALLS} mixed read calls + 1 stream each; target: "
          f"health within {HEALTH_TARGET_SECONDS:.0f} s throughout [{verdict}]")  # fmt: skip
    print("  " + _describe(f"{CLIENTS} clients", loaded))
    print("  " + _describe("baseline, 1 client", alone))
    return {
        "calls_per_second": loaded.calls_per_second,
        "baseline_calls_per_second": alone.calls_per_second,
        "health_p50": percentile(loaded.health_seconds, 0.5),
        "health_p99": percentile(loaded.health_seconds, 0.99),
        "health_max": worst,
        "baseline_health_max": max(alone.health_seconds),
    }


if __name__ == "__main__":
    main()
