"""The host as a server: real gRPC over TCP, the real enclave process, real SQLite."""

from __future__ import annotations

import os
import signal
import threading
import time
import traceback
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from tee_agent_rpc import agent_pb2 as pb
from tee_agent_rpc import messages_pb2 as messages

from attestation.binding import EnclaveIdentity, check_binding
from attestation.receipt import Receipt
from attestation.receipt_chain import verify_receipts
from attestation.trust import certificates_from_bytes, default_trust_anchors
from attestation.verifier import verify_evidence
from host.enclave_client import IngestInput
from host.storage.base import StorageError
from tests.enclave_harness import CHAIN_ID, READY_TIMEOUT_SECONDS, EnclaveWorld, ticks
from tests.host_harness import AUTH, running_host, tick_batches
from tests.test_enclave_process import RISE_AND_FALL
from wire.records import ReceiptRecord, receipt_record


@pytest.fixture
def world(tmp_path: Path) -> EnclaveWorld:
    world = EnclaveWorld(tmp_path)
    world.write_config(decision_interval_seconds=3600)
    return world


def all_receipts(stub: object) -> list[pb.DecisionEvent]:
    events, seq = [], 1
    while True:
        page = stub.ListReceipts(pb.ListReceiptsRequest(from_seq=seq, limit=1000)).receipts  # type: ignore[attr-defined]
        events.extend(page)
        if len(page) < 1000:
            return events
        seq = page[-1].receipt.seq + 1


def receipt_of(event: pb.DecisionEvent) -> Receipt:
    return receipt_record(event.receipt).receipt


def attested_identity(world: EnclaveWorld, stub: object) -> messages.Identity:
    """Fetch a quote, verify it with the sim root and check it binds the identity."""
    nonce = os.urandom(32)
    attestation = stub.GetAttestation(pb.GetAttestationRequest(nonce=nonce))  # type: ignore[attr-defined]
    anchors = default_trust_anchors().with_extra_roots(
        certificates_from_bytes((world.sim_dir / "root.pem").read_bytes(), source="sim root")
    )
    report = verify_evidence(attestation.quote, at=datetime.now(UTC), anchors=anchors)
    assert report.valid, report.error
    identity = attestation.identity
    binding = check_binding(
        report.report_data,
        EnclaveIdentity(address=identity.address, x25519_public_key=identity.x25519_public_key,
                        config_hash=identity.config_hash),
        nonce,
    )  # fmt: skip
    assert binding.passed, binding.detail
    return identity


def test_100000_ticks_are_all_accounted_for_and_receipts_chain_to_the_attested_identity(
    world: EnclaveWorld,
) -> None:
    with running_host(world) as host:
        summary = host.stub.StreamMarketData(tick_batches(100_000), metadata=AUTH)
        identity = attested_identity(world, host.stub)
        status = host.stub.GetStatus(pb.GetStatusRequest())
        events = all_receipts(host.stub)
        enclave = host.agent.enclave_status()
    assert summary.received == 100_000
    assert summary.accepted + summary.refused == 100_000
    assert dict(summary.refused_by_reason) == {"price_jump": 4}
    assert status.ticks_accepted == summary.accepted and status.last_tick_seq == 100_000
    assert summary.receipts == len(events) == status.receipts
    # The enclave's own count: the host stored every receipt it made, none left behind.
    assert enclave.receipts == len(events)
    chain = verify_receipts(
        [receipt_of(e) for e in events], address=identity.address, chain_id=CHAIN_ID,
        config_hash=identity.config_hash, expected_head_hash=status.head_hash,
    )  # fmt: skip
    assert chain.valid, chain.error
    assert status.address == identity.address


def test_kill_9_of_the_enclave_mid_stream_loses_and_double_counts_nothing(
    world: EnclaveWorld,
) -> None:
    with running_host(world) as host:
        killed: list[int] = []

        def batches_with_a_crash():  # type: ignore[no-untyped-def]
            for index, batch in enumerate(tick_batches(20_000, batch=500)):
                if index in (7, 23):
                    # The host reads ahead of the enclave: kill the restarted one, not the
                    # one killed before (the batch after a kill makes the host notice it).
                    supervisor = host.agent.supervisor
                    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
                    while supervisor.pid in killed or supervisor.state != "running":
                        assert time.monotonic() < deadline, "the enclave never came back"
                        time.sleep(0.05)
                    killed.append(supervisor.pid)
                    os.kill(supervisor.pid, signal.SIGKILL)
                yield batch

        summary = host.stub.StreamMarketData(batches_with_a_crash(), metadata=AUTH)
        status = host.stub.GetStatus(pb.GetStatusRequest())
        identity = attested_identity(world, host.stub)
        events = all_receipts(host.stub)
        enclave = host.agent.enclave_status()
    assert status.enclave_restarts >= 2
    assert summary.received == 20_000
    assert summary.accepted + summary.refused == 20_000
    assert "duplicate_seq" not in summary.refused_by_reason, "no tick was counted twice"
    # 20,000 ticks hold one spike (tick_batches: index 12,345), and nothing else is refused.
    assert dict(summary.refused_by_reason) == {"price_jump": 1}
    assert summary.accepted == 19_999
    assert status.ticks_accepted == summary.accepted, "the enclave saw each tick exactly once"
    assert status.last_tick_seq == 20_000
    assert [e.receipt.seq for e in events] == list(range(1, len(events) + 1))
    assert enclave.receipts == len(events) == status.receipts
    chain = verify_receipts(
        [receipt_of(e) for e in events], address=identity.address, chain_id=CHAIN_ID
    )
    assert chain.valid, chain.error


def test_a_stuck_enclave_is_restarted_and_the_batch_goes_through(
    world: EnclaveWorld, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import host.ingest_flow

    monkeypatch.setattr(host.ingest_flow, "ENCLAVE_CALL_TIMEOUT", 2.0)
    with running_host(world) as running:
        first = running.stub.StreamMarketData(tick_batches(1000), metadata=AUTH)
        stuck = running.agent.supervisor.pid
        os.kill(stuck, signal.SIGSTOP)  # alive, but never answers
        try:
            then = running.stub.StreamMarketData(tick_batches(1000, first_seq=1001), metadata=AUTH)
        finally:
            if running.agent.supervisor.pid == stuck:
                os.kill(stuck, signal.SIGCONT)
        status = running.stub.GetStatus(pb.GetStatusRequest())
        events = all_receipts(running.stub)
        enclave = running.agent.enclave_status()
    assert running.agent.supervisor.pid != stuck
    assert status.enclave_restarts == 1
    assert "restarting the enclave: no answer within 2 s" in caplog.text
    assert first.accepted + first.refused == 1000 and then.accepted + then.refused == 1000
    assert status.last_tick_seq == 2000
    assert status.ticks_accepted == first.accepted + then.accepted
    assert enclave.receipts == len(events) == status.receipts
    assert [e.receipt.seq for e in events] == list(range(1, len(events) + 1))


@pytest.mark.parametrize("failing_in", ["receive", "release"])
def test_receipts_the_store_failed_to_take_come_back_and_the_chain_stays_whole(
    world: EnclaveWorld, monkeypatch: pytest.MonkeyPatch, failing_in: str
) -> None:
    """Released outputs the store failed to take are not lost: the enclave dropped them
    from its pending list, so the host restarts it on the stored state before the error.

    `failing_in` names the host function whose store fails: IngestFlow.receive (outputs an
    IngestStream answer released) or Agent.release (outputs of the Release ending a flow).
    """
    import host.tick_stream

    # One client batch per enclave call: a flow then has several answers on their way, and
    # later answers release the outputs of earlier ones.
    monkeypatch.setattr(host.tick_stream, "MAX_JOINED_TICKS", 1000)
    with running_host(world) as running:
        storage = running.agent.storage
        append = storage.append_receipts
        refused: list[int] = []

        def append_or_fail_once(records: list[ReceiptRecord]) -> None:
            called_from = {frame.name for frame in traceback.extract_stack()}
            if not refused and failing_in in called_from:
                refused.append(records[0].receipt.seq)
                raise StorageError("disk I/O error")
            append(records)

        monkeypatch.setattr(storage, "append_receipts", append_or_fail_once)
        with pytest.raises(grpc.RpcError) as failed:
            running.stub.StreamMarketData(tick_batches(20_000), metadata=AUTH)
        assert failed.value.code() == grpc.StatusCode.INTERNAL
        assert refused, f"no receipts were stored from {failing_in}"
        # The client sends again what the enclave has not accepted.
        resume = running.agent.enclave_status().last_tick_seq + 1
        then = running.stub.StreamMarketData(
            tick_batches(20_001 - resume, first_seq=resume), metadata=AUTH
        )
        status = running.stub.GetStatus(pb.GetStatusRequest())
        identity = attested_identity(world, running.stub)
        events = all_receipts(running.stub)
        enclave = running.agent.enclave_status()
    assert then.accepted + then.refused == 20_001 - resume
    assert status.enclave_restarts == 1 and status.last_tick_seq == 20_000
    assert [e.receipt.seq for e in events] == list(range(1, len(events) + 1))
    assert refused[0] in {e.receipt.seq for e in events}
    assert enclave.receipts == len(events) == status.receipts
    chain = verify_receipts(
        [receipt_of(e) for e in events], address=identity.address, chain_id=CHAIN_ID,
        config_hash=identity.config_hash, expected_head_hash=status.head_hash,
    )  # fmt: skip
    assert chain.valid, chain.error


def test_a_second_start_on_the_same_data_resumes(world: EnclaveWorld) -> None:
    data = world.root / "data"
    with running_host(world, data) as host:
        host.stub.StreamMarketData(tick_batches(3000), metadata=AUTH)
        first = host.stub.GetStatus(pb.GetStatusRequest())
    with running_host(world, data) as host:
        again = host.stub.GetStatus(pb.GetStatusRequest())
        more = host.stub.StreamMarketData(tick_batches(3000, first_seq=3001), metadata=AUTH)
        later = host.stub.GetStatus(pb.GetStatusRequest())
        events = all_receipts(host.stub)
    assert again.address == first.address
    assert again.receipts == first.receipts and again.last_tick_seq == 3000
    assert more.accepted == 3000 and later.last_tick_seq == 6000
    chain = verify_receipts(
        [receipt_of(e) for e in events], address=first.address, chain_id=CHAIN_ID
    )
    assert chain.valid and chain.count == later.receipts


def test_watch_decisions_streams_stored_then_live_receipts(world: EnclaveWorld) -> None:
    with running_host(world) as host:
        host.stub.StreamMarketData(tick_batches(2000), metadata=AUTH)
        stored = host.stub.GetStatus(pb.GetStatusRequest()).receipts
        seen: list[int] = []
        done = threading.Event()
        stream = host.stub.WatchDecisions(pb.WatchDecisionsRequest(from_seq=1))

        def read() -> None:
            for event in stream:
                seen.append(event.receipt.seq)
                if len(seen) >= stored + 5:
                    done.set()
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        host.stub.StreamMarketData(tick_batches(2000, first_seq=2001), metadata=AUTH)
        assert done.wait(30)
        stream.cancel()
    assert seen[: stored + 5] == list(range(1, stored + 6))


def test_twaps_reach_the_enclave_and_signed_decisions_come_with_their_transaction(
    world: EnclaveWorld,
) -> None:
    world.write_config()  # a decision at every tick
    batch = ticks(RISE_AND_FALL)
    work = IngestInput(
        tick_batches=(batch.SerializeToString(),),
        ticks=len(batch.seq),
        balances={"WETH": 5 * 10**18, "USDT": 10_000 * 10**6},
    )
    with running_host(world) as host:
        # Without a TWAP the enclave signs nothing; with the host's, it trades.
        without = host.agent.ingest(work)
        assert without.transactions == 0
        verdicts = {e.receipt.verdict for e in all_receipts(host.stub)}
        assert "refused:twap_unavailable" in verdicts
        again = ticks(RISE_AND_FALL, first_seq=len(RISE_AND_FALL) + 1)
        result = host.agent.ingest(
            replace(work, tick_batches=(again.SerializeToString(),), twaps={"ETH/USDT": 100.0})
        )
        assert result.transactions >= 1
        signed = [e for e in all_receipts(host.stub) if e.receipt.verdict == "signed"]
        assert len(signed) == result.transactions
        for event in signed:
            assert event.receipt.tx_hash == bytes(32)
            assert event.transaction.receipt_seq == event.receipt.seq
            one = host.stub.GetReceipt(pb.GetReceiptRequest(seq=event.receipt.seq))
            assert one.transaction == event.transaction


def test_health_and_reflection_answer(world: EnclaveWorld) -> None:
    with running_host(world) as host:
        health = health_pb2_grpc.HealthStub(host.channel)
        for service in ("", "tee_agent.v1.Agent", "liveness"):
            answer = health.Check(health_pb2.HealthCheckRequest(service=service))
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        database = ProtoReflectionDescriptorDatabase(host.channel)
        services = set(database.get_services())
        service = DescriptorPool(database).FindServiceByName("tee_agent.v1.Agent")
        methods = {method.name for method in service.methods}
    assert {"tee_agent.v1.Agent", "grpc.health.v1.Health"} <= services
    assert {"StreamMarketData", "WatchDecisions", "GetAttestation", "GetStatus"} <= methods


def test_reflection_answers_under_v1_as_current_clients_ask(world: EnclaveWorld) -> None:
    """grpcurl, Postman and grpcui ask grpc.reflection.v1 first; v1alpha stays for older ones.
    The v1 messages are v1alpha's in another package: same bytes on the wire."""
    from google.protobuf import descriptor_pb2
    from grpc_reflection.v1alpha import reflection_pb2 as r

    with running_host(world) as host:
        ask = host.channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=r.ServerReflectionRequest.SerializeToString,
            response_deserializer=r.ServerReflectionResponse.FromString,
        )
        listed, agent_file, itself = ask(
            iter([
                r.ServerReflectionRequest(list_services=""),
                r.ServerReflectionRequest(file_containing_symbol="tee_agent.v1.Agent"),
                r.ServerReflectionRequest(
                    file_containing_symbol="grpc.reflection.v1.ServerReflection"
                ),
            ])
        )  # fmt: skip
    names = {service.name for service in listed.list_services_response.service}
    assert {"tee_agent.v1.Agent", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection"} <= names  # fmt: skip
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in agent_file.file_descriptor_response.file_descriptor_proto
    ]
    agent = next(f for f in files if f.package == "tee_agent.v1" and f.service)
    assert "GetStatus" in {method.name for method in agent.service[0].method}
    [v1] = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in itself.file_descriptor_response.file_descriptor_proto
    ]
    assert v1.package == "grpc.reflection.v1" and v1.service[0].name == "ServerReflection"
    assert v1.service[0].method[0].input_type == ".grpc.reflection.v1.ServerReflectionRequest"


def test_bad_requests_and_missing_tokens_get_the_right_codes(world: EnclaveWorld) -> None:
    with running_host(world) as host:
        stub = host.stub

        def code(call) -> grpc.StatusCode:  # type: ignore[no-untyped-def]
            with pytest.raises(grpc.RpcError) as failure:
                call()
            assert failure.value.details()
            return failure.value.code()  # type: ignore[no-any-return]

        batch = next(tick_batches(10))
        assert code(lambda: stub.StreamMarketData(iter([batch]))) == grpc.StatusCode.UNAUTHENTICATED
        wrong = (("authorization", "Bearer nope"),)
        assert (
            code(lambda: stub.StreamMarketData(iter([batch]), metadata=wrong))
            == grpc.StatusCode.UNAUTHENTICATED
        )
        assert (
            code(lambda: stub.SubmitOwnerCommand(pb.SubmitOwnerCommandRequest(ciphertext=b"x")))
            == grpc.StatusCode.UNAUTHENTICATED
        )
        huge = next(tick_batches(10_001, batch=10_001))
        assert (
            code(lambda: stub.StreamMarketData(iter([huge]), metadata=AUTH))
            == grpc.StatusCode.INVALID_ARGUMENT
        )
        zero = messages.TickBatch(pair="ETH/USDT", seq=[0], timestamp_ms=[0], price=[1], volume=[0])
        assert (
            code(lambda: stub.StreamMarketData(iter([zero]), metadata=AUTH))
            == grpc.StatusCode.INVALID_ARGUMENT
        )
        assert (
            code(lambda: stub.GetAttestation(pb.GetAttestationRequest(nonce=b"short")))
            == grpc.StatusCode.INVALID_ARGUMENT
        )
        assert (
            code(lambda: stub.ListReceipts(pb.ListReceiptsRequest(from_seq=0)))
            == grpc.StatusCode.INVALID_ARGUMENT
        )
        assert (
            code(lambda: stub.ListReceipts(pb.ListReceiptsRequest(from_seq=1, limit=5000)))
            == grpc.StatusCode.INVALID_ARGUMENT
        )
        assert (
            code(lambda: stub.GetReceipt(pb.GetReceiptRequest(seq=99))) == grpc.StatusCode.NOT_FOUND
        )
        assert (
            code(
                lambda: stub.SubmitOwnerCommand(
                    pb.SubmitOwnerCommandRequest(ciphertext=os.urandom(100)), metadata=AUTH
                )
            )
            == grpc.StatusCode.PERMISSION_DENIED
        )
        raw = host.channel.unary_unary("/tee_agent.v1.Agent/GetReceipt")
        assert code(lambda: raw(b"\xff\xff\xff garbage")) == grpc.StatusCode.INVALID_ARGUMENT
        # After all of that the server still answers.
        assert stub.GetStatus(pb.GetStatusRequest()).enclave_state == "running"
