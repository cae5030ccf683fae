"""Signed transactions in flight: the chain's view of the account moves the enclave's nonce
only up, and a transaction unmined for `replace_after_blocks` blocks is signed again at a
higher fee (within the cap) under a receipt that names the decision it carries out."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest
import rlp  # type: ignore[import-untyped]
from eth_account import Account
from tee_agent_rpc import enclave_pb2 as pb

from attestation.receipt_chain import verify_receipts
from enclave.config import load_config
from enclave.core import EnclaveCore, Released
from enclave.guardrails import GWEI
from enclave.in_flight import MAX_IN_FLIGHT, AccountView, bumped, track
from enclave.server import PlatformChoice, make_platform, make_policy
from enclave.signer import Eip1559Transaction
from enclave.state import EnclaveState
from enclave.vault_trades import FeeHint
from tests.enclave_harness import CHAIN_ID, EnclaveWorld, serialized, ticks, twaps
from wire.ticks import Tick, TickColumns

# Rising prices: the 2/4 moving averages cross up once (one buy).
RISE = [100.0, 100.0, 100.0, 100.0, 104.0]
LOW_FEES = FeeHint(max_fee_per_gas=10 * GWEI, max_priority_fee_per_gas=1 * GWEI)
BALANCES = {"WETH": 5 * 10**18, "USDT": 10_000 * 10**6}


def columns(prices: list[float], first_seq: int = 1) -> list[TickColumns]:
    batch = ticks(prices, first_seq)
    return TickColumns.runs(
        [
            Tick(seq, stamp, batch.pair, price, volume)
            for seq, stamp, price, volume in zip(
                batch.seq, batch.timestamp_ms, batch.price, batch.volume, strict=True
            )
        ]
    )


class Agent:
    """A real EnclaveCore (simulated platform) and everything it released so far."""

    def __init__(self, world: EnclaveWorld, sealed: bytes = b"") -> None:
        config = load_config(world.config_path)
        policy = make_policy(config)
        platform = make_platform(PlatformChoice("sim", world.sim_dir), config, policy)
        self.core = EnclaveCore(platform, config, policy)
        self.sealed = self.core.open(sealed)[0].sealed_state
        self.released = Released([], [])

    def ingest(
        self,
        prices: list[float] | None = None,
        first_seq: int = 1,
        account: AccountView | None = None,
        fees: FeeHint | None = LOW_FEES,
    ) -> Released:
        sealed, _ = self.core.ingest(
            columns(prices, first_seq) if prices else [],
            fees,
            dict(BALANCES),
            twap_prices={"ETH/USDT": 100.0},
            account=account,
        )
        self.sealed = sealed.sealed_state
        out = self.core.release(sealed.state_version)
        self.released.receipts.extend(out.receipts)
        self.released.transactions.extend(out.transactions)
        return out

    @property
    def state(self) -> EnclaveState:
        state = self.core._state  # the test looks inside the enclave it runs
        assert state is not None
        return state


def view(block: int, mined: int = 0, pending: int | None = None) -> AccountView:
    return AccountView(block, mined, mined if pending is None else pending)


def fields(raw: bytes) -> list[int | bytes]:
    """An EIP-1559 transaction's fields: chain id, nonce, priority fee, max fee, gas, to,
    value, data (integers decoded)."""
    decoded = rlp.decode(raw[1:])[:8]
    return [
        item if index in (5, 7) else int.from_bytes(item, "big")
        for index, item in enumerate(decoded)
    ]


@pytest.fixture
def world(tmp_path: Path) -> EnclaveWorld:
    return EnclaveWorld(tmp_path)


def test_a_transaction_unmined_for_n_blocks_is_replaced_with_the_same_call_and_higher_fees(
    world: EnclaveWorld,
) -> None:
    agent = Agent(world)
    first = agent.ingest(RISE, account=view(100))
    assert [t.nonce for t in first.transactions] == [0]
    original = first.transactions[0]
    signed_seq = original.receipt_seq
    # Two blocks later: not yet (replace_after_blocks is 3 by default).
    assert agent.ingest(account=view(102)).transactions == []
    again = agent.ingest(account=view(103))
    assert len(again.transactions) == 1 and len(again.receipts) == 1
    replacement, receipt = again.transactions[0], again.receipts[0]
    assert receipt.receipt.verdict == f"replaced:{signed_seq}"
    assert receipt.receipt.tx_hash == replacement.tx_hash != original.tx_hash
    assert replacement.receipt_seq == receipt.receipt.seq > signed_seq
    old, new = fields(original.raw_transaction), fields(replacement.raw_transaction)
    # Same chain, nonce, gas, target, value and call (the call still carries the original
    # receipt's seq and digest); both fees at least 12.5 % up, the max fee within the cap.
    assert [new[i] for i in (0, 1, 4, 5, 6, 7)] == [old[i] for i in (0, 1, 4, 5, 6, 7)]
    assert new[2] >= old[2] * 1.125 and new[3] >= old[3] * 1.125
    assert new[3] <= 100 * GWEI
    assert Account.recover_transaction(replacement.raw_transaction) == (
        agent.core.identity().address
    )
    facts = json.loads(receipt.input_json)
    assert facts["original_tx"] == "0x" + original.tx_hash.hex()
    assert facts["replaced_tx"] == "0x" + original.tx_hash.hex()
    assert facts["replaces_receipt_seq"] == signed_seq
    # The next replacement waits another 3 blocks from this one, and names the original seq.
    assert agent.ingest(account=view(105)).transactions == []
    third = agent.ingest(account=view(106))
    assert third.receipts[0].receipt.verdict == f"replaced:{signed_seq}"
    assert json.loads(third.receipts[0].input_json)["replaced_tx"] == (
        "0x" + replacement.tx_hash.hex()
    )
    newest = fields(third.transactions[0].raw_transaction)
    assert newest[2] >= bumped(new[2]) and newest[3] >= bumped(new[3])
    # The receipt chain, replacements and all, verifies.
    chain = verify_receipts(
        [r.receipt for r in agent.released.receipts],
        address=agent.core.identity().address,
        chain_id=CHAIN_ID,
        config_hash=agent.core.config_hash,
    )
    assert chain.valid, chain.checks


def test_a_mined_nonce_is_never_signed_again_and_a_low_report_changes_nothing(
    world: EnclaveWorld,
) -> None:
    agent = Agent(world)
    agent.ingest(RISE, account=view(10))
    assert agent.state.tx_nonce == 1 and [t.nonce for t in agent.state.in_flight] == [0]
    # The host lies low (mined 0 after a transaction was signed): nothing moves down.
    agent.ingest(account=view(11, mined=0))
    assert agent.state.tx_nonce == 1
    # The chain used nonces 0..6 (another signer of the same key, or a lying host): the
    # in-flight transaction is finished and never replaced, and the next nonce is 7.
    agent.ingest(account=view(12, mined=7))
    assert agent.state.tx_nonce == 7 and agent.state.in_flight == []
    assert agent.ingest(account=view(50, mined=7)).transactions == []
    # Then a low report again: still 7; the next trade signs nonce 7.
    agent.ingest(account=view(51, mined=2))
    assert agent.state.tx_nonce == 7
    trade = agent.ingest([92.0, 88.0, 100.0, 112.0, 120.0], first_seq=7, account=view(52, 2))
    assert trade.transactions and all(t.nonce >= 7 for t in trade.transactions)


def test_a_mined_transaction_is_forgotten_and_not_replaced(world: EnclaveWorld) -> None:
    agent = Agent(world)
    agent.ingest(RISE, account=view(10))
    agent.ingest(account=view(11, mined=1))
    assert agent.state.in_flight == []
    assert agent.ingest(account=view(100, mined=1)).transactions == []


def test_the_block_number_never_goes_back(world: EnclaveWorld) -> None:
    agent = Agent(world)
    agent.ingest(RISE, account=view(100))
    agent.ingest(account=view(1))
    assert agent.state.chain_block == 100
    assert agent.ingest(account=view(102)).transactions == []
    assert agent.state.chain_block == 102
    assert len(agent.ingest(account=view(103)).transactions) == 1


def test_without_a_view_nothing_changes_and_the_first_view_starts_the_wait(
    world: EnclaveWorld,
) -> None:
    agent = Agent(world)
    agent.ingest(RISE)  # no view: signed at an unknown block
    assert agent.state.in_flight[0].signed_block is None
    assert agent.ingest(account=view(500)).transactions == []  # the wait starts here
    assert agent.ingest().transactions == []
    assert len(agent.ingest(account=view(503)).transactions) == 1


def test_a_bump_past_the_fee_cap_is_reported_once_and_not_signed(world: EnclaveWorld) -> None:
    world.write_config(max_fee_per_gas_gwei=10)  # the hint offers exactly the cap
    agent = Agent(world)
    agent.ingest(RISE, account=view(1))
    seq = agent.released.transactions[0].receipt_seq
    stuck = agent.ingest(account=view(4))
    assert stuck.transactions == []
    assert [r.receipt.verdict for r in stuck.receipts] == [f"stuck_at_fee_cap:{seq}"]
    assert stuck.receipts[0].receipt.tx_hash == bytes(32)
    facts = json.loads(stuck.receipts[0].input_json)
    assert facts["fee_cap"] == 10 * GWEI and facts["needed_max_fee_per_gas"] == bumped(10 * GWEI)
    for block in (5, 8, 20):
        assert agent.ingest(account=view(block)).receipts == []


def test_a_hint_above_the_cap_counts_as_the_cap(world: EnclaveWorld) -> None:
    world.write_config(max_fee_per_gas_gwei=12)
    agent = Agent(world)
    agent.ingest(RISE, account=view(1))  # signed at 10 gwei
    high = FeeHint(max_fee_per_gas=500 * GWEI, max_priority_fee_per_gas=400 * GWEI)
    new = fields(agent.ingest(account=view(4), fees=high).transactions[0].raw_transaction)
    assert new[3] == 12 * GWEI and new[2] == 12 * GWEI


def test_the_hint_raises_a_replacement_above_the_bump(world: EnclaveWorld) -> None:
    agent = Agent(world)
    agent.ingest(RISE, account=view(1))
    hint = FeeHint(max_fee_per_gas=40 * GWEI, max_priority_fee_per_gas=3 * GWEI)
    new = fields(agent.ingest(account=view(4), fees=hint).transactions[0].raw_transaction)
    assert (new[2], new[3]) == (3 * GWEI, 40 * GWEI)


def test_nothing_is_replaced_while_the_owner_has_paused_the_agent(world: EnclaveWorld) -> None:
    agent = Agent(world)
    agent.ingest(RISE, account=view(1))
    agent.state.paused = True
    assert agent.ingest(account=view(10)).transactions == []
    agent.state.paused = False
    assert len(agent.ingest(account=view(11)).transactions) == 1


def test_in_flight_transactions_survive_sealing_and_a_state_without_them_still_opens(
    world: EnclaveWorld,
) -> None:
    agent = Agent(world)
    agent.ingest(RISE, account=view(7))
    before = agent.state.in_flight
    again = Agent(world, agent.sealed)
    assert again.state.in_flight == before and again.state.chain_block == 7
    # (The outputs sealed before their release come out again: the host keeps them once.)
    out = again.ingest(account=view(10))
    assert [r.receipt.verdict for r in out.receipts][-1].startswith("replaced:")
    assert [t.nonce for t in out.transactions] == [0, 0]
    # A state sealed before in-flight transactions existed has neither key.
    old = json.loads(agent.state.to_bytes())
    del old["in_flight"], old["chain_block"]
    restored = EnclaveState.from_bytes(json.dumps(old).encode())
    assert restored.in_flight == [] and restored.chain_block == 0


def test_the_account_view_crosses_the_wire_and_a_restart(world: EnclaveWorld) -> None:
    world.write_config(replace_after_blocks=1)
    with world.enclave() as enclave:
        enclave.stub.Open(pb.OpenRequest())
        account = pb.AccountView(block_number=40, mined_nonce=0, pending_nonce=1)
        fees = pb.FeeHint(max_fee_per_gas_wei=10 * GWEI, max_priority_fee_per_gas_wei=GWEI)
        first = enclave.stub.Ingest(
            pb.IngestRequest(
                tick_batches=serialized(ticks(RISE)),
                fees=fees,
                twap_prices=twaps(),
                balances={"WETH": str(5 * 10**18), "USDT": str(10_000 * 10**6)},
                account=account,
            )
        )
        original = enclave.stub.Release(pb.ReleaseRequest(state_version=first.state_version))
        with pytest.raises(grpc.RpcError) as refused:
            enclave.stub.Ingest(
                pb.IngestRequest(account=pb.AccountView(block_number=41, mined_nonce=2**63))
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "account.mined_nonce" in (refused.value.details() or "")
    with world.enclave() as enclave:
        enclave.stub.Open(pb.OpenRequest(sealed_state=first.sealed_state))
        answer = enclave.stub.Ingest(
            pb.IngestRequest(fees=fees, account=pb.AccountView(block_number=41))
        )
        released = enclave.stub.Release(pb.ReleaseRequest(state_version=answer.state_version))
        status = enclave.stub.GetStatus(pb.GetStatusRequest())
    # The original again (sealed before its release: the host keeps it once), then its
    # replacement, made by the restarted enclave from the sealed in-flight transaction.
    assert [t.nonce for t in released.transactions] == [0, 0]
    assert released.transactions[0].tx_hash == original.transactions[0].tx_hash
    assert released.receipts[-1].verdict == (f"replaced:{original.transactions[0].receipt_seq}")
    assert released.receipts[-1].tx_hash == released.transactions[1].tx_hash
    assert status.next_nonce == 1


def _signed(nonce: int) -> Eip1559Transaction:
    return Eip1559Transaction(
        chain_id=CHAIN_ID, nonce=nonce, max_priority_fee_per_gas=GWEI, max_fee_per_gas=GWEI,
        gas=21_000, to=bytes(20), value=0,
    )  # fmt: skip


def test_past_the_cap_the_highest_nonces_are_kept_and_a_state_loads_in_nonce_order() -> None:
    state = EnclaveState.fresh()
    for nonce in range(MAX_IN_FLIGHT + 5):
        track(state, _signed(nonce), nonce.to_bytes(32, "big"), receipt_seq=nonce + 1)
    assert [t.nonce for t in state.in_flight] == list(range(5, MAX_IN_FLIGHT + 5))
    # A nonce below the last one (never signed so: each nonce is above every earlier one)
    # still leaves the highest nonces, in order.
    track(state, _signed(3), bytes(32), receipt_seq=9_999)
    assert [t.nonce for t in state.in_flight] == list(range(5, MAX_IN_FLIGHT + 5))
    track(state, _signed(2_000), bytes(32), receipt_seq=10_000)
    assert [t.nonce for t in state.in_flight] == [*range(6, MAX_IN_FLIGHT + 5), 2_000]
    # A state holding them out of order (none the enclave seals does) loads in nonce order,
    # the order it keeps them in; equal nonces keep their order.
    data = json.loads(state.to_bytes())
    data["in_flight"] = [*data["in_flight"][:3][::-1], dict(data["in_flight"][0], tx_hash="ab")]
    loaded = EnclaveState.from_bytes(json.dumps(data).encode())
    assert [(t.nonce, t.tx_hash[:2]) for t in loaded.in_flight] == [
        (6, "00"), (6, "ab"), (7, "00"), (8, "00"),
    ]  # fmt: skip
