"""The agent trades only through the GuardedVault: what the enclave signs for a trade is the
vault's swap, carrying the sequence number and EIP-712 digest of the decision's receipt; it
signs nothing without a TWAP from the host, nor on a tick price that strays from it; and a
host reporting bad TWAPs gets INVALID_ARGUMENT over real gRPC."""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import pytest
import rlp  # type: ignore[import-untyped]
from eth_abi import decode
from eth_account import Account
from eth_utils import keccak, to_checksum_address
from tee_agent_rpc import enclave_pb2 as pb

import enclave.decisions
from attestation.receipt import Receipt, receipt_hash
from enclave.config import EnclaveConfig, parse_config
from enclave.decisions import DecisionEngine
from enclave.guardrails import GuardrailContext, GuardrailVerdict, ProposedTransaction
from enclave.policy import Decision, RulePolicy
from enclave.signer import AccountSigner
from enclave.state import EnclaveState
from enclave.transactions import SWAP_DEADLINE_SECONDS
from enclave.vault_trades import plan_swap
from tests.enclave_harness import (
    CHAIN_ID,
    HOUR_MS,
    ROUTER,
    START_MS,
    USDT,
    VAULT,
    WETH,
    EnclaveWorld,
    balances,
    config_toml,
    serialized,
    ticks,
    twaps,
)
from tests.test_enclave_process import RISE_AND_FALL
from wire.ticks import Tick, TickColumns

SIGNATURE = "swap(address,address,address,uint256,uint256,uint256,uint64,bytes32)"
ARGUMENTS = ["address", "address", "address", "uint256", "uint256", "uint256", "uint64", "bytes32"]
OWNER_HEX = "44" * 32
# The config's own TWAP bound (300 bps).
CONFIG = parse_config(config_toml(OWNER_HEX, max_twap_deviation_bps=300))
BALANCES = {"WETH": 5 * 10**18, "USDT": 10_000 * 10**6}
NOW_MS = START_MS + 1_000 * HOUR_MS


def hourly(prices: list[float]) -> list[Tick]:
    return [
        Tick(seq, START_MS + seq * HOUR_MS, "ETH/USDT", price, 1.0)
        for seq, price in enumerate(prices, start=1)
    ]


def run(
    prices: list[float], twap: float | str | None = "honest", config: EnclaveConfig = CONFIG
) -> tuple[EnclaveState, DecisionEngine]:
    """Hourly ticks at `prices` through a fresh engine, one request each; the host reports
    the tick's own price as the TWAP ("honest"), a fixed one, or none."""
    state = EnclaveState.fresh()
    signer = AccountSigner.from_bytes(state.account_secret)
    work = DecisionEngine(config, RulePolicy(config.policy.rule), signer, b"\x01" * 32)
    for tick in hourly(prices):
        if twap == "honest":
            work.report_twaps({"ETH/USDT": tick.price})
        elif isinstance(twap, float):
            work.report_twaps({"ETH/USDT": twap})
        work.ingest(state, TickColumns.runs([tick]), None, BALANCES, NOW_MS)
    return state, work


def receipts(state: EnclaveState) -> list[Receipt]:
    return [Receipt.from_json_dict(pending.receipt) for pending in state.pending_receipts]


def test_a_trade_is_the_vaults_swap_carrying_its_receipt() -> None:
    state, work = run(RISE_AND_FALL)
    chain = receipts(state)
    signed = [r for r in chain if r.verdict == "signed"]
    assert len(signed) == len(state.pending_transactions) >= 2  # a buy, then a sell
    by_seq = {r.seq: r for r in chain}
    prices = {tick.timestamp_ms // 1000: tick.price for tick in hourly(RISE_AND_FALL)}
    for nonce, pending in enumerate(state.pending_transactions):
        receipt = by_seq[pending.receipt_seq]
        assert receipt.verdict == "signed"
        assert receipt.tx_hash == bytes(32), "made first, the receipt cannot name the tx"
        raw = bytes.fromhex(pending.raw_transaction)
        assert Account.recover_transaction(raw) == work.signer.address
        # EIP-1559: chain_id, nonce, priority fee, max fee, gas, to, value, data, ...
        fields = rlp.decode(raw[1:])
        assert int.from_bytes(fields[0], "big") == CHAIN_ID
        assert int.from_bytes(fields[1], "big") == pending.nonce == nonce
        assert int.from_bytes(fields[4], "big") == 400_000
        assert to_checksum_address(fields[5]) == VAULT
        assert fields[6] == b""  # no value
        data = fields[7]
        assert data[:4] == keccak(text=SIGNATURE)[:4]
        decoded = decode(ARGUMENTS, data[4:])
        # What it was planned from: the decision the receipt commits to, at the tick's price.
        pending_receipt = state.pending_receipts[receipt.seq - 1]
        decision = Decision.model_validate_json(pending_receipt.decision_json)
        price = prices[receipt.timestamp]
        plan = plan_swap(CONFIG, CONFIG.pairs[0], decision, Decimal(repr(price)))
        token_in, token_out = (WETH, USDT) if decision.action == "sell" else (USDT, WETH)
        digest = receipt_hash(receipt, CHAIN_ID)
        assert (
            to_checksum_address(decoded[0]),
            to_checksum_address(decoded[1]),
            to_checksum_address(decoded[2]),
            *decoded[3:],
        ) == (
            ROUTER,
            token_in,
            token_out,
            plan.amount_in,
            plan.min_out,
            receipt.timestamp + SWAP_DEADLINE_SECONDS,
            receipt.seq,
            digest,
        )
        if decision.action == "sell":
            assert plan.amount_in == int(decision.amount * 10**18)
        # The digest is the one the next receipt links to.
        if receipt.seq < len(chain):
            assert by_seq[receipt.seq + 1].prev_hash == digest
        else:
            assert state.head_hash == digest
    assert {r.verdict for r in chain} <= {"signed", "hold"}


def test_the_guardrails_judge_the_signed_call_but_for_its_digest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    judged: list[ProposedTransaction] = []
    judge = enclave.decisions.judge

    def recorded(
        tx: ProposedTransaction, context: GuardrailContext, config: EnclaveConfig
    ) -> GuardrailVerdict:
        judged.append(tx)
        return judge(tx, context, config)

    monkeypatch.setattr(enclave.decisions, "judge", recorded)
    state, _ = run(RISE_AND_FALL)
    assert len(judged) == len(state.pending_transactions) >= 2  # every trade judged once
    for tx, pending in zip(judged, state.pending_transactions, strict=True):
        signed = rlp.decode(bytes.fromhex(pending.raw_transaction)[1:])[7]
        assert tx.to == VAULT and tx.value == 0
        assert tx.data[:-32] == signed[:-32], "the same call, to its receipt's seq"
        assert tx.data[-32:] == bytes(32) != signed[-32:]


def test_without_a_twap_nothing_is_signed() -> None:
    state, _ = run(RISE_AND_FALL, twap=None)
    verdicts = [r.verdict for r in receipts(state)]
    assert "refused:twap_unavailable" in verdicts
    assert set(verdicts) == {"hold", "refused:twap_unavailable"}
    assert state.pending_transactions == [] and state.tx_nonce == 0


def test_a_host_walking_the_price_away_from_the_twap_gets_nothing_signed() -> None:
    # Hourly candles falling 15 % an hour, each within the move limit of the hour before,
    # while the vault's TWAP stays at 2000: the enclave decides to sell, and refuses every
    # sale priced more than 300 bps from the TWAP.
    walk = [2000.0] * 4 + [2000.0 * 0.85**n for n in range(1, 30)]
    state, _ = run(walk, twap=2000.0)
    chain = receipts(state)
    assert not any(r.verdict.startswith("ticks_refused:") for r in chain)  # no tick refused
    refused = [r for r in chain if r.verdict == "refused:twap_deviation"]
    assert len(refused) >= 5
    assert state.pending_transactions == []
    # An honest host reporting the falling TWAP gets the sales signed.
    honest, _ = run(walk)
    assert honest.pending_transactions


# -- over gRPC ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("twap_prices", "words"),
    [
        ({"BTC/USDT": 30_000.0}, "twap_prices name pairs that are not configured: ['BTC/USDT']"),
        ({"ETH/USDT": 100.0, "eth/usdt": 100.0}, "not configured: ['eth/usdt']"),
        ({"ETH/USDT": math.nan}, "the TWAP of 'ETH/USDT' must be a finite number above 0"),
        ({"ETH/USDT": math.inf}, "found inf"),
        ({"ETH/USDT": -math.inf}, "found -inf"),
        ({"ETH/USDT": 0.0}, "found 0.0"),
        ({"ETH/USDT": -0.0}, "found -0.0"),
        ({"ETH/USDT": -100.0}, "found -100.0"),
        ({"ETH/USDT": math.nextafter(1e15, math.inf)}, "and at most 1e+15"),
    ],
)
def test_bad_twap_prices_get_invalid_argument_and_are_not_taken(
    tmp_path: Path, twap_prices: dict[str, float], words: str
) -> None:
    world = EnclaveWorld(tmp_path)
    with world.enclave() as enclave:
        stub: Any = enclave.stub
        stub.Open(pb.OpenRequest())
        with pytest.raises(grpc.RpcError) as refused:
            stub.Ingest(
                pb.IngestRequest(
                    tick_batches=serialized(ticks(RISE_AND_FALL)),
                    twap_prices=twap_prices,
                    balances=balances(weth=5),
                )
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert words in refused.value.details()
        status = stub.GetStatus(pb.GetStatusRequest())
        assert status.open and status.last_tick_seq == 0, "nothing of the request was taken"
        # Nor any TWAP of it: the same ticks without one decide, and sign nothing.
        response = stub.Ingest(
            pb.IngestRequest(
                tick_batches=serialized(ticks(RISE_AND_FALL)), balances=balances(weth=5)
            )
        )
        released = stub.Release(pb.ReleaseRequest(state_version=response.state_version))
    assert response.accepted == len(RISE_AND_FALL)
    verdicts = {r.verdict for r in released.receipts}
    assert verdicts == {"hold", "refused:twap_unavailable"}
    assert not released.transactions


def test_the_latest_twap_is_kept_until_the_next_report_and_forgotten_on_restart(
    tmp_path: Path,
) -> None:
    world = EnclaveWorld(tmp_path)
    with world.enclave() as enclave:
        stub: Any = enclave.stub
        stub.Open(pb.OpenRequest())
        first = stub.Ingest(
            pb.IngestRequest(
                tick_batches=serialized(ticks(RISE_AND_FALL[:7])),
                twap_prices=twaps(),
                balances=balances(weth=5),
            )
        )
        # No TWAP in this request: the last one reported (100) still holds.
        second = stub.Ingest(
            pb.IngestRequest(
                tick_batches=serialized(ticks(RISE_AND_FALL[7:], first_seq=8)),
                balances=balances(weth=5),
            )
        )
        released = stub.Release(pb.ReleaseRequest(state_version=second.state_version))
    assert first.pending_transactions >= 1
    later = [r for r in released.receipts if r.seq > first.pending_receipts]
    assert "signed" in {r.verdict for r in later}
    # A new process on the stored state knows no TWAP until the host reports one.
    with world.enclave() as enclave:
        stub = enclave.stub
        stub.Open(pb.OpenRequest(sealed_state=second.sealed_state))
        falling = ticks([86.0, 84.0], first_seq=len(RISE_AND_FALL) + 1)
        response = stub.Ingest(
            pb.IngestRequest(tick_batches=serialized(falling), balances=balances(weth=5))
        )
        released = stub.Release(pb.ReleaseRequest(state_version=response.state_version))
    # (The state stored after `second` still holds its outputs: they come again first.)
    new = [r.verdict for r in released.receipts if r.seq > second.pending_receipts]
    assert new == ["refused:twap_unavailable"] * 2
