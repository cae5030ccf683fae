"""The chaos run's audit: pure checks over what the run recorded and what the agent stored.

`audit_chaos` takes the agent's stored receipts and transactions, the agent's transactions
found on chain, the feeder's ledger of ticks, the agent's own tick counters, the result of
`tee-agent verify agent` and the processes left behind, and returns every invariant it
checked (how many items each one covered) and every violation, named by its invariant.
Nothing here touches a process, a node or a file, so doctored records test each check.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from attestation.errors import ReceiptFormatError
from attestation.receipt_chain import verify_receipts
from wire.records import ReceiptRecord, TransactionRecord
from wire.ticks import DUPLICATE_SEQ

ZERO_HASH = bytes(32)
# The verdict of a receipt under which a stuck transaction was replaced at its nonce:
# "replaced:<seq>", <seq> naming the receipt of the transaction it replaces.
REPLACED = "replaced:"
# What the feeder records for an attempt that got no answer (the host or enclave died).
NO_ANSWER = "no_answer"
ACCEPTED = "accepted"
# The verdict of the one receipt summarising the ticks an Ingest refused (but duplicates):
# "ticks_refused:<count>", its input the counts by reason and the first and last seq
# (`enclave.refusals`).
TICKS_REFUSED = "ticks_refused:"


class Invariant(StrEnum):
    """What the audit checks; a violation carries the name of the one it breaks."""

    # No nonce carries two signed transactions of different content, but a replacement
    # named by a `replaced:<seq>` receipt.
    NONCE_SIGNED_ONCE = "nonce_signed_once"
    # Every transaction of the agent's address on chain is one the enclave signed (stored).
    CHAIN_TX_SIGNED_BY_ENCLAVE = "chain_tx_signed_by_enclave"
    # Every transaction stored as mined is on chain at its nonce.
    MINED_TX_ON_CHAIN = "mined_tx_on_chain"
    # Every stored transaction hangs on a stored receipt that signed it.
    TRANSACTION_HAS_RECEIPT = "transaction_has_receipt"
    # At the end, no transaction is still waiting ("signed" or "pending").
    TRANSACTION_SETTLED = "transaction_settled"
    # Receipt seqs run 1..n: none missing, none twice; the stored head is the last.
    RECEIPT_LOST = "receipt_lost"
    RECEIPT_DUPLICATED = "receipt_duplicated"
    # Each receipt's prev_hash is the previous receipt's hash (zero for seq 1).
    RECEIPT_CHAIN_LINKED = "receipt_chain_linked"
    # The chain verifies as a verifier checks it: signatures, sequence, links, config hash.
    RECEIPT_CHAIN_VERIFIES = "receipt_chain_verifies"
    # `tee-agent verify agent` passes.
    VERIFY_AGENT = "verify_agent"
    # No process of the run is left once it stopped.
    NO_ORPHAN_PROCESS = "no_orphan_process"
    # Every tick sent got an answer in the end (accepted, or refused with a reason).
    TICK_ANSWERED = "tick_answered"
    # The enclave counted each accepted tick exactly once.
    TICK_COUNTED_ONCE = "tick_counted_once"
    # Every tick refused (but as a duplicate) is counted in a refusal receipt.
    TICK_REFUSAL_HAS_RECEIPT = "tick_refusal_has_receipt"


@dataclass(frozen=True)
class Violation:
    invariant: Invariant
    detail: str

    def __str__(self) -> str:
        return f"{self.invariant}: {self.detail}"


@dataclass(frozen=True)
class ChainTransaction:
    """A transaction of the agent's address found on chain."""

    nonce: int
    tx_hash: bytes
    block: int


@dataclass(frozen=True)
class VerifyOutcome:
    """What `verify agent` said: whether it passed, and its failed checks."""

    valid: bool
    failed: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChaosRecords:
    """Everything the audit judges.

    `ticks` maps each seq the feeder sent to the answers of its attempts, in order: ACCEPTED,
    a refusal reason, or NO_ANSWER. `ticks_accepted` is the enclave's own count.
    """

    address: str
    chain_id: int
    config_hash: bytes
    receipts: Sequence[ReceiptRecord]
    head: tuple[int, bytes]
    transactions: Sequence[TransactionRecord]
    on_chain: Sequence[ChainTransaction]
    ticks: Mapping[int, Sequence[str]]
    ticks_accepted: int
    verify: VerifyOutcome | None
    orphans: Sequence[str] = ()


@dataclass
class AuditResult:
    """Each invariant checked with how many items it covered, and the violations found."""

    checked: dict[Invariant, int] = field(default_factory=dict)
    violations: list[Violation] = field(default_factory=list)

    @property
    def invariants_checked(self) -> int:
        return sum(self.checked.values())

    def check(self, invariant: Invariant, items: int, problems: Iterable[str]) -> None:
        self.checked[invariant] = self.checked.get(invariant, 0) + items
        self.violations.extend(Violation(invariant, p) for p in problems)


def audit_chaos(records: ChaosRecords) -> AuditResult:
    """Check every invariant of `Invariant` over `records`; never raises for what they say."""
    result = AuditResult()
    by_seq = {r.receipt.seq: r for r in records.receipts}
    _check_nonces(result, records, by_seq)
    _check_receipts(result, records)
    _check_ticks(result, records)
    if records.verify is not None:
        result.check(
            Invariant.VERIFY_AGENT,
            1,
            [] if records.verify.valid else [f"failed: {'; '.join(records.verify.failed)}"],
        )
    result.check(
        Invariant.NO_ORPHAN_PROCESS,
        1,
        [f"left running: {orphan}" for orphan in records.orphans],
    )
    return result


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def _check_nonces(
    result: AuditResult, records: ChaosRecords, by_seq: Mapping[int, ReceiptRecord]
) -> None:
    at_nonce: dict[int, list[TransactionRecord]] = defaultdict(list)
    for tx in records.transactions:
        at_nonce[tx.nonce].append(tx)
    problems = []
    for nonce, txs in sorted(at_nonce.items()):
        txs = sorted(txs, key=lambda tx: tx.receipt_seq)
        contents = {tx.raw_transaction for tx in txs}
        if len(contents) == 1:
            continue
        for index, tx in enumerate(txs[1:], start=1):
            earlier = {t.receipt_seq for t in txs[:index]}
            receipt = by_seq.get(tx.receipt_seq)
            verdict = "" if receipt is None else receipt.receipt.verdict
            named = verdict.removeprefix(REPLACED) if verdict.startswith(REPLACED) else ""
            if not (named.isdecimal() and int(named) in earlier):
                problems.append(
                    f"nonce {nonce} signed again with different content: {_hex(tx.tx_hash)} "
                    f"(receipt {tx.receipt_seq}, verdict {verdict or 'none'!r}) after "
                    f"{', '.join(_hex(t.tx_hash) for t in txs[:index])}, and no "
                    f"{REPLACED}<seq> receipt names one of receipts {sorted(earlier)}"
                )
    result.check(Invariant.NONCE_SIGNED_ONCE, len(at_nonce), problems)

    stored = {tx.tx_hash: tx for tx in records.transactions}
    foreign = [
        f"nonce {tx.nonce}: {_hex(tx.tx_hash)} in block {tx.block} is no transaction the "
        "enclave released"
        for tx in records.on_chain
        if tx.tx_hash not in stored
    ]
    result.check(Invariant.CHAIN_TX_SIGNED_BY_ENCLAVE, len(records.on_chain), foreign)

    on_chain = {tx.tx_hash for tx in records.on_chain}
    mined = [tx for tx in records.transactions if tx.status == "mined"]
    lost = [
        f"nonce {tx.nonce}: {_hex(tx.tx_hash)} (receipt {tx.receipt_seq}) is stored as mined "
        f"({tx.detail or 'no detail'}) but the chain has no such transaction"
        for tx in mined
        if tx.tx_hash not in on_chain
    ]
    result.check(Invariant.MINED_TX_ON_CHAIN, len(mined), lost)

    orphaned = []
    for tx in records.transactions:
        receipt = by_seq.get(tx.receipt_seq)
        verdict = "" if receipt is None else receipt.receipt.verdict
        if verdict != "signed" and not verdict.startswith(REPLACED):
            orphaned.append(
                f"{_hex(tx.tx_hash)} (nonce {tx.nonce}) names receipt {tx.receipt_seq}, "
                + ("which is not stored" if receipt is None else f"whose verdict is {verdict!r}")
            )
    result.check(Invariant.TRANSACTION_HAS_RECEIPT, len(records.transactions), orphaned)

    waiting = [
        f"{_hex(tx.tx_hash)} (nonce {tx.nonce}) is still {tx.status}: {tx.detail or 'no detail'}"
        for tx in records.transactions
        if tx.status in ("signed", "pending")
    ]
    result.check(Invariant.TRANSACTION_SETTLED, len(records.transactions), waiting)


def _check_receipts(result: AuditResult, records: ChaosRecords) -> None:
    receipts = records.receipts
    counts = Counter(r.receipt.seq for r in receipts)
    top = max([*counts, records.head[0]], default=0)
    missing = [seq for seq in range(1, top + 1) if seq not in counts]
    result.check(
        Invariant.RECEIPT_LOST,
        top,
        [_ranges("receipt seq", missing) + f" missing of 1..{top}"] if missing else [],
    )
    if receipts and records.head[0] != receipts[-1].receipt.seq:
        result.violations.append(
            Violation(
                Invariant.RECEIPT_LOST,
                f"the stored head is seq {records.head[0]}, the last receipt "
                f"{receipts[-1].receipt.seq}",
            )
        )
    twice = sorted(seq for seq, n in counts.items() if n > 1)
    result.check(
        Invariant.RECEIPT_DUPLICATED,
        len(receipts),
        [f"receipt seq {seq} stored {counts[seq]} times" for seq in twice],
    )

    broken = []
    previous: ReceiptRecord | None = None
    for record in sorted(receipts, key=lambda r: r.receipt.seq):
        receipt = record.receipt
        if receipt.seq == 1:
            expected = ZERO_HASH
        elif previous is not None and previous.receipt.seq == receipt.seq - 1:
            expected = previous.receipt_hash
        else:
            expected = None  # its predecessor is missing: reported as lost
        if expected is not None and receipt.prev_hash != expected:
            broken.append(
                f"seq {receipt.seq}: prev_hash {_hex(receipt.prev_hash)}, the previous "
                f"receipt's hash is {_hex(expected)}"
            )
        previous = record
    if receipts and receipts[-1].receipt_hash != records.head[1]:
        broken.append(
            f"the stored head hash {_hex(records.head[1])} is not the last receipt's "
            f"{_hex(receipts[-1].receipt_hash)}"
        )
    result.check(Invariant.RECEIPT_CHAIN_LINKED, len(receipts), broken)

    try:
        report = verify_receipts(
            [r.receipt for r in receipts],
            address=records.address,
            chain_id=records.chain_id,
            config_hash=records.config_hash,
            expected_head_hash=records.head[1] if receipts else None,
        )
        problems = [] if report.valid else [report.error or "the receipt chain does not verify"]
    except ReceiptFormatError as exc:
        problems = [str(exc)]
    result.check(Invariant.RECEIPT_CHAIN_VERIFIES, len(receipts), problems)


def _check_ticks(result: AuditResult, records: ChaosRecords) -> None:
    unanswered, accepted, refused = [], [], {}
    for seq, answers in sorted(records.ticks.items()):
        answered = [a for a in answers if a != NO_ANSWER]
        if not answered:
            unanswered.append(seq)
            continue
        # A duplicate after an attempt without an answer: that attempt was taken.
        taken = ACCEPTED in answered or (answered[0] == DUPLICATE_SEQ and answers[0] == NO_ANSWER)
        if taken:
            accepted.append(seq)
        else:
            refused[seq] = answered[-1]
    result.check(
        Invariant.TICK_ANSWERED,
        len(records.ticks),
        [_ranges("tick seq", unanswered) + " never answered"] if unanswered else [],
    )
    result.check(
        Invariant.TICK_COUNTED_ONCE,
        len(records.ticks),
        []
        if records.ticks_accepted == len(accepted)
        else [
            f"the enclave counts {records.ticks_accepted} ticks accepted, the feeder's answers "
            f"{len(accepted)}"
        ],
    )
    summaries = [
        summary
        for record in records.receipts
        if record.receipt.verdict.startswith(TICKS_REFUSED)
        and (summary := _refusal_summary(record.input_json)) is not None
    ]
    lacking = [
        f"tick seq {seq} refused ({reason}) without a {TICKS_REFUSED}<count> receipt counting it"
        for seq, reason in refused.items()
        if reason != DUPLICATE_SEQ
        and not any(
            first <= seq <= last and reason in reasons for first, last, reasons in summaries
        )
    ]
    result.check(Invariant.TICK_REFUSAL_HAS_RECEIPT, len(refused), lacking)


def _refusal_summary(input_json: str) -> tuple[int, int, set[str]] | None:
    """(first seq, last seq, reasons) of a refusal receipt's input, if it reads as one."""
    try:
        value = json.loads(input_json)
    except ValueError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("by_reason"), dict):
        return None
    first, last = value.get("first_seq"), value.get("last_seq")
    if not isinstance(first, int) or not isinstance(last, int):
        return None
    return first, last, set(value["by_reason"])


def _ranges(what: str, seqs: Sequence[int]) -> str:
    """`seqs` (sorted) as "what 3, 7-9", at most ten runs named."""
    runs: list[list[int]] = []
    for seq in seqs:
        if runs and runs[-1][1] == seq - 1:
            runs[-1][1] = seq
        else:
            runs.append([seq, seq])
    names = [f"{a}" if a == b else f"{a}-{b}" for a, b in runs[:10]]
    more = f" and {len(runs) - 10} more runs" if len(runs) > 10 else ""
    return f"{what} {', '.join(names)}{more}"
