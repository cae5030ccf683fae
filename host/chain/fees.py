"""What the host reads from the chain for the agent: a fee hint, the agent's token balances,
and the chain's view of the agent's account."""

from __future__ import annotations

from typing import Any

from web3 import Web3
from web3.exceptions import BadFunctionCallOutput, ContractLogicError
from web3.types import RPCEndpoint

from host.enclave_client import AccountView

# The priority fee to offer when the node does not suggest one (eth_maxPriorityFeePerGas is
# not a standard method everywhere).
FALLBACK_PRIORITY_FEE = 10**9  # 1 gwei
# The one ERC-20 function read here.
_BALANCE_OF_ABI: list[dict[str, Any]] = [
    {
        "type": "function",
        "name": "balanceOf",
        "stateMutability": "view",
        "inputs": [{"name": "owner", "type": "address"}],
        "outputs": [{"name": "", "type": "uint256"}],
    }
]


class ChainReadError(Exception):
    """The chain does not give what was asked: no base fee, or a token that is not one."""


def fee_hint(w3: Web3) -> tuple[int, int]:
    """(max_fee_per_gas, max_priority_fee_per_gas) in wei for a transaction sent now.

    The priority fee is the node's eth_maxPriorityFeePerGas (1 gwei when it has none); the
    max fee is twice the latest block's base fee plus it, which stays valid through six
    full blocks in a row (each raises the base fee by at most 12.5%, EIP-1559).

    Raises:
        ChainReadError: the latest block has no base fee (not an EIP-1559 chain).
        requests.RequestException: the node cannot be reached.
    """
    block = w3.eth.get_block("latest")
    base_fee = block.get("baseFeePerGas")
    if base_fee is None:
        raise ChainReadError("the latest block has no base fee: the chain is not EIP-1559")
    priority_fee = FALLBACK_PRIORITY_FEE
    # Raw call: web3's `max_priority_fee` raises, or guesses from fee history, without it.
    response = w3.provider.make_request(RPCEndpoint("eth_maxPriorityFeePerGas"), [])
    result = response.get("result") if isinstance(response, dict) else None
    if isinstance(result, str) and response.get("error") is None:
        try:
            priority_fee = int(result, 16)
        except ValueError:
            priority_fee = FALLBACK_PRIORITY_FEE
    return 2 * int(base_fee) + priority_fee, priority_fee


def agent_balances(w3: Web3, tokens: dict[str, tuple[str, int]], address: str) -> dict[str, int]:
    """ERC-20 balances of `address`, in each token's smallest unit, by symbol.

    `tokens` maps a symbol to (token contract address, decimals); the decimals are not
    applied here (balances stay exact integers), only carried for the caller.

    Raises:
        ChainReadError: a token address holds no contract, or its balanceOf fails.
        requests.RequestException: the node cannot be reached.
    """
    owner = Web3.to_checksum_address(address)
    balances: dict[str, int] = {}
    for symbol, (token_address, _decimals) in tokens.items():
        token = w3.eth.contract(
            address=Web3.to_checksum_address(token_address), abi=_BALANCE_OF_ABI
        )
        try:
            balances[symbol] = int(token.functions.balanceOf(owner).call())
        except (BadFunctionCallOutput, ContractLogicError) as exc:
            raise ChainReadError(
                f"{symbol}: balanceOf failed at {token_address} (is it an ERC-20 contract on "
                f"this chain?): {exc}"
            ) from None
    return balances


def account_view(w3: Web3, address: str) -> AccountView:
    """The latest block number and `address`'s transaction count at it ("latest": every
    nonce below is used) and with the node's mempool ("pending"). The block number is read
    first, so the nonces are at least as recent as it.

    Raises:
        requests.RequestException: the node cannot be reached.
    """
    account = Web3.to_checksum_address(address)
    block = int(w3.eth.block_number)
    mined = int(w3.eth.get_transaction_count(account, "latest"))
    pending = int(w3.eth.get_transaction_count(account, "pending"))
    return AccountView(block_number=block, mined_nonce=mined, pending_nonce=max(mined, pending))
