"""`tee-agent run`: the host and its enclave as one long-running service.

Opens the store, starts the enclave (making the simulated platform on first run), serves
the public API and the metrics endpoint, relays the configured market data into the
enclave (`host.market.feed`), and keeps running until stopped. A second start on the same
data directory resumes from the stored sealed state and receipts, and from the next tick
not yet accepted.
"""

from __future__ import annotations

import logging
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2

from enclave.config import EnclaveConfig, load_config
from enclave.exclusive_lock import HeldLock, hold_exclusive_lock
from host.agent import Agent
from host.api import SERVICE_NAME, ApiSettings, start_api
from host.chain.link import ChainLink, connect_chain
from host.config import HostConfig
from host.market.feed import follow_pool, replay_market
from host.metrics import HostMetrics, LiveFigures, MetricsObserver
from host.outcomes import AgentError
from host.storage.base import Storage
from host.storage.open import open_storage
from host.supervisor import EnclaveLaunch, EnclaveSupervisor

log = logging.getLogger("tee_agent.host")

# In the data directory: held by the running host, so one host (and so one enclave) per agent.
HOST_LOCK = "host.lock"


@dataclass
class RunningHost:
    agent: Agent
    server: grpc.Server
    port: int
    storage: Storage
    # The measured enclave config the enclave runs (read here for its tokens and pairs).
    enclave: EnclaveConfig
    stop_metrics: Callable[[], None] | None
    health_stop: threading.Event
    # The data directory's lock, held until every other piece has stopped.
    data_lock: HeldLock
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
        self.data_lock.release()


def ensure_sim_platform(sim_dir: Path) -> None:
    """Make the simulated platform on first run (in the enclave's process, not this one)."""
    if (sim_dir / "root.pem").exists():
        return
    subprocess.run(
        [sys.executable, "-m", "enclave", "sim", "init", "--dir", str(sim_dir)],
        check=True,
        capture_output=True,
    )


def start_host(
    config: HostConfig, *, listen: str | None = None, metrics: HostMetrics | None = None
) -> RunningHost:
    """Lock the data directory, then start storage, enclave, API and metrics.

    A start that fails stops whatever it had started (the enclave above all) and releases
    the lock before raising.

    Raises:
        LockBusy: another host holds the data directory (the message names it).
        EnclaveUnavailable, StorageError, ConfigError, MetricsError, ValueError: with a
            message saying what to fix.
    """
    enclave = load_config(config.enclave.config)
    data_dir = config.host.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    with ExitStack() as started:
        data_lock = hold_exclusive_lock(data_dir / HOST_LOCK, "the host")
        started.callback(data_lock.release)
        storage = open_storage(config.storage.url or str(data_dir / "agent.db"))
        started.callback(storage.close)
        agent, metrics = _start_agent(config, storage, metrics)
        started.callback(agent.stop)
        token = config.write_token() or secrets.token_urlsafe(32)
        server, port, health_servicer = start_api(
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
        started.callback(lambda: server.stop(grace=None).wait())
        health_stop = _watch_health(agent, health_servicer)
        started.callback(health_stop.set)
        stop_metrics = None
        if config.host.metrics_listen:
            stop_metrics = metrics.serve(config.host.metrics_listen)
            started.callback(stop_metrics)
        address = _address(agent)
        chain = None
        if config.chain.rpc_url:
            chain = connect_chain(
                config.chain.rpc_url, config.chain.poll_seconds, enclave, address, storage, metrics
            )
            agent.vault_watch = chain.vault_watch
            agent.enrich = chain.enrich
        started.pop_all()  # started: from here on RunningHost.stop stops it all
    log.info("serving", extra={"port": port, "address": address})
    return RunningHost(
        agent, server, port, storage, enclave, stop_metrics, health_stop, data_lock, chain
    )


def _start_agent(
    config: HostConfig, storage: Storage, metrics: HostMetrics | None
) -> tuple[Agent, HostMetrics]:
    """Start the enclave under its supervisor; on failure it is stopped before raising."""
    data_dir = config.host.data_dir
    sim_dir = config.enclave.sim_dir or data_dir / "sim"
    if config.enclave.platform == "sim":
        ensure_sim_platform(sim_dir)
    launch = EnclaveLaunch(
        config=config.enclave.config,
        run_dir=data_dir / "run",
        platform=config.enclave.platform,
        sim_dir=sim_dir if config.enclave.platform == "sim" else None,
        model=config.enclave.model,
        sealing_key_source=config.enclave.key_source,
        sealing_key_file=config.enclave.sealing_key_file,
        dstack_endpoint=config.enclave.dstack_endpoint,
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
    metrics.watch(lambda: live_figures(agent))
    try:
        agent.start()
    except BaseException:
        agent.stop()  # an enclave that did not become ready may still run
        raise
    return agent, metrics


def live_figures(agent: Agent) -> LiveFigures:
    """What the operator's gauges show now (`HostMetrics.watch`): the enclave's figures are
    unknown (None) while it restarts."""
    since = agent.last_accepted_at or agent.started
    pending = sum(len(agent.storage.transactions(status)) for status in ("signed", "pending"))
    try:
        status = agent.enclave_status()
    except AgentError:
        return LiveFigures(time.time() - since, pending, None, None, None)
    return LiveFigures(
        time.time() - since, pending, status.paused, status.notional_24h_usd,
        status.notional_24h_left_usd,
    )  # fmt: skip


def _address(agent: Agent) -> str:
    identity = agent.supervisor.identity
    return identity.address if identity is not None else ""


def _watch_health(agent: Agent, servicer: health.HealthServicer) -> threading.Event:
    """Health follows the enclave: NOT_SERVING while it restarts or while the agent has an
    alarm (`Agent.oversized`). Set the event to stop."""
    stopping = threading.Event()

    def loop() -> None:
        while not stopping.wait(0.5):
            state = agent.supervisor.state
            status = (
                health_pb2.HealthCheckResponse.SERVING
                if state == "running" and not agent.alarm
                else health_pb2.HealthCheckResponse.NOT_SERVING
            )
            for name in ("", SERVICE_NAME):
                servicer.set(name, status)

    threading.Thread(target=loop, name="health", daemon=True).start()
    return stopping


def run_forever(config: HostConfig, listen: str | None) -> int:
    """Run until SIGTERM or SIGINT; returns the exit code."""
    host = start_host(config, listen=listen)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    market = config.market
    if market.source == "replay":
        arguments: tuple[object, ...] = (host.agent, market, host.chain, stop)
        threading.Thread(target=replay_market, args=arguments, daemon=True).start()
    elif market.source == "pool":
        arguments = (host.agent, market, host.chain, host.enclave, stop)
        threading.Thread(target=follow_pool, args=arguments, daemon=True).start()
    stop.wait()
    log.info("stopping")
    host.stop()
    return 0
