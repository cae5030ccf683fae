"""A receipt's texts against its hashes: the decision and the inputs it says it commits to.

The enclave signs `decision_hash` = SHA-256 of the decision's UTF-8 JSON (32 zero bytes when
the receipt records no decision: a refusal, an owner command) and `input_digest` = SHA-256 of
the inputs' UTF-8 JSON. The host stores and serves those texts beside each receipt; nothing
it shows may be trusted until it hashes to what the receipt signed. A text the host leaves
out (empty) while the hash says there is one is withheld, and fails the same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from attestation.receipt import ZERO_HASH, Receipt


class ReceiptTexts(BaseModel):
    """The texts served beside one receipt."""

    model_config = ConfigDict(frozen=True, strict=True)

    decision_json: str
    input_json: str


def decision_hash_of(decision_json: str) -> bytes:
    """The `decision_hash` a receipt with this decision text carries (zeros for none)."""
    return hashlib.sha256(decision_json.encode()).digest() if decision_json else ZERO_HASH


def input_digest_of(input_json: str) -> bytes:
    """The `input_digest` a receipt with this input text carries."""
    return hashlib.sha256(input_json.encode()).digest()


def text_mismatches(receipt: Receipt, texts: ReceiptTexts) -> list[str]:
    """Each text of `texts` that does not hash to what `receipt` signed, as
    "decision_json edited" or "input_json withheld" (empty where the hash says there is one).
    """
    found = []
    if decision_hash_of(texts.decision_json) != receipt.decision_hash:
        found.append(f"decision_json {'edited' if texts.decision_json else 'withheld'}")
    if input_digest_of(texts.input_json) != receipt.input_digest:
        found.append(f"input_json {'edited' if texts.input_json else 'withheld'}")
    return found


def check_receipt_texts(
    receipts: Sequence[Receipt], texts: Sequence[ReceiptTexts], *, shown: int = 5
) -> tuple[bool, str]:
    """Whether every receipt's texts hash to its signed hashes, and a detail naming the first
    `shown` receipts that do not (by seq and field).

    Raises:
        ValueError: `texts` is not one per receipt.
    """
    if len(texts) != len(receipts):
        raise ValueError(f"{len(texts)} receipt texts for {len(receipts)} receipts")
    wrong = [
        f"seq {receipt.seq} {problem}"
        for receipt, text in zip(receipts, texts, strict=True)
        for problem in text_mismatches(receipt, text)
    ]
    if not wrong:
        return True, (
            f"the decision and input texts of all {len(receipts)} receipts hash to their "
            "signed decision_hash and input_digest"
        )
    more = f" and {len(wrong) - shown} more" if len(wrong) > shown else ""
    return False, (
        "texts that do not hash to the receipt's signed decision_hash or input_digest: "
        + ", ".join(wrong[:shown])
        + more
    )
