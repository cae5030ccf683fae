"""What the chain records of an agent and its guarded vault, read for `host.chain.audit`.

`transactions_from` finds every transaction an address sent (a block scan: a reverted
transaction, or one to another contract, leaves no log to filter on). `read_vault_record`
reads the rest with eth_getLogs topic filters: the vault's Traded and Withdrawn events, the
ERC-20 Transfer logs out of the vault in its quote token and every base token it ever
allowed, every agent it ever registered (with that agent's record now), and decodes the
agent's calls to the vault with the vault's ABI. Nothing here judges what it reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from eth_abi import decode as abi_decode
from eth_utils import function_signature_to_4byte_selector, keccak, to_checksum_address
from web3 import Web3
from web3.exceptions import BadFunctionCallOutput, ContractLogicError, Web3RPCError

from host.chain.vault import AgentRecord, Trade, Vault, VaultError

# contracts/GuardedVault.sol: the agent's only call.
_SWAP_TYPES: Final = (
    "address", "address", "address", "uint256", "uint256", "uint256", "uint64", "bytes32"
)  # fmt: skip
SWAP_SELECTOR: Final = function_signature_to_4byte_selector(f"swap({','.join(_SWAP_TYPES)})")
# EIP-20: event Transfer(address indexed _from, address indexed _to, uint256 _value).
TRANSFER_TOPIC: Final = keccak(text="Transfer(address,address,uint256)")


@dataclass(frozen=True)
class SentTransaction:
    """One transaction an address sent: its hash, block, recipient (None for a contract
    creation) and calldata."""

    tx_hash: bytes
    block: int
    to: str | None
    data: bytes


@dataclass(frozen=True)
class VaultSwap:
    """An agent's call of the vault's swap, decoded from its calldata; `mined` is False when
    it reverted (its transaction holds no Traded event: a swap that succeeds always emits
    one)."""

    tx_hash: bytes
    router: str
    token_in: str
    token_out: str
    amount_in: int
    min_out: int
    receipt_seq: int
    receipt_digest: bytes
    mined: bool


@dataclass(frozen=True)
class TokenMove:
    """A Withdrawn event of the vault, or an ERC-20 Transfer out of it: token, recipient,
    amount in smallest units, and the transaction it sits in."""

    token: str
    to: str
    amount: int
    tx_hash: bytes


@dataclass(frozen=True)
class VaultRecord:
    """The vault as the audit sees it, from `from_block` to `to_block` (registrations and
    markets from block 0: one made before the scan still holds)."""

    address: str
    # Why the code at the address is not the committed GuardedVault's; None when it is.
    code_problem: str | None
    quote_token: str
    # Base token -> every pair the owner ever set for it (MarketSet), allowed or not.
    markets: dict[str, frozenset[str]]
    # Every agent ever registered -> its record at the latest block.
    agents: dict[str, AgentRecord]
    trades: list[Trade]
    withdrawals: list[TokenMove]
    outflows: list[TokenMove]
    # The agent's calls to the vault: swaps by transaction hash, and anything else.
    swaps: dict[bytes, VaultSwap]
    other_calls: list[SentTransaction]


def transactions_from(
    w3: Web3, address: str, from_block: int, to_block: int
) -> list[SentTransaction]:
    """Every transaction `address` sent in blocks `from_block` to `to_block`, oldest first."""
    wanted = address.lower()
    found = []
    for number in range(from_block, to_block + 1):
        block = w3.eth.get_block(number, full_transactions=True)
        for tx in block["transactions"]:
            if isinstance(tx, bytes):  # hash-only entries: full_transactions was not honoured
                continue
            if str(tx["from"]).lower() == wanted:
                to = tx.get("to")
                found.append(
                    SentTransaction(
                        tx_hash=bytes(tx["hash"]),
                        block=number,
                        to=to_checksum_address(to) if to else None,
                        data=bytes(tx.get("input", b"")),
                    )
                )
    return found


def decode_swap(sent: SentTransaction, mined: bool) -> VaultSwap | None:
    """The swap call `sent` makes, or None when its calldata is not a well-formed swap."""
    if sent.data[:4] != SWAP_SELECTOR:
        return None
    try:
        router, token_in, token_out, amount_in, min_out, _deadline, seq, digest = abi_decode(
            list(_SWAP_TYPES), sent.data[4:]
        )
    except Exception:  # eth_abi raises several types for short or malformed data
        return None
    return VaultSwap(
        tx_hash=sent.tx_hash,
        router=to_checksum_address(router),
        token_in=to_checksum_address(token_in),
        token_out=to_checksum_address(token_out),
        amount_in=int(amount_in),
        min_out=int(min_out),
        receipt_seq=int(seq),
        receipt_digest=bytes(digest),
        mined=mined,
    )


def read_vault_record(
    w3: Web3, address: str, sent: Sequence[SentTransaction], from_block: int, to_block: int
) -> VaultRecord:
    """Read the vault at `address`; `sent` are the agent's transactions in the same blocks.

    Raises:
        VaultError: the address holds no vault the calls and event filters can read.
    """
    vault = Vault(w3, address)
    try:
        vault.check_deployed()
        code_problem = None
    except VaultError as exc:
        code_problem = str(exc)
    events = vault.contract.events
    try:
        quote = to_checksum_address(vault.contract.functions.quoteToken().call())
        markets: dict[str, set[str]] = {}
        for log in events.MarketSet().get_logs(from_block=0, to_block=to_block):
            base = to_checksum_address(log["args"]["base"])
            markets.setdefault(base, set()).add(to_checksum_address(log["args"]["pair"]))
        registered = {
            to_checksum_address(log["args"]["agent"])
            for log in events.AgentRegistered().get_logs(from_block=0, to_block=to_block)
        }
        withdrawn = [
            TokenMove(
                token=to_checksum_address(log["args"]["token"]),
                to=to_checksum_address(log["args"]["to"]),
                amount=int(log["args"]["amount"]),
                tx_hash=bytes(log["transactionHash"]),
            )
            for log in events.Withdrawn().get_logs(from_block=from_block, to_block=to_block)
        ]
        outflows = _transfers_out(w3, vault.address, [quote, *markets], from_block, to_block)
    except (BadFunctionCallOutput, ContractLogicError, Web3RPCError, ValueError) as exc:
        problem = f"reading the vault {vault.address}: {exc}"
        raise VaultError(f"{code_problem}; {problem}" if code_problem else problem) from None
    trades = vault.trades(from_block, to_block)
    agents: dict[str, AgentRecord] = {}
    for agent in sorted(registered):
        record = vault.state(agent).agent
        if record is not None:
            agents[agent] = record
    traded = {trade.tx_hash for trade in trades}
    swaps, other_calls = {}, []
    for tx in sent:
        if tx.to != vault.address:
            continue
        swap = decode_swap(tx, mined=tx.tx_hash in traded)
        if swap is None:
            other_calls.append(tx)
        else:
            swaps[tx.tx_hash] = swap
    return VaultRecord(
        address=vault.address,
        code_problem=code_problem,
        quote_token=quote,
        markets={base: frozenset(pairs) for base, pairs in markets.items()},
        agents=agents,
        trades=trades,
        withdrawals=withdrawn,
        outflows=outflows,
        swaps=swaps,
        other_calls=other_calls,
    )


def _transfers_out(
    w3: Web3, vault: str, tokens: list[str], from_block: int, to_block: int
) -> list[TokenMove]:
    """Every ERC-20 Transfer log of `tokens` whose sender (topic 1) is `vault`."""
    sender = bytes(12) + bytes.fromhex(vault[2:])
    params: Any = {
        "fromBlock": from_block,
        "toBlock": to_block,
        "address": tokens,
        "topics": ["0x" + TRANSFER_TOPIC.hex(), "0x" + sender.hex()],
    }
    moves = []
    for log in w3.eth.get_logs(params):
        topics = log["topics"]
        if len(topics) != 3 or len(bytes(log["data"])) != 32:
            continue  # not an EIP-20 Transfer (an ERC-721 one has four topics, no data)
        moves.append(
            TokenMove(
                token=to_checksum_address(log["address"]),
                to=to_checksum_address(bytes(topics[2])[-20:]),
                amount=int.from_bytes(bytes(log["data"]), "big"),
                tx_hash=bytes(log["transactionHash"]),
            )
        )
    return moves
