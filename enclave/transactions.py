"""The one call the agent may make: the GuardedVault's `swap`.

The funds sit in the vault (contracts/GuardedVault.sol); the agent's key may only ask it to
swap through an allowlisted Uniswap V2 Router02, and the vault approves the router itself,
so the agent never sends an approval. The enclave builds every call itself from a decision;
the guardrails then decode what was built (target, selector, arguments) and judge that,
not the decision's intent.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from eth_abi import decode, encode
from eth_utils import function_signature_to_4byte_selector, to_checksum_address

# GuardedVault.swap (contracts/GuardedVault.sol): swaps `amountIn` of `tokenIn` for at least
# `minOut` of `tokenOut` through `router` along [tokenIn, tokenOut], paying the vault, and
# emits the receipt's sequence number and EIP-712 digest with the trade.
VAULT_SWAP = "swap(address,address,address,uint256,uint256,uint256,uint64,bytes32)"
VAULT_SWAP_SELECTOR = function_signature_to_4byte_selector(VAULT_SWAP)
_VAULT_SWAP_ARGUMENTS = [
    "address", "address", "address", "uint256", "uint256", "uint256", "uint64", "bytes32"
]  # fmt: skip

# Gas limit of a vault swap: the V2 swap itself, the vault's approval of the router, its
# TWAP and cap checks and the Traded event, with room to spare.
VAULT_SWAP_GAS = 400_000
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


def vault_swap_calldata(
    plan: SwapPlan, router: str, deadline: int, receipt_seq: int, receipt_digest: bytes
) -> bytes:
    """Calldata of `GuardedVault.swap` for `plan` through `router`, valid until `deadline`
    (unix seconds), carrying the sequence number and EIP-712 digest of the decision's receipt.

    Raises:
        eth_abi.exceptions.EncodingError: a value does not fit its ABI type (a digest not
            32 bytes, a seq beyond uint64, a negative amount).
    """
    return VAULT_SWAP_SELECTOR + encode(
        _VAULT_SWAP_ARGUMENTS,
        [
            router,
            plan.token_in,
            plan.token_out,
            plan.amount_in,
            plan.min_out,
            deadline,
            receipt_seq,
            receipt_digest,
        ],
    )


@dataclass(frozen=True)
class DecodedCall:
    """What a vault swap's calldata says, for the guardrails (addresses checksummed)."""

    function: str
    router: str
    token_in: str
    token_out: str
    amount_in: int
    min_out: int
    deadline: int
    receipt_seq: int
    receipt_digest: bytes


def decode_call(data: bytes) -> DecodedCall | None:
    """Decode vault swap calldata; None for anything else or anything malformed."""
    if data[:4] != VAULT_SWAP_SELECTOR:
        return None
    try:
        router, token_in, token_out, amount_in, min_out, deadline, seq, digest = decode(
            _VAULT_SWAP_ARGUMENTS, data[4:]
        )
    except Exception:
        return None
    return DecodedCall(
        function="swap",
        router=to_checksum_address(router),
        token_in=to_checksum_address(token_in),
        token_out=to_checksum_address(token_out),
        amount_in=amount_in,
        min_out=min_out,
        deadline=deadline,
        receipt_seq=seq,
        receipt_digest=digest,
    )
