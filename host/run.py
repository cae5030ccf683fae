"""`tee-agent run`: the host and its enclave as one long-running service.

Opens the store, starts the enclave (making the simulated platform on first run), serves
the public API and the metrics endpoint, replays the configured market data into the
enclave, and keeps running until stopped. A second start on the same data directory resumes
from the stored sealed state and receipts, and from the next tick not yet accepted.
"""

from __future__ import annotations

import logging
import secrets
import signal
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2
from tee_agent_rpc import enclave_pb2 as epb

from host.agent import Agent
from host.api import SERVICE_NAME, ApiSettings, start_api
from host.config import HostConfig
from host.metrics import HostMetrics
from host.outcomes import AgentError
from host.storage.base import Storage
from host.storage.open import open_storage
from host.supervisor import EnclaveLaunch, EnclaveSupervisor

log = logging.getLogger("tee_agent.host")


class MetricsObserver:
    """What the agent reports, turned into Prometheus metrics and log lines."""

    def __init__(self, metrics: HostMetrics) -> None:
        self.metrics = metrics

    def enclave_open(self, opened: Any) -> None:
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

    def ticks(self, accepted: int, refused: Iterable[str], decisions: list[float]) -> None:
        self.metrics.tick_results(accepted, refused)
        self.metrics.decision_times(decisions)

    def enclave_call(self, call: str, seconds: float) -> None:
        self.metrics.enclave_call_time(call, seconds)


@dataclass
class ChainLink:
    """The host's side of the chain: the broadcaster thread, fee proposals and balances."""

    w3: Any
    broadcaster: Any
    tokens: dict[str, tuple[str, int]]
    address: str
    stopping: threading.Event
    thread: threading.Thread

    def enrich(self, request: epb.IngestRequest) -> epb.IngestRequest:
        """Add the chain's current fees and the agent's balances to a batch."""
        from host.chain.broadcaster import redact_error
        from host.chain.fees import agent_balances, fee_hint

        try:
            max_fee, priority = fee_hint(self.w3)
            balances = agent_balances(self.w3, self.tokens, self.address)
        except Exception as exc:
            log.warning(
                "chain read failed, batch sent without fees and balances: %s",
                redact_error(exc, self.w3.provider.endpoint_uri),
            )
            return request
        request.fees.CopyFrom(
            epb.FeeHint(max_fee_per_gas_wei=max_fee, max_priority_fee_per_gas_wei=priority)
        )
        for symbol, amount in balances.items():
            request.balances[symbol] = str(amount)
        return request

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=10)
        self.broadcaster.close()


def connect_chain(config: HostConfig, agent: Agent, metrics: HostMetrics) -> ChainLink:
    """Start broadcasting to the configured node, and read fees and balances from it.

    Raises:
        ValueError: the enclave config's tokens cannot be read.
    """
    import tomllib

    from web3 import Web3

    from host.chain.broadcaster import Broadcaster

    # The token list is data in the enclave's config; the host reads it as plain TOML.
    enclave = tomllib.loads(config.enclave.config.read_text(encoding="utf-8"))
    tokens = {
        symbol: (str(token["address"]), int(token["decimals"]))
        for symbol, token in enclave.get("tokens", {}).items()
    }
    w3 = Web3(Web3.HTTPProvider(config.chain.rpc_url, request_kwargs={"timeout": 10}))
    broadcaster = Broadcaster(
        config.chain.rpc_url, agent.storage, metrics, poll_seconds=config.chain.poll_seconds
    )
    stopping = threading.Event()
    thread = threading.Thread(
        target=broadcaster.run, args=(stopping,), name="broadcaster", daemon=True
    )
    thread.start()
    return ChainLink(w3, broadcaster, tokens, agent.supervisor.identity.address, stopping, thread)


@dataclass
class RunningHost:
    agent: Agent
    server: grpc.Server
    port: int
    storage: Storage
    stop_metrics: Any
    health_stop: threading.Event
    chain: ChainLink | None = None

    def stop(self) -> None:
        self.health_stop.set()
        if self.chain is not None:
            self.chain.stop()
        self.server.stop(grace=2).wait()
        self.agent.stop()
        if self.stop_metrics is not None:
            self.stop_metrics()
        self.storage.close()


def ensure_sim_platform(sim_dir: Path) -> None:
    """Make the simulated platform on first run (in the enclave's process, not this one)."""
    if (sim_dir / "root.pem").exists():
        return
    import subprocess
    import sys

    subprocess.run(
        [sys.executable, "-m", "enclave", "sim", "init", "--dir", str(sim_dir)],
        check=True,
        capture_output=True,
    )


def start_host(
    config: HostConfig, *, listen: str | None = None, metrics: HostMetrics | None = None
) -> RunningHost:
    """Start storage, enclave, API and metrics; returns the running pieces.

    Raises:
        EnclaveUnavailable, StorageError, ValueError: with a message saying what to fix.
    """
    data_dir = config.host.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    storage = open_storage(config.storage.url or str(data_dir / "agent.db"))
    sim_dir = config.enclave.sim_dir or data_dir / "sim"
    if config.enclave.platform == "sim":
        ensure_sim_platform(sim_dir)
    launch = EnclaveLaunch(
        config=config.enclave.config,
        run_dir=data_dir / "run",
        platform=config.enclave.platform,
        sim_dir=sim_dir if config.enclave.platform == "sim" else None,
        model=config.enclave.model,
        ready_timeout=config.enclave.ready_timeout_seconds,
        backoff_initial=config.enclave.restart_backoff_initial_seconds,
        backoff_max=config.enclave.restart_backoff_max_seconds,
    )
    metrics = metrics or HostMetrics()
    agent = Agent(
        storage,
        lambda sealed, on_open: EnclaveSupervisor(launch, sealed, on_open),
        observer=MetricsObserver(metrics),
    )
    agent.start()
    token = config.write_token() or secrets.token_urlsafe(32)
    server, port, health = start_api(
        agent,
        ApiSettings(
            listen=listen or config.host.listen,
            auth_token=token,
            max_message_bytes=config.host.max_message_bytes,
            tls_cert=config.host.tls_cert,
            tls_key=config.host.tls_key,
        ),
        observe=metrics.rpc,
    )
    health_stop = _watch_health(agent, health)
    stop_metrics = metrics.serve(config.host.metrics_listen) if config.host.metrics_listen else None
    chain = connect_chain(config, agent, metrics) if config.chain.rpc_url else None
    log.info("serving", extra={"port": port, "address": agent.supervisor.identity.address})
    return RunningHost(agent, server, port, storage, stop_metrics, health_stop, chain)


def _watch_health(agent: Agent, health: Any) -> threading.Event:
    """Health follows the enclave: NOT_SERVING while it restarts. Set the event to stop."""
    stopping = threading.Event()

    def loop() -> None:
        while not stopping.wait(0.5):
            state = agent.supervisor.state
            status = (
                health_pb2.HealthCheckResponse.SERVING
                if state == "running"
                else health_pb2.HealthCheckResponse.NOT_SERVING
            )
            for name in ("", SERVICE_NAME):
                health.set(name, status)

    threading.Thread(target=loop, name="health", daemon=True).start()
    return stopping


def replay_market(host: RunningHost, config: HostConfig, stop: threading.Event) -> None:
    """Feed the configured market file into the enclave, resuming after the last accepted tick."""
    from host.market.replay import ReplaySource

    market = config.market
    last = host.agent.enclave_status().last_tick_seq
    source = ReplaySource(
        market.file,
        market.pair,
        speed=market.speed,
        start_row=max(market.start_row, int(last)),
        max_rows=market.max_rows,
    )
    for batch in source.batches(market.batch_size):
        if stop.is_set():
            return
        request = ingest_request(batch)
        if host.chain is not None:
            request = host.chain.enrich(request)
        try:
            host.agent.ingest(request.SerializeToString())
        except AgentError as exc:
            log.error("market replay stopped: %s", exc)
            return
    log.info(
        "market replay finished", extra={"last_seq": host.agent.enclave_status().last_tick_seq}
    )


def ingest_request(candles: list[Any]) -> epb.IngestRequest:
    """Candles (from a file or a pool) as the enclave's tick batches, one per run of a pair."""
    request = epb.IngestRequest()
    for candle in candles:
        if not request.batches or request.batches[-1].pair != candle.pair:
            request.batches.add(pair=candle.pair)
        batch = request.batches[-1]
        batch.seq.append(candle.seq)
        batch.timestamp_ms.append(candle.timestamp_ms)
        batch.price.append(candle.price)
        batch.volume.append(candle.volume)
    return request


def follow_pool(host: RunningHost, config: HostConfig, stop: threading.Event) -> None:
    """Feed the pool's own price into the enclave: a tick for every reserve change."""
    import tomllib

    from host.chain.broadcaster import redact_error
    from host.market.onchain import PoolTicks

    if host.chain is None or not config.market.pool:
        log.error("market source 'pool' needs [chain] rpc_url and [market] pool")
        return
    enclave = tomllib.loads(config.enclave.config.read_text(encoding="utf-8"))
    pair = next(p for p in enclave["pairs"] if p["symbol"] == config.market.pair)
    base, quote = enclave["tokens"][pair["base"]], enclave["tokens"][pair["quote"]]
    ticks = PoolTicks.for_base_token(
        host.chain.w3, config.market.pool, base["address"], int(base["decimals"]),
        int(quote["decimals"]), config.market.pair,
    )  # fmt: skip
    next_block = host.chain.w3.eth.block_number
    while not stop.wait(config.chain.poll_seconds):
        try:
            found, next_block = ticks.poll(next_block)
        except Exception as exc:
            log.warning(
                "reading the pool failed: %s",
                redact_error(exc, host.chain.w3.provider.endpoint_uri),
            )
            continue
        if not found:
            continue
        # Only the newest reserves are the market now: a decision on a price the pool has
        # already left would meet another pool on chain (and revert on its minimum out).
        newest = found[-1]
        request = ingest_request([newest])
        try:
            host.agent.ingest(host.chain.enrich(request).SerializeToString())
        except AgentError as exc:
            log.error("pool ticks refused: %s", exc)


def run_forever(config: HostConfig, listen: str | None) -> int:
    """Run until SIGTERM or SIGINT; returns the exit code."""
    host = start_host(config, listen=listen)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if config.market.source == "replay":
        threading.Thread(target=replay_market, args=(host, config, stop), daemon=True).start()
    elif config.market.source == "pool":
        threading.Thread(target=follow_pool, args=(host, config, stop), daemon=True).start()
    stop.wait()
    log.info("stopping")
    host.stop()
    return 0
