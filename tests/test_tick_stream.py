"""A client's tick batches: checked one by one, joined into one call the enclave reads as the
client's own bytes."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from tee_agent_rpc import enclave_pb2 as epb
from tee_agent_rpc import messages_pb2 as pb

from host.enclave_client import FeeHint, IngestInput, ingest_request
from host.tick_stream import MAX_JOINED_TICKS, JoinedBatches
from wire.ticks import InvalidBatch, check_tick_batch


def batch(first_seq: int, count: int, pair: str = "ETH/USDT") -> pb.TickBatch:
    seqs = list(range(first_seq, first_seq + count))
    return pb.TickBatch(
        pair=pair,
        seq=seqs,
        timestamp_ms=[1_700_000_000_000 + seq for seq in seqs],
        price=[2000.0 + seq % 7 for seq in seqs],
        volume=[0.5] * count,
    )


def all_read_first(batches: list[pb.TickBatch], finished: threading.Event) -> Iterator[bytes]:
    """Yields `batches` serialized; sets `finished` once the reader handed every one over."""
    for batch in batches:
        yield batch.SerializeToString()
    finished.set()


def drain(batches: list[pb.TickBatch]) -> list[tuple[epb.IngestRequest, int]]:
    """Joined output once every batch has arrived (so joining does not depend on timing)."""
    finished = threading.Event()
    joined = JoinedBatches(all_read_first(batches, finished))
    assert finished.wait(timeout=60)
    return [as_request(work) for work in joined]


def as_request(work: IngestInput) -> tuple[epb.IngestRequest, int]:
    """The request the enclave reads for `work` (through its bytes), and the tick count."""
    data = ingest_request(work, 0).SerializeToString()
    return epb.IngestRequest.FromString(data), work.ticks


def batches_of(request: epb.IngestRequest) -> list[pb.TickBatch]:
    return [pb.TickBatch.FromString(data) for data in request.tick_batches]


def test_batches_that_arrived_meanwhile_are_joined_and_read_back_unchanged() -> None:
    sent = [batch(1, 1), batch(2, 3000, "BTC/USDT"), batch(3002, 7)]  # lengths of 1 to 3 bytes
    [(request, count)] = drain(sent)
    assert count == 3008
    assert list(request.tick_batches) == [b.SerializeToString() for b in sent]
    assert [b.pair for b in batches_of(request)] == ["ETH/USDT", "BTC/USDT", "ETH/USDT"]
    assert not request.HasField("fees") and not request.balances


def test_fees_balances_and_twaps_go_with_the_batches() -> None:
    work = IngestInput(
        tick_batches=(batch(1, 2).SerializeToString(),),
        ticks=2,
        fees=FeeHint(7, 3),
        balances={"WETH": 10**18},
        twaps={"ETH/USDT": 2000.5, "BTC/USDT": 30_000.25},
    )
    request, count = as_request(work)
    assert count == 2
    assert (request.fees.max_fee_per_gas_wei, request.fees.max_priority_fee_per_gas_wei) == (7, 3)
    assert dict(request.balances) == {"WETH": str(10**18)}
    assert dict(request.twap_prices) == {"ETH/USDT": 2000.5, "BTC/USDT": 30_000.25}
    assert not as_request(IngestInput(tick_batches=(), ticks=0))[0].twap_prices


def test_a_call_never_carries_more_than_the_joining_limit() -> None:
    sent = [batch(1 + 10_000 * i, 10_000) for i in range(6)]
    joined = drain(sent)
    assert [count for _, count in joined] == [MAX_JOINED_TICKS, 10_000]
    seqs = [seq for request, _ in joined for b in batches_of(request) for seq in b.seq]
    assert seqs == list(range(1, 60_001))


def test_empty_batches_are_skipped() -> None:
    joined = drain([pb.TickBatch(), batch(1, 2), pb.TickBatch(pair="ETH/USDT")])
    assert [count for _, count in joined] == [2]


def test_a_client_field_unknown_here_stays_inside_its_batch() -> None:
    original = batch(1, 2)
    # Field 7, unknown to TickBatch; then empty records of fields 3 and 2: in a TickBatch,
    # packed columns (timestamp_ms, seq) that add nothing, but were they to leak out of the
    # batch, IngestRequest would read them as a balances entry and as fees.
    raw = original.SerializeToString() + b"\x3a\x03abc" + b"\x1a\x00" + b"\x12\x00"
    [(request, count)] = drain_raw([raw])
    assert not request.balances and not request.HasField("fees")
    assert len(request.tick_batches) == 1 and count == 2
    # The enclave gets the client's bytes as they came, not a re-serialized message.
    assert request.tick_batches[0] == raw
    [read] = batches_of(request)
    assert list(read.seq) == list(original.seq)
    assert list(read.timestamp_ms) == list(original.timestamp_ms)


def drain_raw(data: list[bytes]) -> list[tuple[epb.IngestRequest, int]]:
    return [as_request(work) for work in JoinedBatches(iter(data))]


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        (pb.TickBatch(pair="ETH/USDT", seq=[1, 2], timestamp_ms=[1], price=[1, 1], volume=[1, 1]),
         "batch 2: the tick columns must have the same length; found seq 2, timestamp_ms 1"),
        (batch(1, 10_001), "batch 2 holds 10001 ticks; the limit is 10000"),
        (pb.TickBatch(pair="ETH/USDT", seq=[5, 0], timestamp_ms=[1, 2], price=[1, 1],
                      volume=[1, 1]), "batch 2, tick 1: seq must be at least 1"),
        (batch(1, 1, pair=""), "batch 2: pair must be 1 to 25 characters"),
        (batch(1, 1, pair="X" * 26), "batch 2: pair must be 1 to 25 characters"),
    ],
)  # fmt: skip
def test_a_bad_batch_ends_the_stream_after_the_good_ones_before_it(
    bad: pb.TickBatch, words: str
) -> None:
    with pytest.raises(InvalidBatch) as refused:
        check_tick_batch(bad, 2)
    assert str(refused.value).startswith(words)
    joined = JoinedBatches(b.SerializeToString() for b in [batch(100, 3), bad, batch(200, 3)])
    request, count = as_request(next(joined))
    assert count == 3 and list(batches_of(request)[0].seq) == [100, 101, 102]
    with pytest.raises(InvalidBatch, match="batch 2"):
        next(joined)


def test_bytes_that_are_no_tick_batch_end_the_stream_with_a_message() -> None:
    joined = JoinedBatches(iter([batch(1, 2).SerializeToString(), b"\x0a\xff"]))
    assert next(joined).ticks == 2
    with pytest.raises(InvalidBatch, match="batch 2 is not a valid TickBatch"):
        next(joined)


def test_a_stream_that_breaks_hands_over_what_came_before() -> None:
    def broken() -> Iterator[bytes]:
        yield batch(1, 4).SerializeToString()
        raise ConnectionResetError("client went away")

    joined = JoinedBatches(broken())
    assert next(joined).ticks == 4
    with pytest.raises(ConnectionResetError, match="client went away"):
        next(joined)


def test_a_stream_holding_the_agent_sees_a_change_waiting_for_it() -> None:
    from host.agent import Agent

    agent = Agent(storage=None, make_supervisor=lambda stored, on_open: None)  # type: ignore[arg-type]
    holding, waited = threading.Event(), threading.Event()

    def other_change() -> None:
        holding.wait(timeout=60)
        with agent._turn():
            waited.set()

    other = threading.Thread(target=other_change)
    other.start()
    with agent._turn():
        assert not agent._others_waiting()
        holding.set()
        while not agent._others_waiting():  # the other change queues up behind this one
            assert other.is_alive()
        assert not waited.is_set()
    other.join(timeout=60)
    assert waited.is_set() and not agent._others_waiting()
