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
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2

from enclave.config import EnclaveConfig, load_config
from enclave.exclusive_lock import HeldLock, hold_exclusive_lock
from host.agent import Agent
from host.api import SERVICE_NAME, ApiSettings, start_api
from host.chain.link import ChainLink, connect_chain
from host.config import HostConfig
from host.leadership import Leadership
from host.market.feed import follow_pool, replay_market
from host.metrics import HostMetrics, LiveFigures, MetricsObserver
from host.outcomes import AgentError
from host.storage.base import Fence, FencedStorage, Storage
from host.storage.open import open_lease, open_storage
from host.supervisor import EnclaveLaunch, EnclaveSupervisor

log = logging.getLogger("tee_agent.host")

# In the data directory: held by the running host, so one host (and so one enclave) per agent.
HOST_LOCK = "host.lock"
# `tee-agent run`'s exit code when the host lost the agent's lease (PostgreSQL): it stopped
# driving the agent; started again, it follows until the lease is free.
EXIT_LEASE_LOST = 3


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
    config: HostConfig
    metrics: HostMetrics
    chain: ChainLink | None = None
    # With PostgreSQL: the lease this host must hold to drive the agent; None on SQLite.
    leadership: Leadership | None = None
    # Set once the lease is lost (the enclave is killed by then): the host must stop.
    lease_lost: threading.Event = field(default_factory=threading.Event)

    def lead(self, stop: threading.Event) -> bool:
        """Follow until this host holds the lease (or `stop` is set: False), then open the
        enclave on the newest stored sealed state, connect the chain and drive the agent.
        Without a lease (SQLite) the agent is driven already: True at once.

        Raises:
            EnclaveUnavailable, StorageError: the enclave cannot start (the lease is
                given up first, so that another host may try).
        """
        leadership = self.leadership
        if leadership is None:
            return True
        held = leadership.wait_to_lead(stop)
        if held is None:
            return False
        self._fenced().fence(Fence(leadership.lease.name, held.holder, held.token))
        leadership.hold(self._lease_lost)
        try:
            self.agent.start()
            self.agent.following = ""
            self.chain = _connect_chain(self.config, self.enclave, self.agent, self.storage,
                                        self.metrics)  # fmt: skip
        except BaseException:
            self.agent.stop()
            leadership.release()
            raise
        self.metrics.lease_held.set(1)
        return True

    def _fenced(self) -> FencedStorage:
        assert isinstance(self.storage, FencedStorage)  # a lease is taken on PostgreSQL only
        return self.storage

    def _lease_lost(self, reason: str) -> None:
        """Stop driving the agent at once: no more writes, no enclave, no broadcasts."""
        self._fenced().fence_out(f"this host lost the agent's lease ({reason})")
        self.agent.supervisor.abandon()
        if self.chain is not None:
            self.chain.stopping.set()
        self.metrics.lease_held.set(0)
        self.lease_lost.set()

    def stop(self) -> None:
        self.health_stop.set()
        if self.chain is not None:
            self.chain.stop()
        self.server.stop(grace=2).wait()
        self.agent.stop()
        if self.leadership is not None:
            self.leadership.release()  # the enclave is stopped: a follower may take over
            self.leadership.close()
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
    config: HostConfig,
    *,
    listen: str | None = None,
    metrics: HostMetrics | None = None,
    lead: bool = True,
) -> RunningHost:
    """Lock the data directory, then start storage, enclave, API and metrics.

    With PostgreSQL the enclave starts only once this host holds the agent's lease
    (`RunningHost.lead`; with `lead`, waited for here): until then the API serves reads
    from the store, refuses changes with FAILED_PRECONDITION, and health is NOT_SERVING.

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
        agent, metrics = _make_agent(config, storage, metrics)
        started.callback(agent.stop)
        leadership = None
        if config.storage.url:  # PostgreSQL: several hosts may share the agent
            leadership = _leadership(config, agent, metrics)
            started.callback(leadership.close)
        else:
            _start_agent(agent)
            metrics.lease_held.set(1)  # one host by definition: see host/storage/lease.py
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
        chain = None
        if leadership is None:
            chain = _connect_chain(config, enclave, agent, storage, metrics)
        host = RunningHost(
            agent, server, port, storage, enclave, stop_metrics, health_stop, data_lock,
            config, metrics, chain, leadership,
        )  # fmt: skip
        if lead:
            host.lead(threading.Event())
        started.pop_all()  # started: from here on RunningHost.stop stops it all
    log.info("serving", extra={"port": port, "address": _address(agent)})
    return host


def _connect_chain(
    config: HostConfig, enclave: EnclaveConfig, agent: Agent, storage: Storage,
    metrics: HostMetrics,
) -> ChainLink | None:  # fmt: skip
    """With a chain configured: broadcast what the enclave signs, feed it the chain's view."""
    if not config.chain.rpc_url:
        return None
    chain = connect_chain(
        config.chain.rpc_url, config.chain.poll_seconds, enclave, _address(agent), storage,
        metrics,
    )  # fmt: skip
    agent.vault_watch = chain.vault_watch
    agent.enrich = chain.enrich
    return chain


def _leadership(config: HostConfig, agent: Agent, metrics: HostMetrics) -> Leadership:
    """The lease this host must hold to drive the agent; until then, the agent follows."""

    def on_role(role: str, detail: str) -> None:
        if role == "follower":
            agent.following = detail
        if role != "leader":  # a leader's gauge goes to 1 once its enclave runs (lead)
            metrics.lease_held.set(0)

    agent.following = "not yet read"
    metrics.lease_held.set(0)
    return Leadership(open_lease(config.storage.url, config.storage.lease_seconds), on_role)


def _start_agent(agent: Agent) -> None:
    """Start the enclave under its supervisor; on failure it is stopped before raising."""
    try:
        agent.start()
    except BaseException:
        agent.stop()  # an enclave that did not become ready may still run
        raise


def _make_agent(
    config: HostConfig, storage: Storage, metrics: HostMetrics | None
) -> tuple[Agent, HostMetrics]:
    """The agent, its enclave's supervisor not yet started."""
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


# The health service name a liveness probe asks (deploy/k8s): alive, leading or following.
LIVENESS_SERVICE = "liveness"


def _watch_health(agent: Agent, servicer: health.HealthServicer) -> threading.Event:
    """Health follows the enclave: "" and the Agent service are SERVING only while this
    host drives a running enclave and the agent has no alarm (`Agent.oversized`): the
    readiness to take traffic. `LIVENESS_SERVICE` is SERVING while the host does its job,
    leading with a running enclave or following another host, so a follower is not
    restarted for waiting. Set the event to stop."""
    stopping = threading.Event()
    serving, not_serving = (
        health_pb2.HealthCheckResponse.SERVING,
        health_pb2.HealthCheckResponse.NOT_SERVING,
    )

    def loop() -> None:
        # Set at once (a follower must not answer SERVING for half a second), then twice
        # a second.
        while True:
            running = agent.supervisor.state == "running"
            ready = serving if running and not agent.alarm else not_serving
            for name in ("", SERVICE_NAME):
                servicer.set(name, ready)
            servicer.set(LIVENESS_SERVICE, serving if running or agent.following else not_serving)
            if stopping.wait(0.5):
                return

    threading.Thread(target=loop, name="health", daemon=True).start()
    return stopping


def run_forever(config: HostConfig, listen: str | None) -> int:
    """Run until SIGTERM or SIGINT (0), or until the agent's lease is lost
    (EXIT_LEASE_LOST); returns the exit code. With PostgreSQL, follows until this host
    holds the lease."""
    host = start_host(config, listen=listen, lead=False)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    def stop_when_lost() -> None:
        host.lease_lost.wait()
        stop.set()

    threading.Thread(target=stop_when_lost, name="lease-lost", daemon=True).start()
    try:
        leading = host.lead(stop)
    except BaseException:
        host.stop()
        raise
    if leading and not stop.is_set():
        _feed_market(config, host, stop)
    stop.wait()
    log.info("stopping")
    host.stop()
    return EXIT_LEASE_LOST if host.lease_lost.is_set() else 0


def _feed_market(config: HostConfig, host: RunningHost, stop: threading.Event) -> None:
    market = config.market
    if market.source == "replay":
        arguments: tuple[object, ...] = (host.agent, market, host.chain, stop)
        threading.Thread(target=replay_market, args=arguments, daemon=True).start()
    elif market.source == "pool":
        arguments = (host.agent, market, host.chain, host.enclave, stop)
        threading.Thread(target=follow_pool, args=arguments, daemon=True).start()
