"""The broadcaster with several versions of one nonce, and with a chain that forgets blocks,
against a real anvil: a replacement is sent as any signed transaction, the version mined
wins and the others become "replaced"; a mined transaction the chain no longer has (anvil
reverted under it) goes back to "pending", is sent again and mined again."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hexbytes import HexBytes
from web3 import Web3
from web3.types import RPCEndpoint

from tests.needs_anvil import skip_without_anvil

skip_without_anvil()

from attestation.receipt import ZERO_HASH, receipt_hash  # noqa: E402
from enclave.receipts import make_receipt  # noqa: E402
from enclave.signer import Eip1559Transaction, SignedTransaction  # noqa: E402
from host.chain.broadcaster import Broadcaster  # noqa: E402
from host.chain.fees import account_view  # noqa: E402
from host.enclave_client import IngestInput, ingest_request  # noqa: E402
from host.metrics import HostMetrics  # noqa: E402
from host.storage.sqlite import SqliteStorage  # noqa: E402
from tests import test_broadcaster  # noqa: E402
from tests.test_broadcaster import AGENT, CHAIN_ID, GWEI, Anvil, recipient  # noqa: E402
from wire.records import ReceiptRecord, TransactionRecord  # noqa: E402

# The broadcaster tests' fixtures: a node, web3 on it, and a store.
anvil, w3, storage = test_broadcaster.anvil, test_broadcaster.w3, test_broadcaster.storage


class Ledger:
    """Stores signed transactions as the host does (the receipt first, chained), each with
    the verdict it is given: "signed", or "replaced:<seq>" for a replacement."""

    def __init__(self, storage: SqliteStorage) -> None:
        self.storage = storage
        self.head = ZERO_HASH
        self.seq = 0

    def add(self, signed: SignedTransaction, nonce: int, verdict: str = "signed") -> int:
        self.seq += 1
        input_json = json.dumps({"tick": self.seq})
        receipt = make_receipt(
            AGENT,
            chain_id=CHAIN_ID,
            seq=self.seq,
            prev_hash=self.head,
            input_digest=hashlib.sha256(input_json.encode()).digest(),
            model_hash=ZERO_HASH,
            config_hash=hashlib.sha256(b"config").digest(),
            decision_hash=ZERO_HASH,
            verdict=verdict,
            tx_hash=signed.hash,
            timestamp=1_700_000_000 + self.seq,
        )
        record = ReceiptRecord(
            receipt=receipt,
            receipt_hash=receipt_hash(receipt, CHAIN_ID),
            decision_json="",
            input_json=input_json,
        )
        self.storage.append_receipts([record])
        self.head = record.receipt_hash
        self.storage.add_transactions(
            [
                TransactionRecord(
                    tx_hash=signed.hash,
                    nonce=nonce,
                    raw_transaction=signed.raw_transaction,
                    receipt_seq=self.seq,
                )
            ]
        )
        return self.seq


def transfer(nonce: int, max_fee_gwei: int, priority_gwei: int) -> SignedTransaction:
    return AGENT.sign_transaction(
        Eip1559Transaction(
            chain_id=CHAIN_ID,
            nonce=nonce,
            max_priority_fee_per_gas=priority_gwei * GWEI,
            max_fee_per_gas=max_fee_gwei * GWEI,
            gas=21_000,
            to=recipient(9),
            value=10**15,
        )
    )


def rpc(w3: Web3, method: str, params: list[Any]) -> Any:
    answer = w3.provider.make_request(RPCEndpoint(method), params)
    assert "error" not in answer, answer
    return answer["result"]


def by_hash(storage: SqliteStorage) -> dict[bytes, TransactionRecord]:
    return {record.tx_hash: record for record in storage.transactions()}


@pytest.fixture
def manual(w3: Web3) -> Web3:
    """anvil without automine: blocks come only from evm_mine."""
    rpc(w3, "evm_setAutomine", [False])
    return w3


def test_a_replacement_is_sent_mined_and_the_original_becomes_replaced(
    anvil: Anvil, manual: Web3, storage: SqliteStorage
) -> None:
    ledger, metrics = Ledger(storage), HostMetrics()
    original = transfer(0, 2, 1)
    seq = ledger.add(original, 0)
    with Broadcaster(anvil.url, storage, metrics) as broadcaster:
        assert broadcaster.submit_pending() == 1
        assert rpc(manual, "eth_getTransactionByHash", ["0x" + original.hash.hex()]) is not None
        # The enclave signs nonce 0 again, 12.5 % up (what a mempool needs to replace it).
        replacement = transfer(0, 3, 2)
        ledger.add(replacement, 0, verdict=f"replaced:{seq}")
        # Only the newest version is sent: the node swaps it in for the original.
        assert broadcaster.submit_pending() == 1
        assert rpc(manual, "eth_getTransactionByHash", ["0x" + original.hash.hex()]) is None
        rpc(manual, "evm_mine", [])
        finals = broadcaster.wait_mined([original.hash, replacement.hash], timeout=30)
    assert finals == {original.hash: "replaced", replacement.hash: "mined"}
    stored = by_hash(storage)
    assert stored[original.hash].detail == f"replaced: nonce 0 went to 0x{replacement.hash.hex()}"
    receipt = manual.eth.get_transaction_receipt(HexBytes(replacement.hash))
    assert receipt["status"] == 1
    assert manual.eth.get_transaction_count(Web3.to_checksum_address(AGENT.address)) == 1
    assert (
        metrics.registry.get_sample_value("tee_agent_transactions_total", {"status": "replaced"})
        == 1
    )


def test_a_replacement_that_arrives_after_its_original_was_mined_is_replaced_not_dropped(
    anvil: Anvil, w3: Web3, storage: SqliteStorage
) -> None:
    ledger = Ledger(storage)
    original = transfer(0, 20, 1)
    seq = ledger.add(original, 0)
    with Broadcaster(anvil.url, storage) as broadcaster:  # drop_after_seconds: 600
        assert broadcaster.wait_mined([original.hash], timeout=30) == {original.hash: "mined"}
        late = transfer(0, 23, 2)
        ledger.add(late, 0, verdict=f"replaced:{seq}")
        broadcaster.poll_once()  # "nonce too low": the node refuses it
        broadcaster.poll_once()
    stored = by_hash(storage)
    assert stored[original.hash].status == "mined"
    assert (stored[late.hash].status, stored[late.hash].detail) == (
        "replaced",
        f"replaced: nonce 0 went to 0x{original.hash.hex()}",
    )


def test_a_mined_transaction_the_chain_forgot_is_sent_again_and_mined_again(
    anvil: Anvil, w3: Web3, storage: SqliteStorage
) -> None:
    ledger = Ledger(storage)
    snapshot = rpc(w3, "evm_snapshot", [])
    first, second = transfer(0, 20, 1), transfer(1, 20, 1)
    ledger.add(first, 0)
    ledger.add(second, 1)
    with Broadcaster(anvil.url, storage) as broadcaster:
        hashes = [first.hash, second.hash]
        assert broadcaster.wait_mined(hashes, timeout=30) == dict.fromkeys(hashes, "mined")
        mined_in = {h: by_hash(storage)[h].detail for h in hashes}
        # The node goes back to before both (as anvil restarted from an older state file).
        assert rpc(w3, "evm_revert", [snapshot]) is True
        assert w3.eth.get_transaction_count(Web3.to_checksum_address(AGENT.address)) == 0
        assert broadcaster.recover_forgotten() == 2
        stored = by_hash(storage)
        for tx_hash in hashes:
            assert stored[tx_hash].status == "pending"
            assert stored[tx_hash].detail.startswith("the chain forgot it (was mined: block ")
            assert mined_in[tx_hash] in stored[tx_hash].detail
        assert broadcaster.wait_mined(hashes, timeout=30) == dict.fromkeys(hashes, "mined")
        assert broadcaster.recover_forgotten() == 0
    for tx_hash in hashes:
        assert w3.eth.get_transaction_receipt(HexBytes(tx_hash))["status"] == 1
    assert w3.eth.get_transaction_count(Web3.to_checksum_address(AGENT.address)) == 2


def test_the_account_view_is_read_from_the_node_and_carried_by_the_request(
    anvil: Anvil, manual: Web3
) -> None:
    for nonce in range(2):
        rpc(manual, "eth_sendRawTransaction", ["0x" + transfer(nonce, 20, 1).raw_transaction.hex()])
    waiting = account_view(manual, AGENT.address)
    assert (waiting.mined_nonce, waiting.pending_nonce) == (0, 2)
    rpc(manual, "evm_mine", [])
    mined = account_view(manual, AGENT.address)
    assert (mined.block_number, mined.mined_nonce, mined.pending_nonce) == (
        waiting.block_number + 1,
        2,
        2,
    )
    request = ingest_request(IngestInput(tick_batches=(), ticks=0, account=mined), 0)
    assert request.HasField("account")
    assert (request.account.block_number, request.account.mined_nonce) == (
        mined.block_number,
        2,
    )
    assert not ingest_request(IngestInput(tick_batches=(), ticks=0), 0).HasField("account")
