"""Prometheus metrics of the host: ticks, decisions, refusals, signatures, latencies, restarts,
and the gauges an operator alerts on (`LiveFigures`: seconds since the last accepted tick,
notional used and left, paused, pending transactions), all named `tee_agent_*`.

Each `HostMetrics` has its own `CollectorRegistry` (not prometheus_client's global one), so
a process, or a test, can hold several. The host calls the small methods below at the
points where things happen; `serve` exposes the registry over HTTP for Prometheus to scrape.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from host.config import split_host_port
from host.enclave_client import Opened
from wire.ticks import TICK_REFUSALS

log = logging.getLogger("tee_agent.host")

# Every metric's name starts with it: tee_agent_ticks_accepted_total, ...
PREFIX = "tee_agent"
# From a millisecond gRPC call to an LLM decision of a minute or two.
_LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


@dataclass(frozen=True)
class LiveFigures:
    """What the gauges read at each scrape; None: unknown now (the enclave restarts)."""

    seconds_since_last_accepted_tick: float
    pending_transactions: int
    paused: bool | None
    notional_24h_used_usd: float | None
    notional_24h_left_usd: float | None


class _LiveGauges(Collector):
    """The `LiveFigures` gauges, read once per scrape."""

    def __init__(self, read: Callable[[], LiveFigures]) -> None:
        self._read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        figures = self._read()
        nan = float("nan")
        paused = nan if figures.paused is None else float(figures.paused)
        for name, documentation, value in (
            ("seconds_since_last_accepted_tick",
             "Seconds since the enclave last accepted a tick (since the host started, before one).",
             figures.seconds_since_last_accepted_tick),
            ("pending_transactions",
             "Signed transactions not yet final on chain (status signed or pending).",
             float(figures.pending_transactions)),
            ("paused", "1 while the owner has paused the agent, else 0.", paused),
            ("notional_24h_used_usd", "Notional traded in the last 24 hours of market time.",
             nan if figures.notional_24h_used_usd is None else figures.notional_24h_used_usd),
            ("notional_24h_left_usd", "What the daily notional limit leaves now.",
             nan if figures.notional_24h_left_usd is None else figures.notional_24h_left_usd),
        ):  # fmt: skip
            yield GaugeMetricFamily(f"{PREFIX}_{name}", documentation, value=value)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())  # read only at a scrape, never at registration


class MetricsError(Exception):
    """The metrics endpoint cannot be served (bad address, port in use)."""


class HostMetrics:
    """The host's metrics, in a registry of their own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.ticks_accepted = Counter(
            "ticks_accepted_total", "Ticks the enclave accepted.", namespace=PREFIX, registry=r
        )
        self.ticks_refused = Counter(
            "ticks_refused_total",
            "Ticks the enclave refused, by reason.",
            ["reason"],
            namespace=PREFIX,
            registry=r,
        )
        self.decisions = Counter(
            "decisions_total",
            "Policy decisions by outcome: signed, hold, or refused by a guardrail.",
            ["action"],
            namespace=PREFIX,
            registry=r,
        )
        self.guardrail_refusals = Counter(
            "guardrail_refusals_total",
            "Decisions a guardrail refused, by guardrail.",
            ["guardrail"],
            namespace=PREFIX,
            registry=r,
        )
        self.signatures = Counter(
            "signatures_total",
            "Decisions the enclave signed a transaction for.",
            namespace=PREFIX,
            registry=r,
        )
        self.enclave_restarts = Counter(
            "enclave_restarts_total",
            "Times the supervisor restarted the enclave.",
            namespace=PREFIX,
            registry=r,
        )
        self.transactions = Counter(
            "transactions_total",
            "Transactions by status reached: signed, pending, mined, reverted, dropped, replaced.",
            ["status"],
            namespace=PREFIX,
            registry=r,
        )
        self.rpc_latency = Histogram(
            "rpc_latency_seconds",
            "Public gRPC call latency, by method.",
            ["method"],
            buckets=_LATENCY_BUCKETS,
            namespace=PREFIX,
            registry=r,
        )
        self.decision_latency = Histogram(
            "decision_latency_seconds",
            "Time the enclave's policy took per decision.",
            buckets=_LATENCY_BUCKETS,
            namespace=PREFIX,
            registry=r,
        )
        self.enclave_call = Histogram(
            "enclave_call_seconds",
            "Latency of the host's calls into the enclave, by call.",
            ["call"],
            buckets=_LATENCY_BUCKETS,
            namespace=PREFIX,
            registry=r,
        )
        self.enclave_oversized = Counter(
            "enclave_calls_oversized_total",
            "Enclave calls that failed for size (RESOURCE_EXHAUSTED), by call: an alarm.",
            ["call"],
            namespace=PREFIX,
            registry=r,
        )
        self.enclave_up = Gauge(
            "enclave_up",
            "1 while the enclave process is up and ready, else 0.",
            namespace=PREFIX,
            registry=r,
        )

        self.lease_held = Gauge(
            "lease_held",
            "1 while this host holds the agent's lease and drives its enclave (always, on "
            "SQLite), 0 while it follows or after it lost the lease.",
            namespace=PREFIX,
            registry=r,
        )

    def tick_results(self, accepted: int, refused_reasons: Iterable[str]) -> None:
        """Count an Ingest reply: `accepted` ticks, and one refusal per reason given."""
        if accepted:
            self.ticks_accepted.inc(accepted)
        for reason in refused_reasons:
            self.ticks_refused.labels(reason=reason).inc()

    def receipt(self, verdict: str) -> None:
        """Count a released receipt by its verdict.

        "signed" is a decision and a signature, "hold" a decision, "refused:<guardrail>"
        a decision and a guardrail refusal. "refused:<market data reason>" is a tick
        refusal: not counted here, since `tick_results` counts it from the Ingest reply
        (which also lists duplicate ticks, which have no receipt); "owner:<command>"
        receipts are not decisions. "replaced:<seq>" is a signature of a trade decided
        before (signed again at a higher fee), not a decision.
        """
        if verdict == "signed":
            self.decisions.labels(action="signed").inc()
            self.signatures.inc()
        elif verdict.startswith("replaced:"):
            self.signatures.inc()
        elif verdict == "hold":
            self.decisions.labels(action="hold").inc()
        elif verdict.startswith("refused:"):
            reason = verdict.removeprefix("refused:")
            # Market data refusals are counted from the Ingest reply (tick_results); every
            # other "refused:<reason>" verdict is a guardrail's.
            if reason not in TICK_REFUSALS:
                self.decisions.labels(action="refused").inc()
                self.guardrail_refusals.labels(guardrail=reason).inc()

    def restart(self) -> None:
        """Count one restart of the enclave process."""
        self.enclave_restarts.inc()

    def set_enclave_up(self, up: bool) -> None:
        """Record whether the enclave is up and ready."""
        self.enclave_up.set(1 if up else 0)

    def transaction(self, status: str) -> None:
        """Count a transaction reaching `status` (signed, pending, mined, reverted, dropped,
        replaced)."""
        self.transactions.labels(status=status).inc()

    def rpc(self, method: str, seconds: float) -> None:
        """Observe one public gRPC call of `method` taking `seconds`."""
        self.rpc_latency.labels(method=method).observe(seconds)

    def decision_times(self, seconds: Iterable[float]) -> None:
        """Observe the policy time of each decision (IngestResponse.decision_seconds)."""
        for value in seconds:
            self.decision_latency.observe(value)

    def enclave_call_time(self, call: str, seconds: float) -> None:
        """Observe one call into the enclave (`Ingest`, `Release`, `Open`, ...)."""
        self.enclave_call.labels(call=call).observe(seconds)

    def watch(self, read: Callable[[], LiveFigures]) -> None:
        """Serve the `LiveFigures` gauges, calling `read` once per scrape."""
        self.registry.register(_LiveGauges(read))

    def serve(self, listen: str) -> Callable[[], None]:
        """Serve this registry at http://listen/metrics in a daemon thread.

        Returns a function that stops the server and waits for its thread.

        Raises:
            MetricsError: `listen` is not host:port, or the address cannot be bound.
        """
        try:
            host, port = split_host_port(listen)
        except ValueError as exc:
            raise MetricsError(f"metrics listen address: {exc}") from None
        try:
            server, thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise MetricsError(f"cannot serve metrics on {listen}: {exc.strerror or exc}") from None

        def stop() -> None:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

        return stop


class MetricsObserver:
    """What the agent reports (`host.agent.AgentObserver`), turned into metrics and logs."""

    def __init__(self, metrics: HostMetrics) -> None:
        self.metrics = metrics

    def enclave_open(self, opened: Opened) -> None:
        self.metrics.set_enclave_up(True)
        log.info(
            "enclave open",
            extra={"address": opened.identity.address, "state_version": opened.state_version,
                   "new_state": opened.created},
        )  # fmt: skip

    def restart(self) -> None:
        self.metrics.set_enclave_up(False)
        self.metrics.restart()

    def receipt(self, verdict: str) -> None:
        self.metrics.receipt(verdict)

    def ticks(self, accepted: int, refused: Iterable[str], decisions: Sequence[float]) -> None:
        self.metrics.tick_results(accepted, refused)
        self.metrics.decision_times(decisions)

    def enclave_call(self, call: str, seconds: float) -> None:
        self.metrics.enclave_call_time(call, seconds)

    def oversized(self, call: str) -> None:
        self.metrics.enclave_oversized.labels(call=call).inc()
