"""Judging the transactions the enclave signed again: a trade's transaction that stays
unmined is replaced by the enclave (same nonce, same call, higher fees; `enclave.in_flight`),
and each replacement has its own receipt, verdict "replaced:<seq of the decision's receipt>",
whose tx_hash is the replacement's hash and whose input text names the original transaction
("original_tx") and the one it replaces ("replaced_tx").

A transaction on chain from the agent that carries out a decision whose receipt was replaced
must be the original or one of the replacements the receipts name: any other version of that
nonce was signed off the record. Each replacement receipt must name an earlier "signed"
receipt. (A decision whose every replacement receipt was withheld looks unreplaced here; the
receipt chain and the head hash find the gap.)
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from typing import Final

from attestation.receipt import Receipt
from attestation.receipt_texts import ReceiptTexts, input_digest_of
from host.chain.vault_audit import NO_TX, SIGNED, Finding
from host.chain.vault_record import SentTransaction, VaultRecord

# The verdict prefix of a replacement's receipt (enclave.in_flight.REPLACED).
REPLACED: Final = "replaced:"
_SHOWN: Final = 5


def replaced_seq(verdict: str) -> int | None:
    """The seq a replacement receipt's verdict names, or None for any other verdict."""
    if not verdict.startswith(REPLACED):
        return None
    number = verdict[len(REPLACED) :]
    return int(number) if number.isascii() and number.isdigit() else -1


def is_replacement(receipt: Receipt) -> bool:
    return replaced_seq(receipt.verdict) is not None


def replacements_have_receipts(
    receipts: Sequence[Receipt],
    texts: Sequence[ReceiptTexts] | None,
    sent: Sequence[SentTransaction],
    record: VaultRecord | None,
) -> Finding:
    """Every replacement receipt names an earlier "signed" receipt and a transaction hash,
    and every transaction the agent sent for a replaced decision is its original (as the
    replacement receipts' checked input texts name it) or a replacement a receipt names."""
    by_seq = {receipt.seq: receipt for receipt in receipts}
    replaced: dict[int, list[Receipt]] = defaultdict(list)
    problems: list[str] = []
    for receipt in receipts:
        seq = replaced_seq(receipt.verdict)
        if seq is None:
            continue
        original = by_seq.get(seq)
        if original is None or original.seq >= receipt.seq or original.verdict != SIGNED:
            what = "no receipt" if original is None else f"seq {seq} ({original.verdict!r})"
            problems.append(
                f"receipt seq {receipt.seq} replaces seq {seq}, but that is {what}: a "
                "replacement names an earlier receipt with the verdict 'signed'"
            )
        if receipt.tx_hash == NO_TX:
            problems.append(f"replacement receipt seq {receipt.seq} names no transaction")
        replaced[seq].append(receipt)
    named = {r.tx_hash: seq for seq, found in replaced.items() for r in found}
    originals = _originals(receipts, texts, replaced)
    signed = {r.tx_hash: r.seq for r in receipts if r.verdict == SIGNED and r.tx_hash != NO_TX}
    checked = 0
    for tx in sent:
        seq = _carried_seq(tx, record, signed)
        if tx.tx_hash in named:
            checked += 1
            if seq is not None and seq != named[tx.tx_hash]:
                problems.append(
                    f"0x{tx.tx_hash.hex()} is named as a replacement for seq "
                    f"{named[tx.tx_hash]} but carries out seq {seq}"
                )
            continue
        if seq is None or seq not in replaced:
            continue
        checked += 1
        original_tx = originals.get(seq)
        if original_tx is not None and original_tx != tx.tx_hash:
            problems.append(
                f"0x{tx.tx_hash.hex()} carries out seq {seq}, which was replaced (receipt(s) "
                f"{', '.join(str(r.seq) for r in replaced[seq])}), yet it is neither the "
                f"original 0x{original_tx.hex()} nor a replacement any receipt names"
            )
    if problems:
        shown = "; ".join(problems[:_SHOWN])
        more = f" and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else ""
        return Finding(False, shown + more)
    count = sum(len(found) for found in replaced.values())
    return Finding(
        True,
        f"{count} replacement receipt(s) for {len(replaced)} decision(s); each of the "
        f"{checked} transaction(s) on chain for those is the original or a named replacement",
    )


def _carried_seq(
    tx: SentTransaction, record: VaultRecord | None, signed: dict[bytes, int]
) -> int | None:
    """The seq of the decision `tx` carries out: the receipt seq its vault call carries, or
    that of the "signed" receipt naming its hash (`signed`); None when neither."""
    if record is not None:
        swap = record.swaps.get(tx.tx_hash)
        if swap is not None:
            return swap.receipt_seq
    return signed.get(tx.tx_hash)


def _originals(
    receipts: Sequence[Receipt],
    texts: Sequence[ReceiptTexts] | None,
    replaced: dict[int, list[Receipt]],
) -> dict[int, bytes]:
    """The original transaction of each replaced seq, from the first replacement receipt's
    input text that hashes to what it signed (none without texts)."""
    if texts is None or len(texts) != len(receipts):
        return {}
    text_of = {receipt.seq: text for receipt, text in zip(receipts, texts, strict=True)}
    originals: dict[int, bytes] = {}
    for seq, found in replaced.items():
        for receipt in sorted(found, key=lambda r: r.seq):
            text = text_of[receipt.seq].input_json
            if input_digest_of(text) != receipt.input_digest:
                continue
            try:
                value = json.loads(text).get("original_tx", "")
                originals[seq] = bytes.fromhex(value.removeprefix("0x"))
            except (ValueError, AttributeError):
                continue
            break
    return originals
