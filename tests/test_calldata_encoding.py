"""The vault swap's calldata is eth_abi's, byte for byte, whether written directly (values
that plainly fit) or by eth_abi itself (anything else, which it may refuse)."""

from __future__ import annotations

import pytest
from eth_abi import encode
from eth_abi.exceptions import EncodingError
from hypothesis import given
from hypothesis import strategies as st

from enclave.transactions import VAULT_SWAP_SELECTOR, SwapPlan, decode_call, vault_swap_calldata

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
