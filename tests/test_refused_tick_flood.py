"""A flood of refused ticks, or of decisions, cannot jam the agent (issue: one client
streaming 5 batches of 10,000 price jumps once pushed the enclave's reply to 36 MB, past its
16 MiB limit, and from then on every ingest and the owner's pause failed while health said
SERVING). Refused ticks are summarised, pending outputs are bounded, replies are split, and
a call that fails for size anyway is an alarm that loses nothing."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tee_agent_rpc import agent_pb2 as pb
from tee_agent_rpc import messages_pb2 as messages

import enclave.core
import enclave.decisions
from attestation.receipt_chain import verify_receipts
from enclave.core import EnclaveCore, EnclaveError
from enclave.owner import make_owner_command
from enclave.state import MAX_PENDING_BYTES, RELEASE_BUDGET_BYTES
from host.enclave_client import EnclaveClient
from tests.enclave_harness import (
    CHAIN_ID,
    HOUR_MS,
    READY_TIMEOUT_SECONDS,
    START_MS,
    EnclaveWorld,
    ticks,
)
from tests.host_harness import AUTH, HostUnderTest, running_host
from tests.test_enclave_process import _as_columns, _in_process_core
from tests.test_host_api import all_receipts, attested_identity, receipt_of

WALLET = {"WETH": 5 * 10**18, "USDT": 10_000 * 10**6}


@pytest.fixture
def world(tmp_path: Path) -> EnclaveWorld:
    world = EnclaveWorld(tmp_path)
    world.write_config(decision_interval_seconds=3600)
    return world


def seconds_after_the_first(first_seq: int, prices: list[float]) -> messages.TickBatch:
    """Ticks a second apart after `ticks([100.0])` (seq 1, an hour after START_MS)."""
    seqs = list(range(first_seq, first_seq + len(prices)))
    return messages.TickBatch(
        pair="ETH/USDT",
        seq=seqs,
        timestamp_ms=[START_MS + HOUR_MS + seq * 1000 for seq in seqs],
        price=prices,
        volume=[1.0] * len(prices),
    )


def price_jumps(first_seq: int, count: int) -> messages.TickBatch:
    """`count` ticks at twice the first tick's price: all price jumps."""
    return seconds_after_the_first(first_seq, [200.0] * count)


def summaries(receipts: list[Any]) -> list[dict[str, Any]]:
    """The input texts of the "ticks_refused:<n>" receipts, checked against their verdict."""
    found = []
    for record in receipts:
        if record.receipt.verdict.startswith("ticks_refused:"):
            summary = json.loads(record.input_json)
            count = int(record.receipt.verdict.removeprefix("ticks_refused:"))
            assert count == sum(n for r, n in summary["by_reason"].items() if r != "duplicate_seq")
            found.append(summary)
    return found


# -- the enclave alone --------------------------------------------------------------------------


def test_50000_refused_ticks_make_five_small_receipts(world: EnclaveWorld) -> None:
    core = _in_process_core(world)
    first, _ = core.ingest(_as_columns(ticks([100.0])), None, WALLET)
    assert first.accepted == 1
    sealed = first
    for batch in range(5):
        sealed, _ = core.ingest(
            _as_columns(price_jumps(2 + batch * 10_000, 10_000)), None, WALLET, twap_prices={}
        )
        assert sealed.accepted == 0 and len(sealed.refused) == 10_000
        assert {reason for _, reason in sealed.refused} == {"price_jump"}
    # Five summaries (and the first tick's decision), not 50,000 receipts of 0.8 KB.
    assert sealed.pending_receipts == 1 + 5
    assert len(sealed.sealed_state) < 64 * 1024
    released = core.release(sealed.state_version)
    assert not released.more
    found = summaries(released.receipts)
    assert [s["by_reason"] for s in found] == [{"price_jump": 10_000}] * 5
    assert [(s["first_seq"], s["last_seq"]) for s in found] == [
        (2 + b * 10_000, 1 + (b + 1) * 10_000) for b in range(5)
    ]
    assert found[0]["first"]["price"] == 200.0 and found[4]["last"]["seq"] == 50_001
    assert all(len(r.input_json) < 1024 for r in released.receipts)
    assert core.status().ticks_refused == 50_000


def test_duplicates_alone_make_no_receipt(world: EnclaveWorld) -> None:
    core = _in_process_core(world)
    first, _ = core.ingest(_as_columns(ticks([100.0, 100.0])), None, WALLET)
    again, _ = core.ingest(_as_columns(ticks([100.0, 100.0])), None, WALLET)
    assert [reason for _, reason in again.refused] == ["duplicate_seq"] * 2
    assert again.pending_receipts == first.pending_receipts


def shrink_limits(monkeypatch: pytest.MonkeyPatch, pending: int, release: int) -> None:
    monkeypatch.setattr(enclave.decisions, "MAX_PENDING_BYTES", pending)
    monkeypatch.setattr(enclave.core, "MAX_PENDING_BYTES", pending)
    monkeypatch.setattr(enclave.core, "RELEASE_BUDGET_BYTES", release)


def released_all(core: EnclaveCore, version: int) -> tuple[list[Any], list[Any], int]:
    """Release until nothing remains: (receipts, transactions, replies)."""
    receipts, transactions, replies = [], [], 0
    while True:
        part = core.release(version)
        replies += 1
        receipts += part.receipts
        transactions += part.transactions
        if not part.more:
            return receipts, transactions, replies


def test_decisions_stop_at_the_backlog_bound_and_the_rest_waits(
    world: EnclaveWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hourly ticks, a decision each: once the outputs waiting reach the bound, the rest of
    the batch is refused as backlog, not taken; released, the same ticks are taken."""
    shrink_limits(monkeypatch, pending=40_000, release=10_000)
    core = _in_process_core(world)
    sealed, _ = core.ingest(_as_columns(ticks([100.0] * 200)), None, WALLET)
    taken = sealed.accepted
    assert 10 < taken < 200
    assert sealed.refused == tuple((seq, "backlog") for seq in range(taken + 1, 201))
    state = core._state
    assert state is not None and 40_000 <= state.pending_bytes() < 40_000 + 5_000
    # Nothing more is taken until the host releases.
    with pytest.raises(EnclaveError, match="wait for Release") as refused:
        core.ingest(_as_columns(ticks([100.0], first_seq=taken + 1)), None, WALLET)
    assert refused.value.kind == "failed_precondition"

    receipts, _, replies = released_all(core, sealed.state_version)
    assert replies >= 4  # 40 KB of outputs in replies of at most 10 KB (and one output)
    assert [r.receipt.seq for r in receipts] == list(range(1, len(receipts) + 1))
    assert len(receipts) == taken + 1
    [summary] = summaries(receipts)
    assert summary["by_reason"] == {"backlog": 200 - taken}
    assert (summary["first_seq"], summary["last_seq"]) == (taken + 1, 200)
    chain = verify_receipts(
        [r.receipt for r in receipts], address=core.identity().address, chain_id=CHAIN_ID,
        config_hash=core.config_hash,
    )  # fmt: skip
    assert chain.valid, chain.error

    again, _ = core.ingest(_as_columns(ticks([100.0] * 5, first_seq=taken + 1)), None, WALLET)
    assert again.accepted == 5 and not again.refused


def test_a_release_is_split_below_its_budget_and_keeps_transactions_with_receipts(
    world: EnclaveWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    shrink_limits(monkeypatch, pending=MAX_PENDING_BYTES, release=3_000)
    core = _in_process_core(world)
    # A market that buys, then sells (test_enclave_process): receipts with transactions.
    from tests.test_enclave_process import RISE_AND_FALL

    sealed, _ = core.ingest(
        _as_columns(ticks(RISE_AND_FALL)), None, WALLET, twap_prices={"ETH/USDT": 100.0}
    )
    receipts, transactions, replies = released_all(core, sealed.state_version)
    assert replies > 2 and len(receipts) == sealed.pending_receipts
    assert transactions and len(transactions) == sealed.pending_transactions
    signed = {r.receipt.seq for r in receipts if r.receipt.verdict == "signed"}
    assert {t.receipt_seq for t in transactions} == signed
    assert RELEASE_BUDGET_BYTES == 4 << 20 and MAX_PENDING_BYTES == 6 << 20


# -- the host, over its public API --------------------------------------------------------------


def health(host: HostUnderTest) -> int:
    stub = health_pb2_grpc.HealthStub(host.channel)
    return stub.Check(health_pb2.HealthCheckRequest(service="")).status  # type: ignore[no-any-return]


def wait_health(host: HostUnderTest, wanted: int) -> None:
    """Wait for the health watcher (it polls twice a second) to report `wanted`."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS  # a hang guard only
    while health(host) != wanted:
        assert time.monotonic() < deadline, f"health never became {wanted}"
        time.sleep(0.05)


def owner_command(world: EnclaveWorld, host: HostUnderTest, action: str, counter: int) -> bytes:
    identity = attested_identity(world, host.stub)
    return make_owner_command(
        world.owner,
        identity.x25519_public_key,
        identity.address,
        action,
        counter,  # type: ignore[arg-type]
    )


def submit(host: HostUnderTest, ciphertext: bytes) -> pb.SubmitOwnerCommandResponse:
    request = pb.SubmitOwnerCommandRequest(ciphertext=ciphertext)
    return host.stub.SubmitOwnerCommand(request, metadata=AUTH)  # type: ignore[no-any-return]


def stream(host: HostUnderTest, batches: Iterator[messages.TickBatch]) -> pb.StreamSummary:
    return host.stub.StreamMarketData(batches, metadata=AUTH)  # type: ignore[no-any-return]


def test_five_batches_of_10000_price_jumps_leave_the_agent_working(world: EnclaveWorld) -> None:
    """The reported attack, through the public API: afterwards one good tick is accepted,
    the owner's pause is applied and stored, and health stays SERVING."""
    with running_host(world) as host:
        first = stream(host, iter([ticks([100.0])]))
        assert first.accepted == 1
        flood = stream(host, (price_jumps(2 + b * 10_000, 10_000) for b in range(5)))
        assert flood.received == 50_000 and flood.refused == 50_000
        assert dict(flood.refused_by_reason) == {"price_jump": 50_000}

        good = stream(host, iter([seconds_after_the_first(50_002, [101.0])]))
        assert good.accepted == 1
        paused = submit(host, owner_command(world, host, "pause", 1))
        assert paused.paused
        status = host.stub.GetStatus(pb.GetStatusRequest())
        assert status.paused and status.alarm == "" and status.enclave_restarts == 0
        assert health(host) == health_pb2.HealthCheckResponse.SERVING
        events = all_receipts(host.stub)
        # Every refused tick is accounted for in a few small receipts.
        found = summaries([receipt_record_of(e) for e in events])
        assert sum(s["by_reason"]["price_jump"] for s in found) == 50_000
        assert len(events) < 20
        refusals = [e for e in events if e.receipt.verdict.startswith("ticks_refused:")]
        assert refusals and all(len(e.receipt.input_json) < 1024 for e in refusals)
        assert events[-1].receipt.verdict == "owner:pause"
        stored = host.agent.storage.latest_sealed_state()
        assert len(stored[1]) < 256 * 1024
    # The pause was stored: a restarted host is still paused.
    with running_host(world) as host:
        assert host.stub.GetStatus(pb.GetStatusRequest()).paused


def receipt_record_of(event: pb.DecisionEvent) -> Any:
    from wire.records import receipt_record

    return receipt_record(event.receipt)


def test_a_call_failing_for_size_is_an_alarm_and_loses_no_owner_command(
    world: EnclaveWorld, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The enclave applies a pause but its answer never arrives (RESOURCE_EXHAUSTED, as from
    a reply over the transport's limit): the host raises the alarm (health NOT_SERVING, an
    error logged, a metric, the status's alarm), puts the enclave back on the stored state,
    and the owner's command, sent again, is applied and stored; a change that goes through
    clears the alarm."""

    class TooLarge(grpc.RpcError):
        def code(self) -> grpc.StatusCode:
            return grpc.StatusCode.RESOURCE_EXHAUSTED

        def details(self) -> str:
            return "Sent message larger than max (36000000 vs. 16777216)"

    real = EnclaveClient.owner_command
    failures = [1]

    def applied_but_lost(self: EnclaveClient, ciphertext: bytes) -> Any:
        answer = real(self, ciphertext)  # the enclave applied it ...
        if failures:
            failures.pop()
            raise TooLarge()  # ... and its answer was lost
        return answer

    monkeypatch.setattr(EnclaveClient, "owner_command", applied_but_lost)
    with running_host(world) as host:
        assert stream(host, iter([ticks([100.0])])).accepted == 1
        pause = owner_command(world, host, "pause", 1)
        with (
            caplog.at_level(logging.ERROR, logger="tee_agent.host.agent"),
            pytest.raises(grpc.RpcError) as failed,
        ):
            submit(host, pause)
        assert failed.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "failed for size" in (failed.value.details() or "")
        assert any("failed for size" in r.getMessage() for r in caplog.records)
        wait_health(host, health_pb2.HealthCheckResponse.NOT_SERVING)
        status = host.stub.GetStatus(pb.GetStatusRequest())
        assert "SubmitOwnerCommand failed for size" in status.alarm
        # Not half-applied: the enclave went back to the stored state, not paused.
        assert not status.paused and status.enclave_restarts == 1
        oversized = host.metrics.registry.get_sample_value(
            "tee_agent_enclave_calls_oversized_total", {"call": "SubmitOwnerCommand"}
        )
        assert oversized == 1

        # The owner sends the very same command again: applied, stored, the alarm cleared.
        assert submit(host, pause).paused
        status = host.stub.GetStatus(pb.GetStatusRequest())
        assert status.paused and status.alarm == ""
        wait_health(host, health_pb2.HealthCheckResponse.SERVING)
    with running_host(world) as host:
        assert host.stub.GetStatus(pb.GetStatusRequest()).paused


def test_a_failed_store_of_an_owner_command_puts_the_enclave_back(
    world: EnclaveWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Storing the sealed state of a pause fails once: the enclave must not keep the pause
    in memory only (a restart would lose it silently); it goes back to the stored state, the
    owner sees the error and sends the command again."""
    with running_host(world) as host:
        assert stream(host, iter([ticks([100.0])])).accepted == 1
        storage = host.agent.storage
        real = storage.save_sealed_state
        failures = [1]

        def flaky(version: int, blob: bytes) -> None:
            if failures:
                failures.pop()
                raise OSError("disk full")
            real(version, blob)

        monkeypatch.setattr(storage, "save_sealed_state", flaky)
        pause = owner_command(world, host, "pause", 1)
        with pytest.raises(grpc.RpcError) as failed:
            submit(host, pause)
        assert failed.value.code() == grpc.StatusCode.INTERNAL
        status = host.stub.GetStatus(pb.GetStatusRequest())
        assert not status.paused and status.enclave_restarts == 1
        assert submit(host, pause).paused
    with running_host(world) as host:
        status = host.stub.GetStatus(pb.GetStatusRequest())
        assert status.paused
        events = all_receipts(host.stub)
        assert [e.receipt.verdict for e in events].count("owner:pause") == 1
        assert receipt_of(events[-1]).verdict == "owner:pause"
