"""Several hosts of one agent: two real `tee-agent run` processes on one real PostgreSQL
database, trading through the guarded vault on a real local chain. Exactly one leads; kill
-9 it and the other takes over within the lease; pause (SIGSTOP) the new leader past its
lease and a restarted host takes over, while the paused one, woken, stops without writing.
Afterwards the receipt chain verifies whole, no nonce went to two trades, the sealed state
never went back, and every transaction reached the chain."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from nacl.signing import SigningKey
from tee_agent_rpc import agent_pb2_grpc as pb_grpc

from tests.needs_anvil import skip_without_anvil

skip_without_anvil()

from attestation.receipt_chain import verify_receipts  # noqa: E402
from devnet.accounts import DEPLOYER  # noqa: E402
from devnet.anvil import Anvil  # noqa: E402
from devnet.enclave_config import enclave_config_toml  # noqa: E402
from devnet.market import deploy_market, fund  # noqa: E402
from devnet.market_mover import MarketMover  # noqa: E402
from devnet.vault import advance, deploy_guarded_vault, observe_all  # noqa: E402
from enclave.config import load_config  # noqa: E402
from enclave.exclusive_lock import lock_holder_pid  # noqa: E402
from host.chain.vault_owner import TwapSettings  # noqa: E402
from host.run import EXIT_LEASE_LOST, LIVENESS_SERVICE, ensure_sim_platform  # noqa: E402
from host.storage.open import open_storage  # noqa: E402
from tests.postgres_harness import PostgresServer, psycopg  # noqa: E402
from tests.test_one_enclave_per_agent import alive  # noqa: E402
from tests.test_run_command import free_port, status  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
LEASE_SECONDS = 3.0
TOKEN = "failover-test-token"
CHAIN_ID = 31337
# The follower tries every third of the lease; then it starts its enclave (a few seconds on
# a loaded machine) before it reports "running".
TAKEOVER_BOUND = LEASE_SECONDS + LEASE_SECONDS / 3 + 20
WAITING_FOR_RECEIPTS = (
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE wait_event_type = 'Lock' AND query LIKE 'LOCK TABLE receipts%'"
)


def wait_for(predicate: Callable[[], Any], timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


@dataclass
class Host:
    """One `tee-agent run` process on its own agent directory (a machine of its own)."""

    name: str
    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'proto'}"}
        with (self.directory / "host.log").open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "host.cli", "run", "--config",
                 str(self.directory / "tee-agent.toml"), "--listen", f"127.0.0.1:{self.port}"],
                env=env, stdout=subprocess.DEVNULL, stderr=log,
            )  # fmt: skip

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def state(self) -> str:
        found = status(self.port)
        return found.enclave_state if found is not None else ""

    def health(self, service: str = "") -> int:
        with grpc.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            request = health_pb2.HealthCheckRequest(service=service)
            return int(stub.Check(request, timeout=2).status)

    def enclave_pid(self) -> int | None:
        return lock_holder_pid(self.directory / "data" / "run" / "enclave.lock")

    def log(self) -> str:
        return (self.directory / "host.log").read_text(errors="replace")


def write_host(host: Host, enclave: Path, sim_dir: Path, dsn: str, pool: str, rpc_url: str) -> None:
    host.directory.mkdir(parents=True)
    (host.directory / "tee-agent.toml").write_text(f"""
[host]
data_dir = "{host.directory / "data"}"
auth_token = "{TOKEN}"
metrics_listen = ""
[enclave]
config = "{enclave}"
sim_dir = "{sim_dir}"
restart_backoff_initial_seconds = 0.1
restart_backoff_max_seconds = 1
[market]
source = "pool"
pair = "ETH/USD"
pool = "{pool}"
[chain]
rpc_url = "{rpc_url}"
poll_seconds = 0.2
[storage]
url = "{dsn}"
lease_seconds = {LEASE_SECONDS}
""")


@contextmanager
def cleaned_up(hosts: list[Host]) -> Iterator[None]:
    """Whatever happens: every host process (woken if paused) and its enclave are gone."""
    try:
        yield
    finally:
        enclaves = [pid for host in hosts if (pid := host.enclave_pid()) is not None]
        for host in hosts:
            if host.process is not None and host.process.poll() is None:
                host.process.send_signal(signal.SIGCONT)
                host.process.kill()
                host.process.wait(timeout=30)
        for pid in enclaves:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def sql(dsn: str, statement: str) -> list[tuple[Any, ...]]:
    assert psycopg is not None
    with psycopg.connect(dsn, autocommit=True) as connection:
        return connection.execute(statement).fetchall()


def newest_sealed_version(dsn: str) -> int:
    return int(sql(dsn, "SELECT coalesce(max(version), 0) FROM sealed_states")[0][0])


def test_one_leader_kill_9_and_a_paused_leader_lose_nothing(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    dsn = postgres_server.new_schema()
    with Anvil.start(genesis_timestamp=int(time.time()) - 100) as anvil:
        w3 = anvil.web3()
        dex = deploy_market(w3, 2000, 30000)
        twap = TwapSettings(window_seconds=60, max_age_seconds=3600, max_deviation_bps=1000)
        vault = deploy_guarded_vault(w3, dex, twap=twap)
        advance(w3, 60)
        observe_all(vault, dex)
        enclave = tmp_path / "enclave.toml"
        enclave_config_toml(
            dex, SigningKey.generate().verify_key.encode().hex(), vault=vault.vault.address,
            twap_window_seconds=60, twap_max_age_seconds=3600, max_twap_deviation_bps=1000,
            clock="wall", decision_interval_seconds=0, min_seconds_between_trades=0,
            short_window=2, long_window=4, path=enclave,
        )  # fmt: skip
        # Both machines unseal the same state: on sim, one platform directory stands in for
        # the KMS that hands both the sealing key on real hardware.
        sim_dir = tmp_path / "sim"
        ensure_sim_platform(sim_dir)
        hosts = [Host("a", tmp_path / "a"), Host("b", tmp_path / "b")]
        for host in hosts:
            write_host(host, enclave, sim_dir, dsn, dex.pairs["ETH/USD"], anvil.url)
        store = None
        with cleaned_up(hosts):
            for host in hosts:
                host.start()
            # Exactly one leads; the other follows, NOT_SERVING, refusing changes.
            wait_for(lambda: sorted(h.state() for h in hosts) == ["follower", "running"])
            leader, follower = sorted(hosts, key=lambda h: h.state() != "running")
            serving = health_pb2.HealthCheckResponse.SERVING
            wait_for(lambda: leader.health() == serving)  # the health loop's next round
            assert follower.health() == health_pb2.HealthCheckResponse.NOT_SERVING
            # Alive, though: a liveness probe must not restart a host for following.
            assert follower.health(LIVENESS_SERVICE) == serving
            assert leader.health(LIVENESS_SERVICE) == serving
            assert follower.enclave_pid() is None  # no enclave while it follows
            refused = _stream_to(follower)
            assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "this host follows" in (refused.details() or "")
            assert "held by" in (refused.details() or "")

            leader_status = status(leader.port)
            assert leader_status is not None
            address = leader_status.address
            vault.register(address, 1000 * 10**18, 5000 * 10**18,
                           load_config(enclave).config_hash(), bytes(32), bytes(32))  # fmt: skip
            fund(w3, dex, DEPLOYER, address, eth=5)
            fund(w3, dex, DEPLOYER, DEPLOYER.address, weth=1)
            vault.deposit(dex.weth, 10**18)
            vault.deposit(dex.usd, 5000 * 10**18)
            store = open_storage(dsn)
            mover = MarketMover(w3, dex)

            def trade_through(prices: tuple[int, ...]) -> None:
                for price in prices:
                    seen = store.head()[0]
                    mover.move_to(Decimal(price))
                    wait_for(lambda seen=seen: store.head()[0] > seen)
                    wait_for(lambda: all(tx.status in ("mined", "reverted")
                                         for tx in store.transactions()))  # fmt: skip

            versions = [newest_sealed_version(dsn)]
            trade_through((2010, 2020, 2030, 2060, 2090, 2120))
            versions.append(newest_sealed_version(dsn))
            traded_before = len(store.transactions())
            assert traded_before >= 1

            # kill -9 the leader: its enclave exits on its own; the follower takes over.
            enclave_pid = leader.enclave_pid()
            assert enclave_pid is not None and alive(enclave_pid)
            killed_at = time.monotonic()
            assert leader.process is not None
            leader.process.kill()
            leader.process.wait(timeout=30)
            wait_for(lambda: not alive(enclave_pid), timeout=15)
            wait_for(lambda: sql(dsn, "SELECT token FROM agent_lease") == [(2,)],
                     timeout=TAKEOVER_BOUND)  # fmt: skip
            taken = time.monotonic() - killed_at
            wait_for(lambda: follower.state() == "running", timeout=TAKEOVER_BOUND)
            takeover = time.monotonic() - killed_at
            print(f"after kill -9 (lease {LEASE_SECONDS} s): lease taken in {taken:.2f} s, "
                  f"new leader running in {takeover:.2f} s")  # fmt: skip
            assert takeover <= TAKEOVER_BOUND
            assert sql(dsn, "SELECT token FROM agent_lease") == [(2,)]
            new_status = status(follower.port)
            assert new_status is not None and new_status.address == address
            versions.append(newest_sealed_version(dsn))
            trade_through((2080, 2030, 1980, 1930))
            versions.append(newest_sealed_version(dsn))

            # The killed machine comes back: it follows. Then the leader is paused in the
            # middle of a write (held up by a table lock the test takes): the comeback
            # takes over; woken, the paused one finds its write refused by the fencing
            # token, and stops.
            old, paused = leader, follower
            old.start()
            wait_for(lambda: old.state() == "follower")
            paused_enclave = paused.enclave_pid()
            assert paused_enclave is not None and paused.process is not None
            assert psycopg is not None
            with psycopg.connect(dsn) as blocker:
                blocker.execute("LOCK TABLE receipts IN SHARE ROW EXCLUSIVE MODE")
                head_before_pause = store.head()
                mover.move_to(Decimal(1960))  # a tick: the leader's next write is a receipt
                wait_for(lambda: sql(dsn, WAITING_FOR_RECEIPTS)[0][0] >= 1)
                paused.process.send_signal(signal.SIGSTOP)
                stopped_at = time.monotonic()
                wait_for(lambda: sql(dsn, "SELECT token FROM agent_lease") == [(3,)],
                         timeout=TAKEOVER_BOUND)  # fmt: skip
                print(f"lease taken from a paused leader: {time.monotonic() - stopped_at:.2f} s")
                blocker.rollback()  # the paused leader's write goes on, as it wakes:
                paused.process.send_signal(signal.SIGCONT)
            assert paused.process.wait(timeout=60) == EXIT_LEASE_LOST
            wait_for(lambda: not alive(paused_enclave), timeout=15)
            wait_for(lambda: old.state() == "running", timeout=TAKEOVER_BOUND)
            assert "write refused by the fencing token" in paused.log()
            assert "writes with token 2 but the lease of 'agent' has holder" in paused.log()
            trade_through((2000, 2050))
            versions.append(newest_sealed_version(dsn))
            head_at_wake = store.head()
            assert "lease is lost" in paused.log()
            assert old.state() == "running"  # the leader drives on, unharmed
            trade_through((2100,))
            versions.append(newest_sealed_version(dsn))

            receipts = store.receipts(1, 100_000)
            head = store.head()
            transactions = store.transactions()
            store.close()
            assert head[0] > head_at_wake[0] >= head_before_pause[0]
        # The receipt chain is whole and signed by the one attested address throughout.
        report = verify_receipts(
            [record.receipt for record in receipts], address=address, chain_id=CHAIN_ID,
            expected_head_hash=head[1],
        )  # fmt: skip
        assert report.valid and report.verified == head[0] == len(receipts), report.error
        assert [r.receipt.seq for r in receipts] == list(range(1, head[0] + 1))
        # No nonce went to two trades: one transaction per nonce, each final on chain.
        assert len(transactions) > traded_before
        nonces = [tx.nonce for tx in transactions if tx.status != "replaced"]
        assert len(nonces) == len(set(nonces)) == len(transactions)
        assert sorted(nonces) == list(range(len(nonces)))
        assert all(tx.status in ("mined", "reverted") for tx in transactions)
        assert w3.eth.get_transaction_count(address) == len(nonces)
        signed = {r.receipt.seq for r in receipts if r.receipt.verdict == "signed"}
        assert signed == {tx.receipt_seq for tx in transactions}
        # The sealed state only went forward, across both takeovers.
        assert versions == sorted(versions) and versions[-1] > versions[1]


def _stream_to(host: Host) -> grpc.RpcError:
    """A tick stream sent to `host`, expected to be refused; the error."""
    from tests.host_harness import tick_batches

    with grpc.insecure_channel(f"127.0.0.1:{host.port}") as channel:
        stub = pb_grpc.AgentStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.StreamMarketData(
                tick_batches(3),
                metadata=(("authorization", f"Bearer {TOKEN}"),),
                timeout=30,
            )
    error = refused.value
    assert isinstance(error, grpc.RpcError)
    return error
