"""The vault swap's calldata is eth_abi's, byte for byte, whether written directly (values
that plainly fit) or by eth_abi itself (anything else, which it may refuse); and it is read
back as eth_abi reads it, whether word by word (eight well-padded words) or by eth_abi."""

from __future__ import annotations

import pytest
from eth_abi import decode, encode
from eth_abi.exceptions import EncodingError
from eth_utils import to_checksum_address
from hypothesis import given
from hypothesis import strategies as st

import enclave.transactions
from enclave.transactions import (
    VAULT_SWAP_SELECTOR,
    DecodedCall,
    SwapPlan,
    decode_call,
    vault_swap_calldata,
)

ARGUMENTS = ["address", "address", "address", "uint256", "uint256", "uint256", "uint64", "bytes32"]
ROUTER = "0x7a250d5630B4cF539739dF2C5dAcb4c659F2488D"
WETH = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
ADDRESSES = st.sampled_from([ROUTER, WETH, ROUTER.lower(), "0x" + "00" * 20, "0x" + "ff" * 20])
UINT256 = st.integers(min_value=0, max_value=2**256 - 1)


@given(
    ADDRESSES, ADDRESSES, ADDRESSES, UINT256, UINT256, UINT256,
    st.integers(min_value=0, max_value=2**64 - 1), st.binary(min_size=32, max_size=32),
)  # fmt: skip
def test_calldata_is_eth_abis(
    router: str, token_in: str, token_out: str, amount_in: int, min_out: int, deadline: int,
    seq: int, digest: bytes,
) -> None:  # fmt: skip
    plan = SwapPlan(token_in, token_out, amount_in, min_out, 0)
    data = vault_swap_calldata(plan, router, deadline, seq, digest)
    expected = encode(
        ARGUMENTS, [router, token_in, token_out, amount_in, min_out, deadline, seq, digest]
    )
    assert data == VAULT_SWAP_SELECTOR + expected
    call = decode_call(data)
    assert call is not None and (call.amount_in, call.min_out, call.receipt_seq) == (
        amount_in,
        min_out,
        seq,
    )
    assert call.router.lower() == router.lower()


@pytest.mark.parametrize(
    "change",
    [
        {"seq": 2**64},
        {"amount_in": -1},
        {"digest": bytes(33)},
        {"router": "0x1234"},  # not 20 bytes
    ],
)
def test_what_eth_abi_refuses_is_still_refused(change: dict[str, object]) -> None:
    values: dict[str, object] = {"router": ROUTER, "amount_in": 1, "seq": 1, "digest": bytes(32)}
    values.update(change)
    plan = SwapPlan(WETH, WETH, values["amount_in"], 1, 0)  # type: ignore[arg-type]
    with pytest.raises(EncodingError):
        vault_swap_calldata(plan, values["router"], 1, values["seq"], values["digest"])  # type: ignore[arg-type]


def _eth_abi_decoded(data: bytes) -> DecodedCall | None:
    """decode_call as eth_abi alone would make it: the reference for the direct reading."""
    if data[:4] != VAULT_SWAP_SELECTOR:
        return None
    try:
        router, token_in, token_out, amount_in, min_out, deadline, seq, digest = decode(
            ARGUMENTS, data[4:]
        )
    except Exception:
        return None
    return DecodedCall(
        "swap", to_checksum_address(router), to_checksum_address(token_in),
        to_checksum_address(token_out), amount_in, min_out, deadline, seq, digest,
    )  # fmt: skip


# Words as calldata holds them: mostly well padded, sometimes with a stray byte in the
# padding of an address (the first 12 bytes) or of the uint64 (the first 24).
PADDED_ADDRESS = st.builds(lambda raw: bytes(12) + raw, st.binary(min_size=20, max_size=20))
WORD = st.binary(min_size=32, max_size=32)
UINT64_WORD = st.builds(lambda n: n.to_bytes(32, "big"), st.integers(0, 2**64 - 1))


@given(
    st.lists(st.one_of(PADDED_ADDRESS, WORD), min_size=3, max_size=3),
    st.lists(WORD, min_size=3, max_size=3),
    st.one_of(UINT64_WORD, WORD),
    WORD,
    st.binary(max_size=40),
    st.integers(min_value=0, max_value=40),
)
def test_decoding_is_eth_abis(
    addresses: list[bytes], amounts: list[bytes], seq: bytes, digest: bytes, extra: bytes,
    cut: int,
) -> None:  # fmt: skip
    data = VAULT_SWAP_SELECTOR + b"".join([*addresses, *amounts, seq, digest])
    # Exactly the eight words (read directly), more (eth_abi ignores the rest) or fewer.
    for calldata in (data, data + extra, data[: len(data) - cut]):
        assert decode_call(calldata) == _eth_abi_decoded(calldata)


def test_a_swap_the_enclave_builds_is_read_directly_and_as_eth_abi_reads_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plan = SwapPlan(WETH, ROUTER, 10**18, 3 * 10**9, 0)
    data = vault_swap_calldata(plan, ROUTER, 1_700_000_000, 42, bytes(range(32)))
    expected = _eth_abi_decoded(data)
    assert expected is not None and expected.token_in == WETH and expected.receipt_seq == 42
    # Never through eth_abi: calldata of the enclave's own making is read word by word.
    monkeypatch.setattr(enclave.transactions, "decode", None)
    assert decode_call(data) == expected
