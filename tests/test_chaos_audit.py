"""The chaos audit over doctored records: each kind of damage is a violation named by the
invariant it breaks, and clean records have none."""

from __future__ import annotations

import dataclasses
import hashlib
import json

from attestation.receipt import ZERO_HASH, receipt_hash
from devnet.chaos_audit import (
    ACCEPTED,
    NO_ANSWER,
    ChainTransaction,
    ChaosRecords,
    Invariant,
    VerifyOutcome,
    audit_chaos,
)
from enclave.receipts import make_receipt
from enclave.signer import AccountSigner
from wire.records import ReceiptRecord, TransactionRecord
from wire.ticks import DUPLICATE_SEQ

CHAIN_ID = 31337
AGENT = AccountSigner.from_bytes(hashlib.sha256(b"chaos audit test agent").digest())
CONFIG_HASH = hashlib.sha256(b"enclave.toml").digest()
# Receipt verdicts of the clean run: ticks 1..8 decide (seq 3 and 6 sign a trade), tick 9
# is refused with a receipt, then the owner pauses.
VERDICTS = ["hold", "hold", "signed", "hold", "hold", "signed", "hold", "hold",
            "ticks_refused:1", "owner:pause"]  # fmt: skip


def sign(seq: int, prev: bytes, verdict: str) -> ReceiptRecord:
    refused_tick = verdict.startswith("ticks_refused:")
    summary = {"by_reason": {"price_jump": 1}, "first_seq": seq, "last_seq": seq}
    input_json = json.dumps(summary) if refused_tick else f"view {seq}"
    decision_json = "" if refused_tick or verdict.startswith("owner:") else f"decision {seq}"
    receipt = make_receipt(
        AGENT, chain_id=CHAIN_ID, seq=seq, prev_hash=prev,
        input_digest=hashlib.sha256(input_json.encode()).digest(), model_hash=ZERO_HASH,
        config_hash=CONFIG_HASH,
        decision_hash=hashlib.sha256(decision_json.encode()).digest() if decision_json
        else ZERO_HASH,
        verdict=verdict, tx_hash=ZERO_HASH, timestamp=1_700_000_000 + 3600 * seq,
    )  # fmt: skip
    return ReceiptRecord(
        receipt=receipt,
        receipt_hash=receipt_hash(receipt, CHAIN_ID),
        decision_json=decision_json,
        input_json=input_json,
    )


def chain_of(verdicts: list[str]) -> list[ReceiptRecord]:
    records, prev = [], ZERO_HASH
    for seq, verdict in enumerate(verdicts, start=1):
        record = sign(seq, prev, verdict)
        records.append(record)
        prev = record.receipt_hash
    return records


def tx(nonce: int, receipt_seq: int, content: bytes = b"swap") -> TransactionRecord:
    raw = content + bytes([nonce, receipt_seq])
    return TransactionRecord(
        tx_hash=hashlib.sha256(raw).digest(), nonce=nonce, raw_transaction=raw,
        receipt_seq=receipt_seq, status="mined", detail="block 7",
    )  # fmt: skip


def clean() -> ChaosRecords:
    receipts = chain_of(VERDICTS)
    transactions = [tx(0, 3), tx(1, 6)]
    # Tick 4 lost its first answer (the host was killed) and was taken then: duplicate.
    ticks = {seq: [ACCEPTED] for seq in range(1, 9)}
    ticks[4] = [NO_ANSWER, DUPLICATE_SEQ]
    ticks[9] = [NO_ANSWER, "price_jump"]
    return ChaosRecords(
        address=AGENT.address,
        chain_id=CHAIN_ID,
        config_hash=CONFIG_HASH,
        receipts=receipts,
        head=(receipts[-1].receipt.seq, receipts[-1].receipt_hash),
        transactions=transactions,
        on_chain=[ChainTransaction(t.nonce, t.tx_hash, 7 + t.nonce) for t in transactions],
        ticks=ticks,
        ticks_accepted=8,
        verify=VerifyOutcome(True),
        orphans=[],
    )


def violated(records: ChaosRecords) -> set[Invariant]:
    return {violation.invariant for violation in audit_chaos(records).violations}


def test_clean_records_have_no_violation_and_every_invariant_is_checked() -> None:
    result = audit_chaos(clean())
    assert result.violations == []
    assert set(result.checked) == set(Invariant)
    # 2 nonces, 2 chain txs, 2 mined, 2x2 stored txs, 10 receipts x 4, 9 ticks x 2, 1
    # refusal, verify agent, orphans.
    assert result.invariants_checked == 2 + 2 + 2 + 4 + 40 + 18 + 1 + 1 + 1


def test_a_nonce_signed_twice_with_different_content_is_a_violation() -> None:
    records = clean()
    # Nonce 1 again, under receipt 3, which the chain never took.
    again = tx(1, 3, content=b"another swap").model_copy(update={"status": "dropped"})
    records = dataclasses.replace(records, transactions=[*records.transactions, again])
    (violation,) = audit_chaos(records).violations
    assert violation.invariant == Invariant.NONCE_SIGNED_ONCE
    assert "nonce 1 signed again" in violation.detail


def test_a_replacement_named_by_its_receipt_is_accepted() -> None:
    receipts = chain_of([*VERDICTS, "replaced:6"])
    replacement = tx(1, 11, content=b"swap, higher fee")
    stuck = tx(1, 6).model_copy(update={"status": "dropped"})
    records = dataclasses.replace(
        clean(),
        receipts=receipts,
        head=(11, receipts[-1].receipt_hash),
        transactions=[tx(0, 3), stuck, replacement],
        on_chain=[ChainTransaction(0, tx(0, 3).tx_hash, 7),
                  ChainTransaction(1, replacement.tx_hash, 9)],
    )  # fmt: skip
    assert violated(records) == set()
    # The same replacement naming a receipt of another nonce is not one.
    receipts = chain_of([*VERDICTS, "replaced:3"])
    records = dataclasses.replace(records, receipts=receipts, head=(11, receipts[-1].receipt_hash))
    assert violated(records) == {Invariant.NONCE_SIGNED_ONCE}


def test_a_removed_receipt_is_a_lost_receipt() -> None:
    records = clean()
    receipts = [r for r in records.receipts if r.receipt.seq != 5]
    damaged = violated(dataclasses.replace(records, receipts=receipts))
    assert Invariant.RECEIPT_LOST in damaged
    assert Invariant.RECEIPT_DUPLICATED not in damaged
    details = [
        v.detail for v in audit_chaos(dataclasses.replace(records, receipts=receipts)).violations
    ]
    assert "receipt seq 5 missing of 1..10" in details


def test_a_receipt_removed_at_the_end_is_lost_against_the_stored_head() -> None:
    records = clean()
    damaged = violated(dataclasses.replace(records, receipts=records.receipts[:-1]))
    assert Invariant.RECEIPT_LOST in damaged


def test_a_duplicated_receipt_is_a_violation() -> None:
    records = clean()
    receipts = [*records.receipts[:4], records.receipts[3], *records.receipts[4:]]
    damaged = violated(dataclasses.replace(records, receipts=receipts))
    assert Invariant.RECEIPT_DUPLICATED in damaged
    assert Invariant.RECEIPT_LOST not in damaged


def test_a_broken_prev_hash_breaks_the_chain() -> None:
    records = clean()
    receipts = list(records.receipts)
    forged = sign(6, hashlib.sha256(b"not the previous receipt").digest(), "signed")
    receipts[5] = forged
    damaged = violated(dataclasses.replace(records, receipts=receipts))
    assert Invariant.RECEIPT_CHAIN_LINKED in damaged
    assert Invariant.RECEIPT_CHAIN_VERIFIES in damaged


def test_a_tick_never_answered_is_a_violation() -> None:
    records = clean()
    ticks = {**records.ticks, 10: [NO_ANSWER, NO_ANSWER]}
    assert violated(dataclasses.replace(records, ticks=ticks)) == {Invariant.TICK_ANSWERED}


def test_a_tick_missing_from_the_enclave_count_is_a_violation() -> None:
    records = clean()
    assert violated(dataclasses.replace(records, ticks_accepted=7)) == {Invariant.TICK_COUNTED_ONCE}
    # A duplicate on a tick's first attempt: it was never taken by this run.
    ticks = {**records.ticks, 4: [DUPLICATE_SEQ]}
    assert violated(dataclasses.replace(records, ticks=ticks)) == {Invariant.TICK_COUNTED_ONCE}


def test_a_refused_tick_without_its_receipt_is_a_violation() -> None:
    records = clean()
    ticks = {**records.ticks, 10: ["stale_tick"]}  # no receipt counts tick 10
    assert violated(dataclasses.replace(records, ticks=ticks)) == {
        Invariant.TICK_REFUSAL_HAS_RECEIPT
    }


def test_a_mined_transaction_the_chain_forgot_and_a_foreign_one_are_violations() -> None:
    records = clean()
    foreign = ChainTransaction(2, hashlib.sha256(b"signed elsewhere").digest(), 9)
    damaged = violated(dataclasses.replace(records, on_chain=[records.on_chain[0], foreign]))
    assert damaged == {Invariant.MINED_TX_ON_CHAIN, Invariant.CHAIN_TX_SIGNED_BY_ENCLAVE}


def test_a_waiting_transaction_and_one_without_a_signed_receipt_are_violations() -> None:
    records = clean()
    waiting = records.transactions[0].model_copy(update={"status": "pending"})
    assert violated(
        dataclasses.replace(records, transactions=[waiting, records.transactions[1]])
    ) == {Invariant.TRANSACTION_SETTLED}
    on_hold = tx(1, 5)  # receipt 5 is a hold
    damaged = violated(
        dataclasses.replace(
            records,
            transactions=[records.transactions[0], on_hold],
            on_chain=[ChainTransaction(0, records.transactions[0].tx_hash, 7),
                      ChainTransaction(1, on_hold.tx_hash, 8)],
        )
    )  # fmt: skip
    assert damaged == {Invariant.TRANSACTION_HAS_RECEIPT}


def test_a_failed_verify_agent_and_an_orphan_are_violations() -> None:
    records = dataclasses.replace(
        clean(),
        verify=VerifyOutcome(False, ("receipts_on_chain: not on chain: seq 3",)),
        orphans=["pid 4242: python -m enclave serve --socket /tmp/run/sock"],
    )
    result = audit_chaos(records)
    assert {v.invariant for v in result.violations} == {
        Invariant.VERIFY_AGENT,
        Invariant.NO_ORPHAN_PROCESS,
    }
    assert any("receipts_on_chain" in str(v) for v in result.violations)
