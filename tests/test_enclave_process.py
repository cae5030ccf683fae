"""The enclave as a real process behind real gRPC on a unix socket: keys, sealing, attestation,
signing, receipts and crash safety."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
import rlp  # type: ignore[import-untyped]
from eth_abi import decode
from eth_account import Account
from eth_utils import to_checksum_address
from tee_agent_rpc import enclave_pb2 as pb
from tee_agent_rpc import messages_pb2 as messages

from attestation.binding import EnclaveIdentity, check_binding
from attestation.receipt import Receipt
from attestation.receipt_chain import verify_receipts
from attestation.trust import certificates_from_bytes, default_trust_anchors
from attestation.verifier import verify_evidence
from enclave.measurement import expected_sim_measurement
from enclave.transactions import VAULT_SWAP_GAS
from tests.enclave_harness import (
    CHAIN_ID,
    HOUR_MS,
    START_MS,
    VAULT,
    EnclaveWorld,
    balances,
    serialized,
    ticks,
    twaps,
)
from wire.records import receipt_record
from wire.ticks import Tick

# Rising then falling prices: the 2/4 moving averages cross up (buy), then down (sell).
RISE_AND_FALL = [100.0, 100.0, 100.0, 100.0, 104.0, 108.0, 112.0, 108.0, 100.0, 92.0, 88.0]


@pytest.fixture
def world(tmp_path: Path) -> EnclaveWorld:
    return EnclaveWorld(tmp_path)


def test_readiness_is_an_answer_from_the_enclave_and_leaves_no_thread(
    world: EnclaveWorld, tmp_path: Path
) -> None:
    import threading

    from host.enclave_client import answers

    nobody = grpc.insecure_channel(f"unix:{tmp_path / 'nobody.sock'}")
    assert not answers(nobody, 0.2)
    nobody.close()
    with world.enclave() as enclave:
        channel = grpc.insecure_channel(f"unix:{enclave.socket}")
        assert answers(channel, 5.0)
        channel.close()  # at once: nothing may still be watching it
    assert not [t for t in threading.enumerate() if "poll_connectivity" in repr(t._target)]  # type: ignore[attr-defined]


def receipt_of(message: messages.Receipt) -> Receipt:
    return receipt_record(message).receipt


def ingest_and_release(stub, batch, **kwargs):  # type: ignore[no-untyped-def]
    response = stub.Ingest(pb.IngestRequest(tick_batches=serialized(batch), **kwargs))
    released = stub.Release(pb.ReleaseRequest(state_version=response.state_version))
    return response, released


def test_a_quote_from_the_enclave_verifies_with_the_sim_root_and_binds_its_identity(
    world: EnclaveWorld,
) -> None:
    with world.enclave() as enclave:
        opened = enclave.stub.Open(pb.OpenRequest())
        assert opened.created
        nonce = os.urandom(32)
        attested = enclave.stub.Attest(pb.AttestRequest(nonce=nonce))
    identity = attested.identity
    assert identity.simulated and identity.platform == "sim"
    now = datetime.now(UTC)
    refused = verify_evidence(attested.quote, at=now)
    assert refused.tee == "sim" and not refused.valid
    anchors = default_trust_anchors().with_extra_roots(
        certificates_from_bytes((world.sim_dir / "root.pem").read_bytes(), source="sim root")
    )
    report = verify_evidence(attested.quote, at=now, anchors=anchors)
    assert report.valid, report.error
    binding = check_binding(
        report.report_data,
        EnclaveIdentity(
            address=identity.address,
            x25519_public_key=identity.x25519_public_key,
            config_hash=identity.config_hash,
        ),
        nonce,
    )
    assert binding.passed, binding.detail
    expected = expected_sim_measurement(identity.config_hash, None)
    assert report.measurements == expected.values == dict(identity.measurement)
    other_nonce = check_binding(
        report.report_data,
        EnclaveIdentity(
            address=identity.address,
            x25519_public_key=identity.x25519_public_key,
            config_hash=identity.config_hash,
        ),
        os.urandom(32),
    )
    assert not other_nonce.passed


def test_sealed_state_restores_the_same_keys_in_a_new_process(world: EnclaveWorld) -> None:
    with world.enclave() as enclave:
        first = enclave.stub.Open(pb.OpenRequest())
    with world.enclave() as enclave:
        again = enclave.stub.Open(pb.OpenRequest(sealed_state=first.sealed_state))
    assert not again.created
    assert again.identity.address == first.identity.address
    assert again.identity.x25519_public_key == first.identity.x25519_public_key
    assert again.state_version == first.state_version + 1


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage", "empty-header"])
def test_a_damaged_sealed_state_is_refused_and_the_enclave_stays_closed(
    world: EnclaveWorld, damage: str
) -> None:
    with world.enclave() as enclave:
        sealed = enclave.stub.Open(pb.OpenRequest()).sealed_state
    bad = {
        "flip": sealed[:-5] + bytes([sealed[-5] ^ 1]) + sealed[-4:],
        "truncate": sealed[: len(sealed) // 2],
        "garbage": os.urandom(200),
        "empty-header": b"TAS1",
    }[damage]
    with world.enclave() as enclave:
        with pytest.raises(grpc.RpcError) as refused:
            enclave.stub.Open(pb.OpenRequest(sealed_state=bad))
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "refusing to start" in refused.value.details()
        with pytest.raises(grpc.RpcError) as closed:
            enclave.stub.GetIdentity(pb.GetIdentityRequest())
        assert closed.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert not enclave.stub.GetStatus(pb.GetStatusRequest()).open


def test_sealed_state_of_another_config_is_refused_naming_the_config(
    world: EnclaveWorld,
) -> None:
    with world.enclave() as enclave:
        sealed = enclave.stub.Open(pb.OpenRequest()).sealed_state
    world.write_config(max_notional_per_trade_usd=999)  # another config (and another rtmr0)
    with world.enclave() as enclave, pytest.raises(grpc.RpcError) as refused:
        enclave.stub.Open(pb.OpenRequest(sealed_state=sealed))
    assert "another config" in refused.value.details()


def test_sealed_state_of_another_platform_is_refused(world: EnclaveWorld, tmp_path: Path) -> None:
    with world.enclave() as enclave:
        sealed = enclave.stub.Open(pb.OpenRequest()).sealed_state
    other = EnclaveWorld(tmp_path / "other", owner=world.owner)
    with other.enclave() as enclave, pytest.raises(grpc.RpcError) as refused:
        enclave.stub.Open(pb.OpenRequest(sealed_state=sealed))
    assert "failed authentication" in refused.value.details()


def test_signed_transactions_recover_to_the_attested_address_and_receipts_chain(
    world: EnclaveWorld,
) -> None:
    with world.enclave() as enclave:
        identity = enclave.stub.Open(pb.OpenRequest()).identity
        response, released = ingest_and_release(
            enclave.stub,
            ticks(RISE_AND_FALL),
            twap_prices=twaps(),
            balances=balances(weth=5, usdt=10_000),
        )
    assert response.accepted == len(RISE_AND_FALL) and not response.refused
    verdicts = [r.verdict for r in released.receipts]
    assert "signed" in verdicts and "hold" in verdicts
    assert len(released.transactions) == verdicts.count("signed")
    for index, tx in enumerate(released.transactions):
        assert Account.recover_transaction(tx.raw_transaction) == identity.address
        assert tx.nonce == index
    # Each transaction is the vault call of a "signed" receipt, and carries that receipt's
    # seq and digest; the receipt, made first, cannot name the transaction's hash.
    signed_receipts = {r.seq: r for r in released.receipts if r.verdict == "signed"}
    assert [tx.receipt_seq for tx in released.transactions] == sorted(signed_receipts)
    for tx in released.transactions:
        receipt = signed_receipts[tx.receipt_seq]
        assert receipt.tx_hash == bytes(32)
        fields = rlp.decode(tx.raw_transaction[1:])  # EIP-1559: ..., gas, to, value, data, ...
        assert to_checksum_address(fields[5]) == VAULT
        assert int.from_bytes(fields[4], "big") == VAULT_SWAP_GAS
        seq, digest = decode(["uint64", "bytes32"], fields[7][4 + 6 * 32 :])
        assert (seq, digest) == (receipt.seq, receipt.receipt_hash)
    chain = verify_receipts(
        [receipt_of(r) for r in released.receipts],
        address=identity.address,
        chain_id=CHAIN_ID,
        config_hash=identity.config_hash,
    )
    assert chain.valid, chain.checks
    assert chain.count == len(released.receipts)


def test_kill_9_after_a_signature_loses_no_receipt_and_reuses_no_nonce(
    world: EnclaveWorld,
) -> None:
    with world.enclave() as enclave:
        identity = enclave.stub.Open(pb.OpenRequest()).identity
        first = enclave.stub.Ingest(
            pb.IngestRequest(
                tick_batches=serialized(ticks(RISE_AND_FALL[:7])),
                twap_prices=twaps(),
                balances=balances(weth=5),
            )
        )
        assert first.pending_transactions >= 1
        stored = first.sealed_state  # the host stored it ...
        enclave.kill_hard()  # ... and the enclave died before anything was released
    with world.enclave() as enclave:
        enclave.stub.Open(pb.OpenRequest(sealed_state=stored))
        status = enclave.stub.GetStatus(pb.GetStatusRequest())
        released = enclave.stub.Release(pb.ReleaseRequest(state_version=status.state_version))
        assert len(released.transactions) == first.pending_transactions
        assert len(released.receipts) == first.pending_receipts
        _, more = ingest_and_release(
            enclave.stub,
            ticks(RISE_AND_FALL[7:], first_seq=8),
            twap_prices=twaps(),
            balances=balances(weth=5),
        )
    nonces = [tx.nonce for tx in [*released.transactions, *more.transactions]]
    assert nonces == list(range(len(nonces))), "every nonce used once, in order"
    assert len(more.transactions) >= 1
    receipts = [receipt_of(r) for r in [*released.receipts, *more.receipts]]
    chain = verify_receipts(receipts, address=identity.address, chain_id=CHAIN_ID)
    assert chain.valid, chain.checks
    assert [r.seq for r in receipts] == list(range(1, len(receipts) + 1))


def test_outputs_never_leave_before_their_state_is_sealed(world: EnclaveWorld) -> None:
    with world.enclave() as enclave:
        enclave.stub.Open(pb.OpenRequest())
        response = enclave.stub.Ingest(
            pb.IngestRequest(
                tick_batches=serialized(ticks(RISE_AND_FALL[:7])),
                twap_prices=twaps(),
                balances=balances(weth=5),
            )
        )
        with pytest.raises(grpc.RpcError) as early:
            enclave.stub.Release(pb.ReleaseRequest(state_version=response.state_version + 1))
        assert early.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        older = enclave.stub.Release(pb.ReleaseRequest(state_version=response.state_version - 1))
        assert not older.receipts and not older.transactions
        released = enclave.stub.Release(pb.ReleaseRequest(state_version=response.state_version))
        assert len(released.receipts) == response.pending_receipts
        again = enclave.stub.Release(pb.ReleaseRequest(state_version=response.state_version))
        assert not again.receipts, "released outputs are handed out once"


def test_a_stream_of_batches_is_taken_in_order_and_releases_what_the_host_stored(
    world: EnclaveWorld,
) -> None:
    with world.enclave() as enclave:
        opened = enclave.stub.Open(pb.OpenRequest())
        first, second = RISE_AND_FALL[:5], RISE_AND_FALL[5:]
        requests = [
            pb.IngestRequest(
                tick_batches=serialized(ticks(first)),
                twap_prices=twaps(),
                balances=balances(weth=5),
            ),
            # The host stored the state it opened with, nothing newer yet.
            pb.IngestRequest(
                tick_batches=serialized(
                    ticks(second[:3], first_seq=6), ticks(second[3:], first_seq=9)
                ),
                twap_prices=twaps(),
                balances=balances(weth=5),
                release_through=opened.state_version,
            ),
        ]
        one, two = list(enclave.stub.IngestStream(iter(requests)))
        # Then, as a host does once it stored `two`, the rest on a stream of its own.
        (three,) = enclave.stub.IngestStream(
            iter([pb.IngestRequest(release_through=two.state_version)])
        )
    assert (one.accepted, two.accepted, three.accepted) == (5, 6, 0)
    assert one.state_version < two.state_version < three.state_version
    assert not one.HasField("released") and not two.HasField("released")
    receipts = list(three.released.receipts)
    assert len(receipts) == two.pending_receipts > one.pending_receipts > 0  # all, in order
    assert [r.seq for r in receipts] == list(range(1, len(receipts) + 1))
    assert "signed" in [r.verdict for r in receipts]
    assert [t.receipt_seq for t in three.released.transactions] == [
        r.seq for r in receipts if r.verdict == "signed"
    ]


def test_a_refused_request_ends_the_stream_and_releases_nothing(world: EnclaveWorld) -> None:
    with world.enclave() as enclave:
        enclave.stub.Open(pb.OpenRequest())
        good = enclave.stub.Ingest(
            pb.IngestRequest(
                tick_batches=serialized(ticks(RISE_AND_FALL[:7])),
                twap_prices=twaps(),
                balances=balances(weth=5),
            )
        )
        requests = [
            # Not sealed yet: refused before anything is released or taken.
            pb.IngestRequest(
                tick_batches=serialized(ticks([88.0], first_seq=8)),
                release_through=good.state_version + 5,
            ),
            pb.IngestRequest(tick_batches=serialized(ticks([88.0], first_seq=9))),
        ]
        with pytest.raises(grpc.RpcError) as refused:
            list(enclave.stub.IngestStream(iter(requests)))
        status = enclave.stub.GetStatus(pb.GetStatusRequest())
        released = enclave.stub.Release(pb.ReleaseRequest(state_version=good.state_version))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "never sealed" in refused.value.details()
    assert status.last_tick_seq == 7, "no request after the refused one was taken"
    assert len(released.receipts) == good.pending_receipts > 0, "the outputs stayed pending"


def test_replayed_ticks_are_refused_as_duplicates_without_receipts(world: EnclaveWorld) -> None:
    with world.enclave() as enclave:
        enclave.stub.Open(pb.OpenRequest())
        batch = ticks(RISE_AND_FALL[:4])
        first, _ = ingest_and_release(enclave.stub, batch)
        replay, released = ingest_and_release(enclave.stub, batch)
    assert first.accepted == 4
    assert replay.accepted == 0
    assert [(t.seq, t.reason) for t in replay.refused] == [
        (seq, "duplicate_seq") for seq in batch.seq
    ]
    assert not released.receipts


def test_one_poisoned_tick_is_refused_and_honest_ticks_go_on_after_a_restart(
    world: EnclaveWorld,
) -> None:
    # seq 2^64-1 once made every later tick a duplicate_seq, and a timestamp in the year
    # 3000 (replay clock) every later one timestamp_backwards, across restarts, for good.
    def one(seq: int, timestamp_ms: int) -> messages.TickBatch:
        return messages.TickBatch(
            pair="ETH/USDT", seq=[seq], timestamp_ms=[timestamp_ms], price=[100.0], volume=[1.0]
        )

    with world.enclave() as enclave:
        enclave.stub.Open(pb.OpenRequest())
        first, _ = ingest_and_release(enclave.stub, ticks(RISE_AND_FALL[:4], first_seq=7))
        assert first.accepted == 4  # seq 7 to 10, an hour apart
        hour_after = START_MS + 11 * HOUR_MS
        poisoned, _ = ingest_and_release(
            enclave.stub, messages.TickBatch(
                pair="ETH/USDT",
                seq=[2**64 - 1, 11, 12],
                timestamp_ms=[hour_after, 32_503_680_000_000, hour_after],
                price=[100.0] * 3,
                volume=[1.0] * 3,
            ),
        )  # fmt: skip
        assert [(t.seq, t.reason) for t in poisoned.refused] == [
            (2**64 - 1, "seq_gap"),
            (11, "time_gap"),
        ]
        assert poisoned.accepted == 1
        stored = poisoned.sealed_state
        enclave.kill_hard()
    with world.enclave() as enclave:
        enclave.stub.Open(pb.OpenRequest(sealed_state=stored))
        assert enclave.stub.GetStatus(pb.GetStatusRequest()).last_tick_seq == 12
        again, _ = ingest_and_release(enclave.stub, one(2**64 - 1, hour_after + HOUR_MS))
        assert [(t.seq, t.reason) for t in again.refused] == [(2**64 - 1, "seq_gap")]
        honest, _ = ingest_and_release(enclave.stub, one(13, hour_after + HOUR_MS))
        assert honest.accepted == 1 and not honest.refused
        status = enclave.stub.GetStatus(pb.GetStatusRequest())
    assert status.last_tick_seq == 13


def test_bad_requests_get_invalid_argument(world: EnclaveWorld) -> None:
    with world.enclave() as enclave:
        enclave.stub.Open(pb.OpenRequest())
        for request, words in [
            (
                pb.IngestRequest(
                    tick_batches=serialized(
                        messages.TickBatch(
                            pair="ETH/USDT", seq=[0], timestamp_ms=[0], price=[1], volume=[0]
                        )
                    )
                ),
                "seq",
            ),
            (
                pb.IngestRequest(
                    tick_batches=serialized(
                        messages.TickBatch(
                            pair="X" * 40, seq=[1], timestamp_ms=[0], price=[1], volume=[0]
                        )
                    )
                ),
                "pair",
            ),
            (
                pb.IngestRequest(
                    tick_batches=serialized(messages.TickBatch(pair="ETH/USDT", seq=[1, 2]))
                ),
                "same length",
            ),
            (pb.IngestRequest(balances={"WETH": "-5"}), "balance"),
            (pb.IngestRequest(balances={"DOGE": "5"}), "unknown tokens"),
            # The host's checks, applied again: the enclave does not trust that it ran them.
            (pb.IngestRequest(tick_batches=[b"\x0a\xff"]), "batch 1 is not a valid TickBatch"),
            (
                pb.IngestRequest(tick_batches=serialized(ticks([2000.0] * 10_001))),
                "batch 1 holds 10001 ticks; the limit is 10000",
            ),
            (
                pb.IngestRequest(tick_batches=serialized(*[ticks([2000.0] * 10_000)] * 11)),
                "over 100000 ticks in one call (batch 11 reaches 110000)",
            ),
        ]:
            with pytest.raises(grpc.RpcError) as refused:
                enclave.stub.Ingest(request)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert words in refused.value.details()
        with pytest.raises(grpc.RpcError) as short_nonce:
            enclave.stub.Attest(pb.AttestRequest(nonce=b"short"))
        assert short_nonce.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert enclave.stub.GetStatus(pb.GetStatusRequest()).open


# Not a balance: "²" passes str.isdigit() and fails int(); int() takes "١٢" (Arabic-Indic).
NOT_BALANCES = ["²", "١٢", "", " 1", "1 ", "1\n", "+1", "-1", "1e3", "1_000", "0x10", "1" * 100]


def test_a_balance_that_is_not_ascii_digits_is_invalid_argument_naming_the_field(
    world: EnclaveWorld,
) -> None:
    with world.enclave() as enclave:
        enclave.stub.Open(pb.OpenRequest())
        for text in NOT_BALANCES:
            with pytest.raises(grpc.RpcError) as refused:
                enclave.stub.Ingest(pb.IngestRequest(balances={"WETH": text}))
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, text
            assert "balances['WETH']" in refused.value.details(), text
        # Within the bound, the largest uint256 is a balance; one more is not.
        top = str(2**256 - 1)
        enclave.stub.Ingest(pb.IngestRequest(balances={"WETH": top}))
        with pytest.raises(grpc.RpcError) as refused:
            enclave.stub.Ingest(pb.IngestRequest(balances={"WETH": str(2**256)}))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert enclave.stub.GetStatus(pb.GetStatusRequest()).open


def test_outputs_released_by_a_refused_ingest_stay_pending(
    world: EnclaveWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In process: an Ingest whose release_through went through but whose batch is then
    refused (too many outputs waiting) must leave those outputs pending, not drop them."""
    import enclave.core
    from enclave.config import load_config
    from enclave.server import PlatformChoice, make_platform, make_policy
    from wire.ticks import TickColumns

    def columns(batch: messages.TickBatch) -> list[TickColumns]:
        return TickColumns.runs(
            [
                Tick(seq, stamp, batch.pair, price, volume)
                for seq, stamp, price, volume in zip(
                    batch.seq, batch.timestamp_ms, batch.price, batch.volume, strict=True
                )
            ]
        )

    config = load_config(world.config_path)
    policy = make_policy(config)
    core = enclave.core.EnclaveCore(
        make_platform(PlatformChoice("sim", world.sim_dir), config, policy), config, policy
    )
    core.open(b"")
    wallet = {"WETH": 5 * 10**18, "USDT": 10_000 * 10**6}
    a, _ = core.ingest(columns(ticks(RISE_AND_FALL[:6])), None, wallet)
    b, _ = core.ingest(columns(ticks(RISE_AND_FALL[6:], first_seq=7)), None, wallet)
    from_b = b.pending_receipts - a.pending_receipts
    assert a.pending_receipts > 0 and from_b > 0
    monkeypatch.setattr(enclave.core, "MAX_PENDING_OUTPUTS", from_b)
    with pytest.raises(enclave.core.EnclaveError, match="wait for Release"):
        core.ingest(columns(ticks([88.0], first_seq=20)), None, wallet, a.state_version)
    released = core.release(b.state_version)
    assert len(released.receipts) == b.pending_receipts
    assert [p.receipt.seq for p in released.receipts] == list(range(1, b.pending_receipts + 1))


def test_each_decision_of_an_ingest_reports_its_policy_time(world: EnclaveWorld) -> None:
    # decision_interval_seconds is 0 here: every accepted tick decides, a replayed one not.
    with world.enclave() as enclave:
        enclave.stub.Open(pb.OpenRequest())
        first = enclave.stub.Ingest(
            pb.IngestRequest(
                tick_batches=serialized(ticks(RISE_AND_FALL)),
                twap_prices=twaps(),
                balances=balances(weth=5),
            )
        )
        replayed = enclave.stub.Ingest(
            pb.IngestRequest(
                tick_batches=serialized(ticks(RISE_AND_FALL[:3])),
                twap_prices=twaps(),
                balances=balances(weth=5),
            )
        )
    assert first.accepted == len(RISE_AND_FALL)
    assert len(first.decision_seconds) == len(RISE_AND_FALL)
    assert all(seconds >= 0 for seconds in first.decision_seconds)
    assert replayed.accepted == 0 and len(replayed.refused) == 3
    assert list(replayed.decision_seconds) == []


def _in_process_core(world: EnclaveWorld):  # type: ignore[no-untyped-def]
    from enclave.config import load_config
    from enclave.core import EnclaveCore
    from enclave.server import PlatformChoice, make_platform, make_policy

    config = load_config(world.config_path)
    policy = make_policy(config)
    core = EnclaveCore(
        make_platform(PlatformChoice("sim", world.sim_dir), config, policy), config, policy
    )
    core.open(b"")
    return core


def _as_columns(batch):  # type: ignore[no-untyped-def]
    from wire.ticks import TickColumns

    return TickColumns.runs(
        [
            Tick(seq, stamp, batch.pair, price, volume)
            for seq, stamp, price, volume in zip(
                batch.seq, batch.timestamp_ms, batch.price, batch.volume, strict=True
            )
        ]
    )


def test_the_backlog_limit_counts_what_stays_pending_after_the_release(
    world: EnclaveWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The limit applies to the outputs that would still wait after release_through: an
    ingest that releases enough goes through, the same ingest releasing nothing does not
    (and then releases nothing and seals nothing)."""
    import enclave.core

    core = _in_process_core(world)
    wallet = {"WETH": 5 * 10**18, "USDT": 10_000 * 10**6}
    a, _ = core.ingest(_as_columns(ticks(RISE_AND_FALL[:6])), None, wallet)
    b, _ = core.ingest(_as_columns(ticks(RISE_AND_FALL[6:], first_seq=7)), None, wallet)
    from_b = b.pending_receipts - a.pending_receipts
    assert a.pending_receipts > 0 and from_b > 0
    monkeypatch.setattr(enclave.core, "MAX_PENDING_OUTPUTS", from_b + 1)
    with pytest.raises(enclave.core.EnclaveError, match="wait for Release"):
        core.ingest(_as_columns(ticks([88.0], first_seq=20)), None, wallet)
    with pytest.raises(enclave.core.EnclaveError, match="never sealed"):
        core.ingest(_as_columns(ticks([88.0], first_seq=20)), None, wallet, b.state_version + 1)
    assert core.status().state_version == b.state_version
    c, released = core.ingest(
        _as_columns(ticks([88.0], first_seq=20)), None, wallet, a.state_version
    )
    assert [p.receipt.seq for p in released.receipts] == list(range(1, a.pending_receipts + 1))
    assert c.accepted == 1 and c.state_version == b.state_version + 1
    assert c.pending_receipts == from_b + 1  # b's receipts and the new tick's decision
    rest = core.release(c.state_version)
    assert [p.receipt.seq for p in rest.receipts] == list(
        range(a.pending_receipts + 1, b.pending_receipts + 2)
    )


def test_a_malformed_sealed_state_error_never_quotes_the_secret() -> None:
    import json

    from pydantic import ValidationError

    from enclave.state import EnclaveState

    # pydantic shortens a long input in the middle, so look for any piece of it: a run of
    # six hex digits that nothing else in the message contains.
    piece = "5ec2e7"
    data = json.loads(EnclaveState.fresh().to_bytes())
    for field in ("box_secret", "account_secret"):
        for bad in (piece + "zz", piece * 11 + "0", [piece * 10], {"hex": piece}):
            broken = {**data, field: bad}
            with pytest.raises(ValidationError) as refused:
                EnclaveState.from_bytes(json.dumps(broken).encode())
            assert piece not in str(refused.value)
            assert piece not in repr(refused.value)
            assert field in str(refused.value)
