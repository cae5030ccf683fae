"""A receipt's decision and input texts against its signed hashes (no chain needed): an
edited decision, replaced inputs and a withheld text each fail, naming seq and field."""

from __future__ import annotations

import hashlib
import json

import pytest

from attestation.receipt import ZERO_HASH, Receipt, receipt_hash
from attestation.receipt_texts import ReceiptTexts, check_receipt_texts, text_mismatches
from enclave.receipts import make_receipt
from enclave.signer import AccountSigner

CHAIN_ID = 31337
AGENT = AccountSigner.from_bytes(hashlib.sha256(b"tee-agent receipt texts key").digest())
HOLD = json.dumps(
    {"action": "hold", "amount": "0", "max_slippage_bps": 50, "pair": "ETH/USD",
     "rationale": "flat"}, sort_keys=True, separators=(",", ":"),
)  # fmt: skip
VIEW = '{"pair":"ETH/USD","price":3000.5,"timestamp":1760000000}'
REFUSED_TICK = '{"pair":"ETH/USD","price":-1.0,"seq":7}'


def chain(*texts: ReceiptTexts) -> list[Receipt]:
    """Receipts committing to `texts` as the enclave's `_receipt` makes them: the decision
    hash zeros when there is no decision text."""
    made: list[Receipt] = []
    for seq, text in enumerate(texts, start=1):
        decision = text.decision_json.encode()
        made.append(
            make_receipt(
                AGENT, chain_id=CHAIN_ID, seq=seq,
                prev_hash=receipt_hash(made[-1], CHAIN_ID) if made else ZERO_HASH,
                input_digest=hashlib.sha256(text.input_json.encode()).digest(),
                model_hash=ZERO_HASH, config_hash=ZERO_HASH,
                decision_hash=hashlib.sha256(decision).digest() if decision else ZERO_HASH,
                verdict="hold" if decision else "refused:price_out_of_range",
                tx_hash=ZERO_HASH, timestamp=1_760_000_000 + seq,
            )
        )  # fmt: skip
    return made


HONEST = [
    ReceiptTexts(decision_json=HOLD, input_json=VIEW),
    ReceiptTexts(decision_json="", input_json=REFUSED_TICK),
    ReceiptTexts(decision_json=HOLD, input_json=VIEW.replace("3000.5", "3001")),
]
RECEIPTS = chain(*HONEST)


def test_honest_texts_pass() -> None:
    passed, detail = check_receipt_texts(RECEIPTS, HONEST)
    assert passed and "all 3 receipts" in detail


def test_a_decision_edited_from_hold_to_buy_fails_naming_seq_and_field() -> None:
    buy = HOLD.replace('"hold"', '"buy"').replace('"amount":"0"', '"amount":"5"')
    edited = [HONEST[0], HONEST[1], HONEST[2].model_copy(update={"decision_json": buy})]
    passed, detail = check_receipt_texts(RECEIPTS, edited)
    assert not passed and "seq 3 decision_json edited" in detail
    assert "input_json" not in detail and "seq 1" not in detail


def test_replaced_inputs_fail_naming_seq_and_field() -> None:
    other = VIEW.replace("3000.5", "2500")
    replaced = [HONEST[0].model_copy(update={"input_json": other}), *HONEST[1:]]
    passed, detail = check_receipt_texts(RECEIPTS, replaced)
    assert not passed and "seq 1 input_json edited" in detail and "decision_json" not in detail


@pytest.mark.parametrize(
    ("index", "update", "expected"),
    [
        (0, {"decision_json": ""}, "decision_json withheld"),
        (0, {"input_json": ""}, "input_json withheld"),
        # A decision where the receipt signed none (a refusal) is made up.
        (1, {"decision_json": HOLD}, "decision_json edited"),
    ],
)
def test_a_withheld_or_invented_text_fails(
    index: int, update: dict[str, str], expected: str
) -> None:
    texts = list(HONEST)
    texts[index] = texts[index].model_copy(update=update)
    assert text_mismatches(RECEIPTS[index], texts[index]) == [expected]
    passed, detail = check_receipt_texts(RECEIPTS, texts)
    assert not passed and f"seq {index + 1} {expected}" in detail


def test_only_the_first_mismatches_are_named() -> None:
    receipts = chain(*[HONEST[0]] * 8)
    texts = [ReceiptTexts(decision_json=HOLD, input_json="{}")] * 8
    passed, detail = check_receipt_texts(receipts, texts)
    assert not passed and "seq 5 input_json" in detail and "seq 6" not in detail
    assert detail.endswith("and 3 more")


def test_texts_must_be_one_per_receipt() -> None:
    with pytest.raises(ValueError, match="2 receipt texts for 3 receipts"):
        check_receipt_texts(RECEIPTS, HONEST[:2])
