"""The agent's lease on a real PostgreSQL server: contenders, expiry, renewal, release, the
fencing token and the database's clock; a fenced store refuses a stale holder's writes."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tee_agent_rpc import agent_pb2 as pb
from tee_agent_rpc import agent_pb2_grpc as pb_grpc

from host.config import load_host_config
from host.leadership import Leadership
from host.metrics import HostMetrics
from host.run import start_host
from host.storage.base import Fence, FencedOut, Storage
from host.storage.open import open_storage
from tests.enclave_harness import EnclaveWorld
from tests.host_harness import AUTH, host_toml, tick_batches
from tests.postgres_harness import PostgresServer, psycopg
from tests.test_storage import CHAIN, signed_transaction

pytest.importorskip("psycopg", reason="the `postgres` extra is not installed")

from host.storage.postgres import PostgresStorage
from host.storage.postgres_lease import PostgresLease


@pytest.fixture
def dsn(postgres_server: PostgresServer) -> str:
    url = postgres_server.new_schema()
    open_storage(url).close()  # migrated: the lease table exists
    return url


def sql(dsn: str, statement: str) -> list[tuple[object, ...]]:
    assert psycopg is not None
    with psycopg.connect(dsn, autocommit=True) as connection:
        cursor = connection.execute(statement)
        return cursor.fetchall() if cursor.description else []


def wait_until(predicate: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def test_of_two_contenders_one_holds_it_and_renewing_keeps_it(dsn: str) -> None:
    a, b = PostgresLease(dsn, 30, "host-a"), PostgresLease(dsn, 30, "host-b")
    try:
        held = a.acquire()
        assert held is not None and held.token == 1 and 29 < held.seconds_left <= 30
        assert b.acquire() is None  # live: the other contender waits
        assert b.acquire() is None
        row = b.current()
        assert row is not None and row.holder == "host-a" and row.token == 1 and row.live
        sql(dsn, "UPDATE agent_lease SET expires_at = expires_at - 20")
        assert a.renew().seconds_left > 29  # pushed ttl past the database's now again
        assert b.acquire() is None
    finally:
        a.close()
        b.close()


def test_an_expired_lease_goes_to_the_next_contender_with_the_next_token(dsn: str) -> None:
    a, b = PostgresLease(dsn, 1, "host-a"), PostgresLease(dsn, 1, "host-b")
    try:
        assert (first := a.acquire()) is not None and first.token == 1
        wait_until(lambda: (row := b.current()) is not None and not row.live)
        taken = b.acquire()
        assert taken is not None and taken.token == 2
        with pytest.raises(
            Exception, match="no longer held by host-a: held by host-b with token 2"
        ):
            a.renew()  # LeaseLost: it expired, and an expired lease is never renewed
        assert a.held is None and a.acquire() is None  # host-b's is live now
    finally:
        a.close()
        b.close()


def test_a_released_lease_is_taken_at_once_and_tokens_always_increase(dsn: str) -> None:
    a, b = PostgresLease(dsn, 60, "host-a"), PostgresLease(dsn, 60, "host-b")
    tokens = []
    try:
        for _ in range(3):
            for lease in (a, b):
                held = lease.acquire()
                assert held is not None
                tokens.append(held.token)
                lease.release()
        assert tokens == [1, 2, 3, 4, 5, 6]
        row = a.current()
        assert row is not None and row.holder == "" and not row.live
        a.release()  # releasing what one does not hold changes nothing
        after = a.current()
        assert after is not None and (after.holder, after.token) == ("", 6)
    finally:
        a.close()
        b.close()


def test_expiry_is_by_the_database_clock_not_the_hosts(
    dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(time, "time", lambda: 4_000_000_000.0)  # a host clock in 2096
    a, b = PostgresLease(dsn, 30, "host-a"), PostgresLease(dsn, 30, "host-b")
    try:
        assert a.acquire() is not None
        assert b.acquire() is None  # the host clock says expired long ago; the database not
        ((acquired, expires, db_now),) = sql(
            dsn, "SELECT acquired_at, expires_at, extract(epoch FROM now()) FROM agent_lease"
        )
        assert abs(float(acquired) - float(db_now)) < 5  # type: ignore[arg-type]
        assert float(expires) - float(acquired) == pytest.approx(30)  # type: ignore[arg-type]
    finally:
        a.close()
        b.close()


def stored_everything(store: Storage) -> None:
    store.save_sealed_state(1, b"sealed 1")
    store.append_receipts(CHAIN[:2])
    store.add_transactions([signed_transaction(0, 1)])
    store.set_transaction_status(signed_transaction(0, 1).tx_hash, "pending")
    store.put_meta("address", "0xabc")


def test_a_fenced_store_refuses_every_write_once_its_token_is_stale(dsn: str) -> None:
    a, b = PostgresLease(dsn, 1, "host-a"), PostgresLease(dsn, 30, "host-b")
    old, new = open_storage(dsn), open_storage(dsn)
    assert isinstance(old, PostgresStorage) and isinstance(new, PostgresStorage)
    try:
        held = a.acquire()
        assert held is not None
        old.fence(Fence(a.name, "host-a", held.token))
        stored_everything(old)  # the lease is live: every write goes through
        wait_until(lambda: (row := b.current()) is not None and not row.live)
        # Expired, not yet taken over: refused already (the holder may be replaced any time).
        with pytest.raises(FencedOut, match=r"token 1 .* has holder host-a, token 1, expired"):
            old.save_sealed_state(2, b"sealed 2")
        taken = b.acquire()
        assert taken is not None and taken.token == 2
        new.fence(Fence(b.name, "host-b", taken.token))
        for write in (
            lambda: old.save_sealed_state(2, b"late"),
            lambda: old.append_receipts(CHAIN[2:3]),
            lambda: old.add_transactions([signed_transaction(1, 2)]),
            lambda: old.set_transaction_status(signed_transaction(0, 1).tx_hash, "dropped"),
            lambda: old.put_meta("address", "0xlate"),
        ):
            with pytest.raises(FencedOut, match=r"writes with token 1 but the lease .* token 2"):
                write()
        # Nothing of the late writes is stored; the new leader writes on.
        assert new.latest_sealed_state() == (1, b"sealed 1") and new.head()[0] == 2
        assert [(tx.nonce, tx.status) for tx in new.transactions()] == [(0, "pending")]
        assert new.get_meta("address") == "0xabc"
        new.save_sealed_state(2, b"sealed 2 by host-b")
        new.append_receipts(CHAIN[2:3])
        assert new.latest_sealed_state() == (2, b"sealed 2 by host-b") and new.head()[0] == 3
        # The host's own guard: a store whose host gave the lease up refuses, even while
        # the database still names its token.
        new.fence_out("lost")
        with pytest.raises(FencedOut, match="write refused: lost"):
            new.put_meta("k", "v")
    finally:
        for closing in (old, new, a, b):
            closing.close()


def test_a_takeover_waits_for_a_write_in_flight_which_then_commits_first(dsn: str) -> None:
    """The fence check share-locks the lease row to the commit: the takeover's UPDATE of
    that row waits, so a write checked under the old token can never land after it."""
    a, b = PostgresLease(dsn, 1, "host-a"), PostgresLease(dsn, 30, "host-b")
    assert psycopg is not None
    try:
        held = a.acquire()
        assert held is not None
        with psycopg.connect(dsn) as writer:  # a write transaction of host-a, in flight
            writer.execute("SELECT token FROM agent_lease WHERE name = 'agent' FOR SHARE")
            wait_until(lambda: (row := b.current()) is not None and not row.live)
            taken: list[object] = []
            contender = threading.Thread(target=lambda: taken.append(b.acquire()))
            contender.start()
            wait_until(lambda: sql(dsn, "SELECT count(*) FROM pg_locks WHERE NOT granted")[0][0])
            assert taken == []  # blocked behind the write in flight
            writer.commit()
        contender.join(timeout=30)
        assert len(taken) == 1 and getattr(taken[0], "token", None) == 2
    finally:
        a.close()
        b.close()


def test_the_leader_stops_at_once_when_its_lease_is_taken(dsn: str) -> None:
    lease = PostgresLease(dsn, 1.5, "host-a")
    roles: list[str] = []
    leadership = Leadership(lease, lambda role, detail: roles.append(role))
    lost = threading.Event()
    try:
        assert leadership.wait_to_lead(threading.Event()) is not None
        leadership.hold(lambda reason: lost.set())
        sql(dsn, "UPDATE agent_lease SET holder = 'thief', token = token + 1")
        assert lost.wait(timeout=10)  # at the next renewal, a third of the ttl later
        assert "no longer held by host-a: held by thief with token 2" in leadership.lost
        assert roles == ["leader", "lost"]
    finally:
        leadership.close()


def test_a_leader_that_cannot_renew_stops_by_its_deadline(dsn: str) -> None:
    lease = PostgresLease(dsn, 1.5, "host-a")
    leadership = Leadership(lease, lambda role, detail: None)
    lost = threading.Event()
    try:
        assert leadership.wait_to_lead(threading.Event()) is not None
        started = time.monotonic()
        leadership.hold(lambda reason: lost.set())
        lease.close()  # no renewal gets through any more, as with a database out of reach
        assert lost.wait(timeout=10)
        assert time.monotonic() - started <= 1.5 + 0.5  # by the ttl after the last renewal
        assert "no renewal of the lease went through before its expiry" in leadership.lost
    finally:
        leadership.close()


def test_a_host_follows_until_it_holds_the_lease_then_drives_and_releases_it(
    tmp_path: Path, dsn: str
) -> None:
    """In process: a follower serves reads, refuses changes naming the leader, reports
    NOT_SERVING and a lease gauge of 0; once the lease is free it leads, and on stop it
    releases the lease at once."""
    world = EnclaveWorld(tmp_path)
    world.write_config(decision_interval_seconds=3600)
    config_file = tmp_path / "tee-agent.toml"
    config_file.write_text(
        host_toml(world, tmp_path / "data") + f'\n[storage]\nurl = "{dsn}"\nlease_seconds = 30\n'
    )
    other = PostgresLease(dsn, 30, "other-host")
    assert other.acquire() is not None
    metrics = HostMetrics()
    running = start_host(
        load_host_config(config_file), listen="127.0.0.1:0", metrics=metrics, lead=False
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = pb_grpc.AgentStub(channel)
            health = health_pb2_grpc.HealthStub(channel)
            leading = threading.Event()
            stop = threading.Event()
            leader = threading.Thread(target=lambda: running.lead(stop) and leading.set())
            leader.start()
            wait_until(lambda: "other-host" in running.agent.following)
            status = stub.GetStatus(pb.GetStatusRequest())
            assert status.enclave_state == "follower" and status.receipts == 0
            assert running.agent.supervisor.pid is None  # no enclave while following
            check = health.Check(health_pb2.HealthCheckRequest())
            assert check.status == health_pb2.HealthCheckResponse.NOT_SERVING
            assert metrics.lease_held._value.get() == 0
            with pytest.raises(grpc.RpcError) as refused:
                stub.StreamMarketData(tick_batches(3), metadata=AUTH)
            assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "held by other-host with token 1" in (refused.value.details() or "")
            other.release()
            assert leading.wait(timeout=120)
            assert stub.GetStatus(pb.GetStatusRequest()).enclave_state == "running"
            assert metrics.lease_held._value.get() == 1
            summary = stub.StreamMarketData(tick_batches(3), metadata=AUTH)
            assert summary.accepted == 3
            row = other.current()
            assert row is not None and row.live and row.token == 2
            assert row.holder == running.leadership.lease.holder  # type: ignore[union-attr]
    finally:
        stop.set()
        running.stop()
        other.close()
    again = PostgresLease(dsn, 30, "other-host")
    try:
        row = again.current()
        assert row is not None and row.holder == "" and not row.live  # released on stop
        taken = again.acquire()  # at once, not after the ttl
        assert taken is not None and taken.token == 3
    finally:
        again.close()
