"""Decision receipts: the EIP-712 digest against eth-account, the chain, and every way to break it."""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_hash.auto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from attestation.errors import ReceiptFormatError, SignatureError
from attestation.ethereum import SECP256K1_N, recover_signer
from attestation.receipt import (
    RECEIPT_TYPE,
    ZERO_HASH,
    Receipt,
    receipt_digest,
    receipt_hash,
    receipts_from_json,
    receipts_to_json,
)
from attestation.receipt_chain import ReceiptChainReport, verify_receipts
from enclave.receipts import make_receipt
from enclave.signer import AccountSigner

CHAIN_ID = 31337
AGENT = AccountSigner.from_bytes(hashlib.sha256(b"tee-agent test agent key").digest())
FOREIGN = AccountSigner.from_bytes(hashlib.sha256(b"someone else's key").digest())
MODEL_HASH = hashlib.sha256(b"SmolLM2-135M-Instruct.gguf").digest()
CONFIG_HASH = hashlib.sha256(b"guardrails.toml").digest()
SIGNED_FIELDS = [
    "seq", "prev_hash", "input_digest", "model_hash", "config_hash", "decision_hash",
    "verdict", "tx_hash", "timestamp",
]  # fmt: skip


def typed_data(fields: dict[str, Any], chain_id: int) -> dict[str, Any]:
    """The receipt as eth-account's `full_message`, written out independently of our code."""
    camel = {
        "seq": "seq", "prevHash": "prev_hash", "inputDigest": "input_digest",
        "modelHash": "model_hash", "configHash": "config_hash", "decisionHash": "decision_hash",
        "verdict": "verdict", "txHash": "tx_hash", "timestamp": "timestamp",
    }  # fmt: skip
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
            ],
            "Receipt": [
                {"name": "seq", "type": "uint64"},
                {"name": "prevHash", "type": "bytes32"},
                {"name": "inputDigest", "type": "bytes32"},
                {"name": "modelHash", "type": "bytes32"},
                {"name": "configHash", "type": "bytes32"},
                {"name": "decisionHash", "type": "bytes32"},
                {"name": "verdict", "type": "string"},
                {"name": "txHash", "type": "bytes32"},
                {"name": "timestamp", "type": "uint64"},
            ],
        },
        "primaryType": "Receipt",
        "domain": {"name": "tee-agent receipts", "version": "1", "chainId": chain_id},
        "message": {name: fields[snake] for name, snake in camel.items()},
    }


def eth_account_digest(fields: dict[str, Any], chain_id: int) -> bytes:
    signable = encode_typed_data(full_message=typed_data(fields, chain_id))
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


def build_chain(count: int = 20, signer: AccountSigner = AGENT) -> list[Receipt]:
    chain: list[Receipt] = []
    prev = ZERO_HASH
    for seq in range(1, count + 1):
        receipt = make_receipt(
            signer,
            chain_id=CHAIN_ID,
            seq=seq,
            prev_hash=prev,
            input_digest=hashlib.sha256(b"tick %d" % seq).digest(),
            model_hash=MODEL_HASH,
            config_hash=CONFIG_HASH,
            decision_hash=hashlib.sha256(b"decision %d" % seq).digest(),
            verdict="signed" if seq % 3 else "refused:max_notional_per_trade",
            tx_hash=hashlib.sha256(b"tx %d" % seq).digest() if seq % 3 else ZERO_HASH,
            timestamp=1_750_000_000 + 60 * seq,
        )
        chain.append(receipt)
        prev = receipt_hash(receipt, CHAIN_ID)
    return chain


def verify(chain: list[Receipt], **options: Any) -> ReceiptChainReport:
    return verify_receipts(chain, address=AGENT.address, chain_id=CHAIN_ID, **options)


def resign(receipt: Receipt, signer: AccountSigner, **changes: Any) -> Receipt:
    fields = {**receipt.model_dump(exclude={"signature"}), **changes}
    return make_receipt(signer, chain_id=CHAIN_ID, **fields)


def failed(report: ReceiptChainReport) -> tuple[str, str]:
    assert not report.valid and report.error is not None
    (check,) = [check for check in report.checks if not check.passed]
    return check.name, check.detail


# --- the digest ---------------------------------------------------------------------------

hashes32 = st.one_of(st.just(ZERO_HASH), st.binary(min_size=32, max_size=32))
uint64s = st.one_of(st.sampled_from([0, 1, 2**64 - 1]), st.integers(0, 2**64 - 1))


@settings(max_examples=200, deadline=None)
@given(
    fields=st.fixed_dictionaries(
        {
            "seq": uint64s,
            "prev_hash": hashes32,
            "input_digest": hashes32,
            "model_hash": hashes32,
            "config_hash": hashes32,
            "decision_hash": hashes32,
            "verdict": st.one_of(st.sampled_from(["signed", "hold", ""]), st.text(max_size=200)),
            "tx_hash": hashes32,
            "timestamp": uint64s,
        }
    ),
    chain_id=st.one_of(st.sampled_from([1, CHAIN_ID]), st.integers(1, 2**256 - 1)),
)
def test_digest_equals_eth_account_encode_typed_data(fields: dict[str, Any], chain_id: int) -> None:
    assert receipt_digest(**fields, chain_id=chain_id) == eth_account_digest(fields, chain_id)


def test_receipt_signature_recovers_with_our_code_and_eth_account() -> None:
    (receipt,) = build_chain(1)
    assert recover_signer(receipt_hash(receipt, CHAIN_ID), receipt.signature) == AGENT.address
    fields = receipt.model_dump(exclude={"signature"})
    signable = encode_typed_data(full_message=typed_data(fields, CHAIN_ID))
    assert Account.recover_message(signable, signature=receipt.signature) == AGENT.address
    # The enclave's EIP-712 path for orders signs the same digest to the same bytes.
    assert AGENT.sign_typed_data(typed_data(fields, CHAIN_ID)) == receipt.signature


def test_the_json_form_is_every_field_in_order_with_bytes_in_0x_hex() -> None:
    (receipt,) = build_chain(1)
    expected = {
        name: "0x" + value.hex() if isinstance(value, bytes) else value
        for name, value in receipt.model_dump().items()
    }
    as_json = receipt.to_json_dict()
    assert list(as_json.items()) == list(expected.items())
    assert Receipt.from_json_dict(as_json) == receipt


def test_type_string_is_the_published_one() -> None:
    assert RECEIPT_TYPE == (
        "Receipt(uint64 seq,bytes32 prevHash,bytes32 inputDigest,bytes32 modelHash,bytes32 "
        "configHash,bytes32 decisionHash,string verdict,bytes32 txHash,uint64 timestamp)"
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"prev_hash": bytes(31)},
        {"tx_hash": bytes(33)},
        {"seq": 2**64},
        {"timestamp": -1},
    ],
)
def test_digest_refuses_out_of_range_fields(changes: dict[str, Any]) -> None:
    fields = build_chain(1)[0].model_dump(exclude={"signature"})
    with pytest.raises(ReceiptFormatError):
        receipt_digest(**{**fields, **changes}, chain_id=CHAIN_ID)


@pytest.mark.parametrize("chain_id", [0, -1, 2**256, True, "1"])
def test_digest_refuses_bad_chain_ids(chain_id: Any) -> None:
    fields = build_chain(1)[0].model_dump(exclude={"signature"})
    with pytest.raises(ReceiptFormatError, match="chain ID"):
        receipt_digest(**fields, chain_id=chain_id)


# --- recover_signer -----------------------------------------------------------------------


def test_recover_signer_refuses_malleable_and_malformed_signatures() -> None:
    digest = keccak(b"a digest")
    signature = AGENT.sign_digest(digest)
    r, s, v = signature[:32], int.from_bytes(signature[32:64]), signature[64]
    high_s = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])
    # libsecp256k1 would recover the same key from the high-s twin; EIP-2 says refuse it.
    with pytest.raises(SignatureError, match="n/2"):
        recover_signer(digest, high_s)
    for bad, message in [
        (signature[:64] + b"\x1d", "v is 29"),
        (signature[:64] + b"\x00", "v is 0"),
        (bytes(32) + signature[32:], "out of range"),
        (signature[:64], "65-byte"),
    ]:
        with pytest.raises(SignatureError, match=message):
            recover_signer(digest, bad)
    with pytest.raises(SignatureError, match="32-byte digest"):
        recover_signer(digest[:31], signature)


# --- the chain ----------------------------------------------------------------------------


def test_a_chain_of_twenty_receipts_verifies() -> None:
    chain = build_chain(20)
    report = verify(chain, config_hash=CONFIG_HASH, model_hash=MODEL_HASH)
    assert report.valid and report.error is None
    assert (report.count, report.verified) == (20, 20)
    assert report.head_hash == "0x" + receipt_hash(chain[-1], CHAIN_ID).hex()
    assert [check.name for check in report.checks] == [
        "receipt_signature", "receipt_sequence", "receipt_chain",
        "receipt_config_hash", "receipt_model_hash",
    ]  # fmt: skip
    assert all(check.passed and "seq 1..20" in check.detail for check in report.checks)
    assert chain[0].prev_hash == ZERO_HASH and chain[0].seq == 1


def test_an_empty_list_is_valid() -> None:
    report = verify([])
    assert report.valid and report.count == 0 and report.head_hash == "0x" + "00" * 32
    assert all(check.passed for check in report.checks)


def test_lowercase_attested_address_is_accepted() -> None:
    report = verify_receipts(build_chain(3), address=AGENT.address.lower(), chain_id=CHAIN_ID)
    assert report.valid


def test_dropping_a_receipt_breaks_the_sequence() -> None:
    chain = build_chain(20)
    name, detail = failed(verify(chain[:7] + chain[8:]))
    assert name == "receipt_sequence"
    assert detail == "expected seq 8, found 9 (gap: seq 8 missing)"
    report = verify(chain[:7] + chain[8:])
    assert report.verified == 7 and report.head_hash == "0x" + receipt_hash(chain[6], 31337).hex()


def test_dropping_several_receipts_names_the_gap() -> None:
    chain = build_chain(20)
    assert failed(verify(chain[:3] + chain[9:]))[1] == (
        "expected seq 4, found 10 (gap: seq 4..9 missing)"
    )


def test_dropping_the_first_receipt_breaks_the_sequence() -> None:
    name, detail = failed(verify(build_chain(5)[1:]))
    assert name == "receipt_sequence" and detail.startswith("expected seq 1, found 2")


def test_dropping_a_receipt_and_renumbering_breaks_the_chain() -> None:
    chain = build_chain(10)
    # The agent's own key (a compromised enclave) re-signs seq 6.. as 5.. to hide a decision.
    forged = chain[:4] + [resign(r, AGENT, seq=r.seq - 1) for r in chain[5:]]
    name, detail = failed(verify(forged))
    assert name == "receipt_chain"
    assert detail.startswith("seq 5's prevHash 0x") and "does not match the hash of seq 4" in detail


@pytest.mark.parametrize("field", [*SIGNED_FIELDS, "signature"])
def test_editing_any_field_breaks_the_signature(field: str) -> None:
    chain = build_chain(20)
    original = chain[9]
    value = getattr(original, field)
    edited: Any
    if isinstance(value, bytes):  # flip a bit (of r, for the signature: v must stay 27/28)
        edited = bytes([value[0] ^ 1]) + value[1:]
    elif isinstance(value, int):
        edited = value + 1
    else:
        edited = "hold"
    chain[9] = original.model_copy(update={field: edited})
    name, detail = failed(verify(chain))
    assert name == "receipt_signature"
    assert detail.startswith(f"seq {chain[9].seq}")
    assert f"not the attested {AGENT.address}" in detail or "recover" in detail


def test_an_edit_re_signed_with_a_foreign_key_is_named() -> None:
    chain = build_chain(20)
    chain[4] = resign(chain[4], FOREIGN, verdict="hold")
    name, detail = failed(verify(chain))
    assert name == "receipt_signature"
    assert detail == f"seq 5 recovers to {FOREIGN.address}, not the attested {AGENT.address}"


def test_an_edit_re_signed_by_the_agent_breaks_the_next_link() -> None:
    chain = build_chain(20)
    chain[4] = resign(chain[4], AGENT, verdict="signed", tx_hash=keccak(b"another tx"))
    name, detail = failed(verify(chain))
    assert name == "receipt_chain"
    assert detail.startswith("seq 6's prevHash") and "edited or dropped" in detail


def test_swapping_two_receipts_breaks_the_sequence() -> None:
    chain = build_chain(20)
    chain[11], chain[12] = chain[12], chain[11]
    name, detail = failed(verify(chain))
    assert name == "receipt_sequence"
    assert detail.startswith("expected seq 12, found 13")


def test_replaying_a_receipt_breaks_the_sequence() -> None:
    chain = build_chain(6)
    name, detail = failed(verify([*chain[:4], chain[3], *chain[4:]]))
    assert name == "receipt_sequence"
    assert detail == "expected seq 5, found 4 (reordered, repeated or replayed receipt)"


def test_truncating_the_head_needs_the_expected_head() -> None:
    chain = build_chain(20)
    head = receipt_hash(chain[-1], CHAIN_ID)
    assert verify(chain, expected_head_hash=head).valid
    # Without the head the agent reports, a prefix of a chain is a valid chain.
    assert verify(chain[:17]).valid
    name, detail = failed(verify(chain[:17], expected_head_hash=head))
    assert name == "receipt_head"
    assert detail.startswith("the chain ends at seq 17") and "newer receipts are missing" in detail
    assert verify(chain, expected_head_hash=head).check("receipt_head") is not None
    # The head is compared only once the whole chain verified.
    assert verify(chain[:5] + chain[6:], expected_head_hash=head).check("receipt_head") is None
    assert failed(verify([], expected_head_hash=head))[1].startswith("the chain has no receipts")
    # The last receipt replaced by a re-signed edit: nothing follows it, only the head tells.
    chain[-1] = resign(chain[-1], AGENT, verdict="hold")
    assert failed(verify(chain, expected_head_hash=head))[0] == "receipt_head"


def test_a_suffix_verifies_from_a_known_starting_point() -> None:
    chain = build_chain(20)
    start = receipt_hash(chain[9], CHAIN_ID)
    assert verify(chain[10:], start_seq=11, start_prev_hash=start).valid
    name, detail = failed(verify(chain[10:], start_seq=11))
    assert name == "receipt_chain" and "does not match the starting hash" in detail


def test_another_chain_id_or_address_fails_the_signature() -> None:
    chain = build_chain(3)
    report = verify_receipts(chain, address=AGENT.address, chain_id=1)
    assert failed(report)[0] == "receipt_signature"
    report = verify_receipts(chain, address=FOREIGN.address, chain_id=CHAIN_ID)
    assert failed(report)[1] == (
        f"seq 1 recovers to {AGENT.address}, not the attested {FOREIGN.address}"
    )


@pytest.mark.parametrize(
    ("option", "check", "label"),
    [("config_hash", "receipt_config_hash", "configHash"),
     ("model_hash", "receipt_model_hash", "modelHash")],
)  # fmt: skip
def test_an_unexpected_config_or_model_hash_is_named(option: str, check: str, label: str) -> None:
    expected = keccak(b"the attested " + option.encode())
    name, detail = failed(verify(build_chain(4), **{option: expected}))
    assert name == check
    assert detail.startswith(f"seq 1 has {label} 0x") and expected.hex() in detail


@pytest.mark.parametrize(
    "options",
    [
        {"address": "0x1234"},
        {"address": AGENT.address.replace("0x", "0X")},
        {"address": AGENT.address[:-1] + ("a" if AGENT.address[-1] != "a" else "b")},
        {"address": "0x" + AGENT.address[2:].swapcase()},
        {"config_hash": bytes(31)},
        {"start_prev_hash": b""},
        {"chain_id": 0},
    ],
)
def test_bad_verification_inputs_raise_a_format_error(options: dict[str, Any]) -> None:
    arguments = {"address": AGENT.address, "chain_id": CHAIN_ID, **options}
    with pytest.raises(ReceiptFormatError):
        verify_receipts(build_chain(2), **arguments)


def test_verify_refuses_things_that_are_not_receipts() -> None:
    chain: list[Any] = [build_chain(1)[0].to_json_dict()]
    with pytest.raises(ReceiptFormatError, match="Receipt objects"):
        verify(chain)


# --- the format and its JSON ----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [b"[" * 100_000 + b"]" * 100_000, '{"a":' * 100_000 + "1" + "}" * 100_000],
)
def test_deeply_nested_receipts_file_is_a_format_error(text: str | bytes) -> None:
    # eth_account (imported here) raises the recursion limit to 100000, so json.loads on
    # this input would overflow the C stack: the depth must be refused before decoding.
    assert sys.getrecursionlimit() >= 100_000
    with pytest.raises(ReceiptFormatError, match="the receipts file is not JSON: JSON nested"):
        receipts_from_json(text)


def test_json_round_trip() -> None:
    chain = build_chain(5)
    for receipt in chain:
        encoded = receipt.to_json_dict()
        assert json.loads(json.dumps(encoded)) == encoded
        assert encoded["prev_hash"].startswith("0x") and len(encoded["signature"]) == 132
        assert Receipt.from_json_dict(encoded) == receipt
    text = receipts_to_json(chain)
    assert receipts_from_json(text) == chain == receipts_from_json(text.encode())
    assert verify(receipts_from_json(text)).valid


GOOD_JSON = build_chain(1)[0].to_json_dict()


def good_json() -> dict[str, Any]:
    return dict(GOOD_JSON)


def with_v(v: int) -> str:
    signature: str = GOOD_JSON["signature"]
    return signature[:-2] + f"{v:02x}"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"prev_hash": "0x" + "00" * 31}, "prev_hash"),
        ({"tx_hash": "0x" + "00" * 33}, "tx_hash"),
        ({"input_digest": "0x" + "zz" * 32}, "not 0x-prefixed hex"),
        ({"model_hash": "00" * 32}, "not 0x-prefixed hex"),
        ({"config_hash": "0x" + "0" * 63}, "not 0x-prefixed hex"),
        ({"decision_hash": "0x" + "00 " * 32}, "not 0x-prefixed hex"),
        ({"decision_hash": 7}, "not 0x-prefixed hex"),
        ({"signature": "0x" + "11" * 64}, "signature"),
        ({"signature": with_v(29)}, "v is 29"),
        ({"signature": with_v(0)}, "v is 0"),
        ({"seq": 0}, "seq"),
        ({"seq": "1"}, "seq"),
        ({"seq": True}, "seq"),
        ({"seq": 2**64}, "seq"),
        ({"timestamp": -5}, "timestamp"),
        ({"timestamp": 1.5}, "timestamp"),
        ({"verdict": ""}, "verdict"),
        ({"verdict": "x" * 129}, "verdict"),
        ({"verdict": "signé"}, "printable ASCII"),
        ({"verdict": "hold\nseq 2 ok"}, "printable ASCII"),
        ({"extra": 1}, "exactly the fields"),
    ],
)
def test_malformed_json_raises_receipt_format_error(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ReceiptFormatError, match=message):
        Receipt.from_json_dict({**good_json(), **changes})


def test_missing_fields_and_non_objects_raise_receipt_format_error() -> None:
    data = good_json()
    del data["timestamp"]
    bad: Any
    for bad in (data, [], "receipt", None):
        with pytest.raises(ReceiptFormatError, match="exactly the fields"):
            Receipt.from_json_dict(bad)
    for text in ("not json", "{}", '{"receipts": []}', "[1]", b"\xff\xfe"):
        with pytest.raises(ReceiptFormatError):
            receipts_from_json(text)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=70)),
    lambda children: st.lists(children, max_size=3),
    max_leaves=5,
)


@settings(max_examples=200)
@given(field=st.sampled_from([*SIGNED_FIELDS, "signature"]), value=json_values)
def test_fuzzed_fields_never_raise_anything_else(field: str, value: Any) -> None:
    with contextlib.suppress(ReceiptFormatError):
        Receipt.from_json_dict({**good_json(), field: value})


def test_receipts_are_frozen_and_strict() -> None:
    receipt = build_chain(1)[0]
    with pytest.raises(ValidationError):
        receipt.seq = 2  # type: ignore[misc]
    with pytest.raises(ValidationError):  # a hex string is not silently taken as bytes
        Receipt(**{**receipt.model_dump(), "prev_hash": "00" * 16})


def test_make_receipt_refuses_a_bad_verdict_before_signing() -> None:
    fields = build_chain(1)[0].model_dump(exclude={"signature"})
    with pytest.raises(ValidationError, match="verdict"):
        make_receipt(AGENT, chain_id=CHAIN_ID, **{**fields, "verdict": "x" * 129})
    with pytest.raises(ReceiptFormatError, match="chain ID"):
        make_receipt(AGENT, chain_id=0, **fields)
