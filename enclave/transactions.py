"""The one call the agent may make: the GuardedVault's `swap`.

The funds sit in the vault (contracts/GuardedVault.sol); the agent's key may only ask it to
swap through an allowlisted Uniswap V2 Router02, and the vault approves the router itself,
so the agent never sends an approval. The enclave builds every call itself from a decision;
the guardrails then decode what was built (target, selector, arguments) and judge that,
not the decision's intent.
"""

from __future__ import annotations

import functools
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

    Every argument is a static ABI type, one 32-byte word each; values that plainly fit are
    written directly (the same bytes as eth_abi's), anything else goes to eth_abi, whose
    checks then apply.

    Raises:
        eth_abi.exceptions.EncodingError: a value does not fit its ABI type (a digest not
            32 bytes, a seq beyond uint64, a negative amount).
    """
    arguments = [
        router,
        plan.token_in,
        plan.token_out,
        plan.amount_in,
        plan.min_out,
        deadline,
        receipt_seq,
        receipt_digest,
    ]
    words = [
        _address_word(router),
        _address_word(plan.token_in),
        _address_word(plan.token_out),
        _uint_word(plan.amount_in, 256),
        _uint_word(plan.min_out, 256),
        _uint_word(deadline, 256),
        _uint_word(receipt_seq, 64),
        receipt_digest if type(receipt_digest) is bytes and len(receipt_digest) == 32 else None,
    ]
    if None in words:
        return VAULT_SWAP_SELECTOR + encode(_VAULT_SWAP_ARGUMENTS, arguments)
    return VAULT_SWAP_SELECTOR + b"".join(word for word in words if word is not None)


def _address_word(address: object) -> bytes | None:
    """An address as eth_abi encodes it (None when eth_abi refuses it, or for anything but
    a string: eth_abi then decides)."""
    return _address_text_word(address) if isinstance(address, str) else None


@functools.lru_cache(maxsize=256)
def _address_text_word(address: str) -> bytes | None:
    # Cached: the agent names the same few addresses, its config's, in every call.
    try:
        return encode(["address"], [address])
    except Exception:
        return None


def _uint_word(value: object, bits: int) -> bytes | None:
    """A uintN word, or None for anything but an int within range (eth_abi then decides)."""
    if type(value) is not int or not 0 <= value < 1 << bits:
        return None
    return value.to_bytes(32, "big")


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
    """Decode vault swap calldata; None for anything else or anything malformed.

    Calldata of exactly the eight words, each padded as eth_abi's strict decoder requires,
    is read directly (the same values as eth_abi's); anything else goes to eth_abi, whose
    checks then apply.
    """
    if data[:4] != VAULT_SWAP_SELECTOR:
        return None
    values = _read_swap_words(data) if len(data) == _SWAP_CALLDATA_BYTES else None
    if values is None:
        try:
            values = decode(_VAULT_SWAP_ARGUMENTS, data[4:])
        except Exception:
            return None
    router, token_in, token_out, amount_in, min_out, deadline, seq, digest = values
    return DecodedCall(
        function="swap",
        router=_checksummed(router),
        token_in=_checksummed(token_in),
        token_out=_checksummed(token_out),
        amount_in=amount_in,
        min_out=min_out,
        deadline=deadline,
        receipt_seq=seq,
        receipt_digest=digest,
    )


# The selector and eight 32-byte words (every argument of the swap is a static type).
_SWAP_CALLDATA_BYTES = 4 + 8 * 32
# Zero bytes that pad an address (12) and a uint64 (24) to a word: eth_abi's strict decoder
# refuses anything else there (NonEmptyPaddingBytes).
_ADDRESS_PADDING = bytes(12)
_UINT64_PADDING = bytes(24)


def _read_swap_words(data: bytes) -> tuple[str, str, str, int, int, int, int, bytes] | None:
    """The swap's arguments from its eight words, as eth_abi decodes them (addresses in
    lowercase hex); None when a padding is not zero (eth_abi then decides)."""
    words = [data[start : start + 32] for start in range(4, _SWAP_CALLDATA_BYTES, 32)]
    first, second, third = words[0], words[1], words[2]
    if first[:12] != _ADDRESS_PADDING or second[:12] != _ADDRESS_PADDING:
        return None
    if third[:12] != _ADDRESS_PADDING or words[6][:24] != _UINT64_PADDING:
        return None
    return (
        "0x" + first[12:].hex(), "0x" + second[12:].hex(), "0x" + third[12:].hex(),
        int.from_bytes(words[3]), int.from_bytes(words[4]), int.from_bytes(words[5]),
        int.from_bytes(words[6]), words[7],
    )  # fmt: skip


@functools.lru_cache(maxsize=256)
def _checksummed(address: str) -> str:
    """EIP-55 form of a decoded address (the calls name the same few addresses)."""
    return to_checksum_address(address)
