"""host.metrics: counters after the host's calls, scraped over real HTTP on 127.0.0.1."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from host.metrics import HostMetrics, MetricsError

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.status == 200
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.fixture
def served() -> Iterator[tuple[HostMetrics, int]]:
    metrics = HostMetrics()
    port = free_port()
    stop = metrics.serve(f"127.0.0.1:{port}")
    try:
        yield metrics, port
    finally:
        stop()


def test_counters_after_the_hosts_calls(served: tuple[HostMetrics, int]) -> None:
    metrics, port = served
    metrics.tick_results(5, ["stale_tick", "stale_tick", "duplicate_seq"])
    metrics.tick_results(3, [])
    for verdict in (
        "signed",
        "signed",
        "hold",
        "refused:max_notional_per_trade",
        "refused:paused",
        "ticks_refused:3",  # refused ticks: counted by tick_results, not again here
        "owner:pause",
        "replaced:1",  # a trade signed again at a higher fee: a signature, no decision
        "stuck_at_fee_cap:1",  # neither
    ):
        metrics.receipt(verdict)
    metrics.restart()
    metrics.restart()
    metrics.set_enclave_up(True)
    metrics.transaction("signed")
    metrics.transaction("mined")
    metrics.transaction("mined")
    metrics.rpc("Status", 0.002)
    metrics.rpc("Status", 0.2)
    metrics.rpc("Receipts", 0.01)
    metrics.decision_times([1.5, 0.5])
    metrics.enclave_call_time("Ingest", 0.03)

    samples = scrape(port)
    assert samples["ticks_accepted_total", ()] == 8
    assert samples["ticks_refused_total", (("reason", "stale_tick"),)] == 2
    assert samples["ticks_refused_total", (("reason", "duplicate_seq"),)] == 1
    assert samples["decisions_total", (("action", "signed"),)] == 2
    assert samples["decisions_total", (("action", "hold"),)] == 1
    assert samples["decisions_total", (("action", "refused"),)] == 2
    assert ("decisions_total", (("action", "owner"),)) not in samples
    assert samples["signatures_total", ()] == 3
    assert samples["guardrail_refusals_total", (("guardrail", "max_notional_per_trade"),)] == 1
    assert samples["guardrail_refusals_total", (("guardrail", "paused"),)] == 1
    assert ("guardrail_refusals_total", (("guardrail", "stale_tick"),)) not in samples
    assert samples["enclave_restarts_total", ()] == 2
    assert samples["enclave_up", ()] == 1
    assert samples["transactions_total", (("status", "mined"),)] == 2
    assert samples["transactions_total", (("status", "signed"),)] == 1
    assert samples["rpc_latency_seconds_count", (("method", "Status"),)] == 2
    assert samples["rpc_latency_seconds_sum", (("method", "Status"),)] == pytest.approx(0.202)
    assert samples["rpc_latency_seconds_bucket", (("le", "0.005"), ("method", "Status"))] == 1
    assert samples["rpc_latency_seconds_count", (("method", "Receipts"),)] == 1
    assert samples["decision_latency_seconds_count", ()] == 2
    assert samples["decision_latency_seconds_sum", ()] == 2.0
    assert samples["enclave_call_seconds_count", (("call", "Ingest"),)] == 1

    metrics.set_enclave_up(False)
    metrics.tick_results(1, [])
    samples = scrape(port)
    assert samples["enclave_up", ()] == 0
    assert samples["ticks_accepted_total", ()] == 9


def test_each_instance_has_its_own_registry(served: tuple[HostMetrics, int]) -> None:
    metrics, port = served
    other = HostMetrics()  # would raise "Duplicated timeseries" on a shared registry
    other.tick_results(100, [])
    metrics.tick_results(1, [])
    assert scrape(port)["ticks_accepted_total", ()] == 1
    assert other.registry is not metrics.registry


def test_stop_closes_the_endpoint() -> None:
    metrics = HostMetrics()
    port = free_port()
    stop = metrics.serve(f"127.0.0.1:{port}")
    assert ("enclave_up", ()) in scrape(port)
    stop()
    with pytest.raises(urllib.error.URLError):
        scrape(port)


def test_bad_or_busy_addresses() -> None:
    metrics = HostMetrics()
    with pytest.raises(MetricsError, match="host:port"):
        metrics.serve("9464")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(MetricsError, match=f"cannot serve metrics on 127.0.0.1:{port}"):
            metrics.serve(f"127.0.0.1:{port}")
