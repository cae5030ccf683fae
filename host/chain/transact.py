"""Transactions signed with a local account (the vault owner, the devnet kit): sent, and waited for.

Every transaction is an EIP-1559 transaction whose fees come from the host's own fee hint
(`host.chain.fees.fee_hint`, as the agent's transactions); a transaction that would revert,
is refused or reverts raises `ChainError` with the contract's reason. `units` turns whole
token amounts into smallest units.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import ROUND_FLOOR, Decimal
from typing import Any, cast

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.exceptions import ContractCustomError, ContractLogicError, Web3RPCError
from web3.types import TxParams, TxReceipt

from host.chain.fees import fee_hint
from host.chain.node_errors import custom_error

# How long to wait for a transaction to be mined: anvil mines each one at once.
_RECEIPT_TIMEOUT = 60.0

# A whole-token amount: a Decimal, an int, or a decimal string ("0.25").
Amount = Decimal | int | str


class ChainError(Exception):
    """A transaction reverted or the deployment is not what it must be; says which and why."""


def units(amount: Amount, decimals: int = 18) -> int:
    """Whole tokens (a Decimal, an int, or a decimal string) to smallest units, rounded down.

    Raises:
        ValueError: the amount is negative or not a finite number.
        decimal.InvalidOperation: a string that is not a number.
    """
    value = Decimal(amount) if not isinstance(amount, Decimal) else amount
    if not value.is_finite() or value < 0:
        raise ValueError(f"an amount must be a finite number >= 0, found {amount!r}")
    return int(value.scaleb(decimals).to_integral_value(rounding=ROUND_FLOOR))


def _reason(exc: Exception, abi: Sequence[Mapping[str, Any]] = ()) -> str:
    if isinstance(exc, ContractCustomError) and isinstance(exc.data, str):
        return custom_error(exc.data, abi)
    if isinstance(exc, ContractLogicError) and exc.message:
        return exc.message
    return str(exc) or type(exc).__name__


def send_transaction(
    w3: Web3,
    account: LocalAccount,
    call: ContractFunction | ContractConstructor | TxParams,
    *,
    what: str,
    value: int = 0,
) -> TxReceipt:
    """Sign `call` (a contract function, a constructor, or plain transaction fields) as an
    EIP-1559 transaction from `account`, send it, wait for its receipt.

    Raises:
        ChainError: naming `what` and the revert reason, when the transaction would revert
            (gas estimation), is refused by the node, or did revert (receipt status 0).
        host.chain.fees.ChainReadError: the chain has no base fee (not EIP-1559).
    """
    abi = call.contract_abi if isinstance(call, ContractFunction) else ()
    max_fee, priority_fee = fee_hint(w3)
    fields: dict[str, Any] = {
        "from": account.address,
        "nonce": w3.eth.get_transaction_count(account.address, "pending"),
        "chainId": w3.eth.chain_id,
        "value": value,
        "maxFeePerGas": max_fee,
        "maxPriorityFeePerGas": priority_fee,
    }
    try:
        if isinstance(call, ContractFunction | ContractConstructor):
            tx = dict(call.build_transaction(cast(TxParams, fields)))
        else:
            tx = {**fields, **call}
            if "gas" not in tx:
                tx["gas"] = w3.eth.estimate_gas(cast(TxParams, tx))
    except (ContractLogicError, Web3RPCError) as exc:
        raise ChainError(
            f"{what} from {account.address} would revert: {_reason(exc, abi)}"
        ) from None
    # A generous margin: the estimate runs at the latest block's timestamp, and a swap mined
    # in a later second also writes the pair's price accumulators (two cold SSTOREs, about
    # 40,000 gas) that the estimate did not include.
    tx["gas"] = int(tx["gas"]) * 3 // 2 + 60_000
    tx.setdefault("type", 2)
    signed = account.sign_transaction(tx)
    try:
        tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    except Web3RPCError as exc:
        raise ChainError(
            f"{what} from {account.address} was refused: {_reason(exc, abi)}"
        ) from None
    receipt = w3.eth.wait_for_transaction_receipt(
        tx_hash, timeout=_RECEIPT_TIMEOUT, poll_latency=0.05
    )
    if receipt["status"] != 1:
        reason = "no reason given"
        replay = {key: tx[key] for key in ("from", "to", "data", "value") if key in tx}
        try:
            w3.eth.call(cast(TxParams, replay), block_identifier=receipt["blockNumber"] - 1)
        except (ContractLogicError, Web3RPCError) as exc:
            reason = _reason(exc, abi)
        raise ChainError(
            f"{what} from {account.address} reverted in block {receipt['blockNumber']} "
            f"(tx {tx_hash.to_0x_hex()}): {reason}"
        )
    return receipt
