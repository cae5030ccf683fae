"""Calls the agent may make: Uniswap V2 Router02 swaps and ERC-20 approvals to the router.

The enclave builds every transaction itself from a decision; the guardrails then decode
what was built (target, selector, arguments) and judge that, not the decision's intent.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from eth_abi import decode, encode
from eth_utils import function_signature_to_4byte_selector, to_checksum_address

# Function signatures: Uniswap V2 Router02 (v2-periphery UniswapV2Router02.sol) and ERC-20.
SWAP_EXACT_TOKENS_FOR_TOKENS = "swapExactTokensForTokens(uint256,uint256,address[],address,uint256)"
APPROVE = "approve(address,uint256)"
SWAP_SELECTOR = function_signature_to_4byte_selector(SWAP_EXACT_TOKENS_FOR_TOKENS)
APPROVE_SELECTOR = function_signature_to_4byte_selector(APPROVE)
MAX_UINT256 = 2**256 - 1

# Gas limits: generous for a two-hop-free V2 swap and an ERC-20 approval.
SWAP_GAS = 300_000
APPROVE_GAS = 100_000
# How long a signed swap stays valid on chain.
SWAP_DEADLINE_SECONDS = 1800


@dataclass(frozen=True)
class SwapPlan:
    """A swap in token units: `amount_in` of `token_in` for at least `min_out` of `token_out`."""

    token_in: str
    token_out: str
    amount_in: int
    min_out: int
    expected_out: int


def to_units(amount: Decimal, decimals: int, *, round_up: bool = False) -> int:
    """Whole tokens to the token's smallest unit, rounding as asked."""
    scaled = amount.scaleb(decimals)
    return int(scaled.to_integral_value(rounding=ROUND_CEILING if round_up else ROUND_FLOOR))


def swap_calldata(plan: SwapPlan, path: tuple[str, str], recipient: str, deadline: int) -> bytes:
    return SWAP_SELECTOR + encode(
        ["uint256", "uint256", "address[]", "address", "uint256"],
        [plan.amount_in, plan.min_out, list(path), recipient, deadline],
    )


def approve_calldata(spender: str, amount: int = MAX_UINT256) -> bytes:
    return APPROVE_SELECTOR + encode(["address", "uint256"], [spender, amount])


@dataclass(frozen=True)
class DecodedCall:
    """What a transaction's data says, for the guardrails."""

    function: str
    path: tuple[str, ...] = ()
    recipient: str | None = None
    amount_in: int = 0
    min_out: int = 0
    spender: str | None = None


def decode_call(data: bytes) -> DecodedCall | None:
    """Decode swap or approve calldata; None for anything else or anything malformed."""
    selector, arguments = data[:4], data[4:]
    try:
        if selector == SWAP_SELECTOR:
            amount_in, min_out, path, recipient, _ = decode(
                ["uint256", "uint256", "address[]", "address", "uint256"], arguments
            )
            return DecodedCall(
                function="swapExactTokensForTokens",
                path=tuple(to_checksum_address(token) for token in path),
                recipient=to_checksum_address(recipient),
                amount_in=amount_in,
                min_out=min_out,
            )
        if selector == APPROVE_SELECTOR:
            spender, _amount = decode(["address", "uint256"], arguments)
            return DecodedCall(function="approve", spender=to_checksum_address(spender))
    except Exception:
        return None
    return None
