"""The account signer: byte-identical to eth-account, and the key never shows."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
import rlp  # type: ignore[import-untyped]
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_keys.constants import SECPK1_N
from eth_utils.address import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from attestation.ethereum import SECP256K1_N, recover_signer
from enclave.signer import (
    AccountSigner,
    Eip1559Transaction,
    SignedTransaction,
    SignerError,
    rlp_encode,
)

# A fixed, well-known test key (anvil's / hardhat's first dev account) and its address.
DEV_KEY = bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
DEV_ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
UINT256_MAX = 2**256 - 1
UINT64_MAX = 2**64 - 1

ORDER = {
    "types": {
        "EIP712Domain": [
            {"name": "name", "type": "string"},
            {"name": "version", "type": "string"},
            {"name": "chainId", "type": "uint256"},
            {"name": "verifyingContract", "type": "address"},
        ],
        "Order": [
            {"name": "maker", "type": "address"},
            {"name": "sellAmount", "type": "uint256"},
            {"name": "buyToken", "type": "address"},
            {"name": "validTo", "type": "uint32"},
        ],
    },
    "primaryType": "Order",
    "domain": {
        "name": "Example DEX",
        "version": "2",
        "chainId": 1,
        "verifyingContract": "0x9008D19f58AAbD9eD0D60971565AA8510560ab41",
    },
    "message": {
        "maker": DEV_ADDRESS,
        "sellAmount": 10**18,
        "buyToken": "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2",
        "validTo": 1_700_000_000,
    },
}


def simple_tx(**changes: Any) -> Eip1559Transaction:
    fields: dict[str, Any] = {
        "chain_id": 31337,
        "nonce": 0,
        "max_priority_fee_per_gas": 10**9,
        "max_fee_per_gas": 30 * 10**9,
        "gas": 21000,
        "to": bytes.fromhex("70997970C51812dc3A010C7d01b50e0d17dc79C8"),
        "value": 10**18,
    }
    return Eip1559Transaction(**{**fields, **changes})


def as_eth_account_dict(tx: Eip1559Transaction) -> dict[str, Any]:
    return {
        "type": 2,
        "chainId": tx.chain_id,
        "nonce": tx.nonce,
        "maxPriorityFeePerGas": tx.max_priority_fee_per_gas,
        "maxFeePerGas": tx.max_fee_per_gas,
        "gas": tx.gas,
        "to": to_checksum_address(tx.to),
        "value": tx.value,
        "data": "0x" + tx.data.hex(),
        "accessList": [],
    }


def edges(maximum: int) -> st.SearchStrategy[int]:
    """Values across the whole range, with the boundaries and byte-length edges likely."""
    special = [0, 1, 0x7F, 0x80, 0xFF, 0x100, 2**55, 2**56, maximum - 1, maximum]
    return st.one_of(st.sampled_from(special), st.integers(0, maximum))


@st.composite
def transactions(draw: st.DrawFn) -> Eip1559Transaction:
    max_fee = draw(edges(UINT256_MAX))
    return Eip1559Transaction(
        chain_id=draw(st.one_of(st.sampled_from([1, 10, 31337, 11155111]), edges(UINT64_MAX))
                      .filter(lambda n: n >= 1)),
        nonce=draw(edges(UINT64_MAX)),
        max_priority_fee_per_gas=draw(st.integers(0, max_fee)),
        max_fee_per_gas=max_fee,
        gas=draw(edges(UINT64_MAX)),
        to=draw(st.binary(min_size=20, max_size=20)),
        value=draw(edges(UINT256_MAX)),
        data=draw(
            st.one_of(
                st.just(b""),
                st.binary(min_size=1, max_size=1),
                st.binary(min_size=50, max_size=60),  # around the 55-byte RLP boundary
                st.binary(min_size=0, max_size=4096),
            )
        ),
    )  # fmt: skip


keys = st.integers(1, SECP256K1_N - 1).map(lambda k: k.to_bytes(32, "big"))


@settings(max_examples=200, deadline=None)
@given(tx=transactions(), secret=st.one_of(st.just(DEV_KEY), keys))
def test_sign_transaction_is_byte_identical_to_eth_account(
    tx: Eip1559Transaction, secret: bytes
) -> None:
    signer = AccountSigner.from_bytes(secret)
    ours = signer.sign_transaction(tx)
    reference = Account.sign_transaction(as_eth_account_dict(tx), secret)
    assert ours.raw_transaction == bytes(reference.raw_transaction)
    assert ours.hash == bytes(reference.hash)
    assert (ours.r, ours.s, ours.v) == (reference.r, reference.s, reference.v)
    assert Account.recover_transaction(ours.raw_transaction) == signer.address == ours.sender


def test_known_key_has_its_known_address() -> None:
    assert AccountSigner.from_bytes(DEV_KEY).address == DEV_ADDRESS
    assert Account.from_key(DEV_KEY).address == DEV_ADDRESS


def test_signed_transaction_fields() -> None:
    signer = AccountSigner.from_bytes(DEV_KEY)
    signed = signer.sign_transaction(simple_tx(data=b"\xa9\x05\x9c\xbb" + bytes(64)))
    assert isinstance(signed, SignedTransaction)
    assert signed.raw_transaction[0] == 2 and signed.v in (0, 1)
    assert signed.s <= SECP256K1_N // 2  # low-s, as EIP-2 requires
    decoded = rlp.decode(signed.raw_transaction[1:])
    assert decoded[5] == simple_tx().to and decoded[8] == []
    assert signed.sender == DEV_ADDRESS
    with pytest.raises(ValidationError):
        signed.r = 1  # type: ignore[misc]  # frozen


@settings(max_examples=50, deadline=None)
@given(digest=st.binary(min_size=32, max_size=32), secret=keys)
def test_sign_digest_matches_eth_account_and_recovers(digest: bytes, secret: bytes) -> None:
    signer = AccountSigner.from_bytes(secret)
    signature = signer.sign_digest(digest)
    assert signature == bytes(Account.unsafe_sign_hash(digest, secret).signature)
    assert signature[64] in (27, 28)
    assert recover_signer(digest, signature) == signer.address


def test_sign_typed_data_matches_eth_account() -> None:
    signer = AccountSigner.from_bytes(DEV_KEY)
    signature = signer.sign_typed_data(ORDER)
    assert signature == bytes(Account.sign_typed_data(DEV_KEY, full_message=ORDER).signature)
    signable = encode_typed_data(full_message=ORDER)
    assert Account.recover_message(signable, signature=signature) == DEV_ADDRESS


def test_sign_typed_data_rejects_malformed_messages() -> None:
    signer = AccountSigner.from_bytes(DEV_KEY)
    broken = {**ORDER, "primaryType": "Missing"}
    with pytest.raises(SignerError, match="EIP-712") as raised:
        signer.sign_typed_data(broken)
    # A flag, not `in` in the assert: pytest would print the key on a failure.
    leaked = DEV_KEY.hex() in str(raised.value)
    assert not leaked, "the key appears in the EIP-712 error"


def test_generate_makes_distinct_keys_that_round_trip() -> None:
    first, second = AccountSigner.generate(), AccountSigner.generate()
    assert first.address != second.address
    assert AccountSigner.from_bytes(first.secret_bytes()).address == first.address
    assert len(first.secret_bytes()) == 32


def test_the_key_never_appears_in_repr_str_or_errors() -> None:
    signer = AccountSigner.from_bytes(DEV_KEY)
    secret_hex = DEV_KEY.hex()
    texts = [repr(signer), str(signer), f"{signer}", f"{signer!r}"]
    assert texts[0] == f"AccountSigner(address={DEV_ADDRESS})"
    with pytest.raises(TypeError) as pickled:
        pickle.dumps(signer)
    texts.append(str(pickled.value))
    for bad_digest in (b"", bytes(31), bytes(33), "00" * 32):
        with pytest.raises(SignerError) as raised:
            signer.sign_digest(bad_digest)  # type: ignore[arg-type]
        texts += [str(raised.value), repr(raised.value)]
    # Flags, not `in` in the asserts: pytest would print the key on a failure.
    for number, text in enumerate(texts):
        leaked_hex = secret_hex in text.lower() or secret_hex.upper() in text
        assert not leaked_hex, f"the key in hex appears in text #{number}"
        leaked_int = str(int.from_bytes(DEV_KEY)) in text
        assert not leaked_int, f"the key as an integer appears in text #{number}"


@pytest.mark.parametrize(
    "secret",
    [
        DEV_KEY + b"\x00",
        DEV_KEY[:31],
        bytes(32),
        SECP256K1_N.to_bytes(32, "big"),
        (2**256 - 1).to_bytes(32, "big"),
        DEV_KEY.hex(),
    ],
    ids=["33 bytes", "31 bytes", "zero", "n", "2**256-1", "hex string"],
)
def test_from_bytes_rejects_unusable_keys_without_showing_them(secret: Any) -> None:
    with pytest.raises(SignerError) as raised:
        AccountSigner.from_bytes(secret)
    shown = str(raised.value) + repr(raised.value)
    # A flag, not `in` in the assert: pytest would print the key on a failure.
    leaked = DEV_KEY.hex() in shown or DEV_KEY.hex()[:31] in shown
    assert not leaked, "the key (or its first 31 hex digits) appears in the error"


def test_curve_order_matches_eth_keys() -> None:
    assert SECP256K1_N == SECPK1_N


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"max_priority_fee_per_gas": 31 * 10**9}, "exceeds max_fee_per_gas"),
        ({"to": bytes(19)}, "at least 20"),
        ({"to": None}, "bytes"),
        ({"to": "0x70997970c51812dc3a010c7d01b50e0d17dc79c"}, "40 hex"),
        ({"to": "0x70997970C51812dc3A010C7d01b50e0d17dc79c8"}, "checksum"),
        ({"data": "0xdeadbeef"}, "bytes"),
        ({"value": -1}, "greater than or equal"),
        ({"value": 2**256}, "less than or equal"),
        ({"nonce": 2**64}, "less than or equal"),
        ({"nonce": True}, "integer"),
        ({"chain_id": 0}, "greater than or equal"),
        ({"access_list": ((bytes(20), ()),)}, "at most 0"),
        ({"gasPrice": 1}, "Extra inputs"),
    ],
)
def test_transaction_model_refuses_what_it_cannot_sign(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        simple_tx(**changes)


def test_to_accepts_checksummed_lowercase_and_uppercase_hex() -> None:
    raw = simple_tx().to
    for spelling in (to_checksum_address(raw), "0x" + raw.hex(), "0x" + raw.hex().upper()):
        assert simple_tx(to=spelling).to == raw


@pytest.mark.parametrize(
    ("item", "encoded"),
    [  # the examples of the Ethereum wiki's RLP page and the Yellow Paper, appendix B
        (b"dog", "83646f67"),
        ([b"cat", b"dog"], "c88363617483646f67"),
        (b"", "80"),
        ([], "c0"),
        (0, "80"),
        (b"\x00", "00"),
        (b"\x0f", "0f"),
        (15, "0f"),
        (1024, "820400"),
        ([[], [[]], [[], [[]]]], "c7c0c1c0c3c0c1c0"),
        (
            b"Lorem ipsum dolor sit amet, consectetur adipisicing elit",
            "b838" + b"Lorem ipsum dolor sit amet, consectetur adipisicing elit".hex(),
        ),
    ],
)
def test_rlp_known_answers(item: Any, encoded: str) -> None:
    assert rlp_encode(item).hex() == encoded


rlp_items = st.recursive(
    st.one_of(st.binary(max_size=80), st.integers(0, UINT256_MAX)),
    lambda children: st.lists(children, max_size=6),
    max_leaves=20,
)


@settings(max_examples=200)
@given(item=rlp_items)
def test_rlp_matches_the_rlp_package(item: Any) -> None:
    assert rlp_encode(item) == rlp.encode(item)


def test_rlp_refuses_negative_integers_and_other_types() -> None:
    with pytest.raises(SignerError, match="negative"):
        rlp_encode(-1)
    with pytest.raises(SignerError, match="str"):
        rlp_encode("text")  # type: ignore[arg-type]
