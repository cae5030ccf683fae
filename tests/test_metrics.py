"""host.metrics: counters after the host's calls, scraped over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import math
import re
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from host.metrics import HostMetrics, LiveFigures, MetricsError

DASHBOARD = Path(__file__).resolve().parent.parent / "docs" / "grafana-dashboard.json"

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
    assert samples["tee_agent_ticks_accepted_total", ()] == 8
    assert samples["tee_agent_ticks_refused_total", (("reason", "stale_tick"),)] == 2
    assert samples["tee_agent_ticks_refused_total", (("reason", "duplicate_seq"),)] == 1
    assert samples["tee_agent_decisions_total", (("action", "signed"),)] == 2
    assert samples["tee_agent_decisions_total", (("action", "hold"),)] == 1
    assert samples["tee_agent_decisions_total", (("action", "refused"),)] == 2
    assert ("tee_agent_decisions_total", (("action", "owner"),)) not in samples
    assert samples["tee_agent_signatures_total", ()] == 3
    assert (
        samples["tee_agent_guardrail_refusals_total", (("guardrail", "max_notional_per_trade"),)]
        == 1
    )
    assert samples["tee_agent_guardrail_refusals_total", (("guardrail", "paused"),)] == 1
    assert ("tee_agent_guardrail_refusals_total", (("guardrail", "stale_tick"),)) not in samples
    assert samples["tee_agent_enclave_restarts_total", ()] == 2
    assert samples["tee_agent_enclave_up", ()] == 1
    assert samples["tee_agent_transactions_total", (("status", "mined"),)] == 2
    assert samples["tee_agent_transactions_total", (("status", "signed"),)] == 1
    assert samples["tee_agent_rpc_latency_seconds_count", (("method", "Status"),)] == 2
    assert samples["tee_agent_rpc_latency_seconds_sum", (("method", "Status"),)] == pytest.approx(
        0.202
    )
    assert (
        samples["tee_agent_rpc_latency_seconds_bucket", (("le", "0.005"), ("method", "Status"))]
        == 1
    )
    assert samples["tee_agent_rpc_latency_seconds_count", (("method", "Receipts"),)] == 1
    assert samples["tee_agent_decision_latency_seconds_count", ()] == 2
    assert samples["tee_agent_decision_latency_seconds_sum", ()] == 2.0
    assert samples["tee_agent_enclave_call_seconds_count", (("call", "Ingest"),)] == 1

    metrics.set_enclave_up(False)
    metrics.tick_results(1, [])
    samples = scrape(port)
    assert samples["tee_agent_enclave_up", ()] == 0
    assert samples["tee_agent_ticks_accepted_total", ()] == 9


def test_each_instance_has_its_own_registry(served: tuple[HostMetrics, int]) -> None:
    metrics, port = served
    other = HostMetrics()  # would raise "Duplicated timeseries" on a shared registry
    other.tick_results(100, [])
    metrics.tick_results(1, [])
    assert scrape(port)["tee_agent_ticks_accepted_total", ()] == 1
    assert other.registry is not metrics.registry


def test_stop_closes_the_endpoint() -> None:
    metrics = HostMetrics()
    port = free_port()
    stop = metrics.serve(f"127.0.0.1:{port}")
    assert ("tee_agent_enclave_up", ()) in scrape(port)
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


def test_every_metric_is_named_tee_agent_and_the_live_gauges_read_at_each_scrape(
    served: tuple[HostMetrics, int],
) -> None:
    metrics, port = served
    figures = [LiveFigures(12.5, 2, True, 1500.0, 3500.0), LiveFigures(0.5, 0, None, None, None)]
    metrics.watch(lambda: figures[0])
    samples = scrape(port)
    assert all(name.startswith("tee_agent_") for name, _ in samples)
    assert samples["tee_agent_seconds_since_last_accepted_tick", ()] == 12.5
    assert samples["tee_agent_pending_transactions", ()] == 2
    assert samples["tee_agent_paused", ()] == 1
    assert samples["tee_agent_notional_24h_used_usd", ()] == 1500
    assert samples["tee_agent_notional_24h_left_usd", ()] == 3500
    figures.pop(0)  # the enclave restarts: what only it knows is unknown, not 0
    samples = scrape(port)
    assert samples["tee_agent_seconds_since_last_accepted_tick", ()] == 0.5
    assert math.isnan(samples["tee_agent_paused", ()])
    assert math.isnan(samples["tee_agent_notional_24h_left_usd", ()])


def test_the_grafana_dashboard_asks_only_for_metrics_the_host_serves(
    served: tuple[HostMetrics, int],
) -> None:
    metrics, port = served
    metrics.watch(lambda: LiveFigures(1.0, 0, False, 0.0, 5000.0))
    metrics.tick_results(1, ["stale_tick"])
    metrics.rpc("GetStatus", 0.01)
    families = {family.name for family in text_string_to_metric_families(_text(port))}
    names = families | {f"{name}_{suffix}" for name in families
                        for suffix in ("total", "bucket", "sum", "count")}  # fmt: skip
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    assert len(expressions) >= 10
    for expression in expressions:
        used = set(re.findall(r"\btee_agent_[a-z0-9_]+", expression))
        assert used, expression
        assert used <= names, (expression, used - names)
    # Every gauge an operator alerts on has a panel.
    shown = " ".join(expressions)
    for gauge in ("seconds_since_last_accepted_tick", "notional_24h_left_usd", "paused",
                  "enclave_up", "pending_transactions", "enclave_calls_oversized_total"):  # fmt: skip
        assert f"tee_agent_{gauge}" in shown


def _text(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())
