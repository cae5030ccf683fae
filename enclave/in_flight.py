"""Signed transactions not yet mined, and what the chain's view of the account does to them.

With each batch the host reports the chain's view of the agent's account (`AccountView`:
block number, mined and pending nonce). It is untrusted, so it can only move the enclave
forward: the block number kept is the highest ever reported, and the next nonce only rises
to the mined nonce (a nonce the chain has used is never signed again; a host that reports
high only makes the enclave skip nonces, and the vault still checks every trade).

A transaction still unmined `replace_after_blocks` blocks after it was signed is signed
again: same nonce, same call (to, value, data, gas), both fees up by at least 12.5 % (the
replacement rule of geth's and anvil's mempools) and at least the host's fee hint, never
above the guardrails' fee cap. Each replacement has its own receipt, verdict
"replaced:<seq of the decision's receipt>", carrying the new transaction's hash; the call
still carries the original receipt's seq and digest, so the vault sees the original
decision. A replacement the cap does not allow is said once, in a receipt with the verdict
"stuck_at_fee_cap:<seq>". Nothing is replaced while the owner has paused the agent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from enclave.config import EnclaveConfig
from enclave.guardrails import GWEI
from enclave.signer import AccountSigner, Eip1559Transaction
from enclave.state import EnclaveState, InFlightTransaction, PendingTransaction
from enclave.vault_trades import FeeHint

# Verdict prefixes of the receipts written here (each followed by the decision's seq).
REPLACED = "replaced:"
STUCK_AT_FEE_CAP = "stuck_at_fee_cap:"
# A replacement raises both fees by at least 1/8 (12.5 %): a mempool refuses a replacement
# that does not raise them enough (geth's default `txpool.pricebump` is 10 %), and 12.5 %
# clears the rule of every common client.
_BUMP_NUMERATOR, _BUMP_DENOMINATOR = 9, 8
# In-flight transactions kept at most: a host that never reports the chain's view must not
# make the sealed state grow without bound (the lowest nonces are forgotten first).
MAX_IN_FLIGHT = 1024

# (verdict, input_json, tx_hash) -> the seq of the receipt written.
ReceiptWriter = Callable[[str, str, bytes], int]


@dataclass(frozen=True)
class AccountView:
    """The chain's view of the agent's account, as the host reports it (untrusted)."""

    block_number: int
    mined_nonce: int
    pending_nonce: int


def bumped(fee: int) -> int:
    """`fee` raised by 12.5 %, rounded up: the least a replacement may offer."""
    return -(-fee * _BUMP_NUMERATOR // _BUMP_DENOMINATOR)


def track(state: EnclaveState, tx: Eip1559Transaction, tx_hash: bytes, receipt_seq: int) -> None:
    """Remember `tx`, just signed as the transaction of receipt `receipt_seq`; past
    MAX_IN_FLIGHT, only the highest nonces are kept."""
    in_flight = state.in_flight
    # Kept in nonce order (`EnclaveState` sorts what it loads): a nonce above the last one
    # keeps that order, and then the highest nonces are simply the last ones.
    in_order = not in_flight or in_flight[-1].nonce <= tx.nonce
    in_flight.append(
        InFlightTransaction(
            nonce=tx.nonce,
            chain_id=tx.chain_id,
            to="0x" + tx.to.hex(),
            value=tx.value,
            data=tx.data.hex(),
            gas=tx.gas,
            max_fee_per_gas=tx.max_fee_per_gas,
            max_priority_fee_per_gas=tx.max_priority_fee_per_gas,
            tx_hash=tx_hash.hex(),
            receipt_seq=receipt_seq,
            original_receipt_seq=receipt_seq,
            original_tx_hash=tx_hash.hex(),
            signed_block=state.chain_block or None,
        )
    )
    if len(in_flight) > MAX_IN_FLIGHT:
        if not in_order:
            in_flight = sorted(in_flight, key=lambda t: t.nonce)
        state.in_flight = in_flight[-MAX_IN_FLIGHT:]


def apply_account_view(
    state: EnclaveState,
    view: AccountView,
    *,
    config: EnclaveConfig,
    signer: AccountSigner,
    fees: FeeHint | None,
    write_receipt: ReceiptWriter,
) -> int:
    """Take the chain's view: keep the highest block number, forget the transactions whose
    nonce is used, raise the next nonce to the mined one, and replace what waited too long
    (see the module's docstring). Returns how many transactions were replaced."""
    state.chain_block = max(state.chain_block, view.block_number)
    state.in_flight = [t for t in state.in_flight if t.nonce >= view.mined_nonce]
    state.tx_nonce = max(state.tx_nonce, view.mined_nonce)
    replaced = 0
    for tx in state.in_flight:
        if tx.signed_block is None:
            tx.signed_block = state.chain_block
            continue
        if state.paused or state.chain_block - tx.signed_block < config.chain.replace_after_blocks:
            continue
        if _replace(state, tx, view, config, signer, fees, write_receipt):
            replaced += 1
    return replaced


def replacement_fees(
    tx: InFlightTransaction, config: EnclaveConfig, fees: FeeHint | None
) -> tuple[int, int] | None:
    """(max fee, priority fee) of `tx`'s replacement: each at least 12.5 % above the old one
    and at least the host's hint, the max fee at most the guardrails' fee cap (a hint above
    the cap counts as the cap), the priority fee at most the max fee; None when the bump
    alone would pass the cap."""
    cap = int(config.guardrails.max_fee_per_gas_gwei * GWEI)
    max_fee, priority = bumped(tx.max_fee_per_gas), bumped(tx.max_priority_fee_per_gas)
    if max_fee > cap:
        return None
    if fees is not None:
        max_fee = max(max_fee, min(fees.max_fee_per_gas, cap))
        priority = max(priority, fees.max_priority_fee_per_gas)
    return max_fee, min(priority, max_fee)


def _replace(
    state: EnclaveState,
    tx: InFlightTransaction,
    view: AccountView,
    config: EnclaveConfig,
    signer: AccountSigner,
    fees: FeeHint | None,
    write_receipt: ReceiptWriter,
) -> bool:
    offer = replacement_fees(tx, config, fees)
    facts: dict[str, object] = {
        "replaces_receipt_seq": tx.original_receipt_seq,
        "nonce": tx.nonce,
        "original_tx": "0x" + tx.original_tx_hash,
        "replaced_tx": "0x" + tx.tx_hash,
        "signed_block": tx.signed_block,
        "block_number": state.chain_block,
        "mined_nonce": view.mined_nonce,
        "pending_nonce": view.pending_nonce,
    }
    if offer is None:
        if not tx.stuck_reported:
            cap = int(config.guardrails.max_fee_per_gas_gwei * GWEI)
            facts |= {"needed_max_fee_per_gas": bumped(tx.max_fee_per_gas), "fee_cap": cap}
            write_receipt(f"{STUCK_AT_FEE_CAP}{tx.original_receipt_seq}", _json(facts), bytes(32))
            tx.stuck_reported = True
        return False
    max_fee, priority = offer
    signed = signer.sign_transaction(
        Eip1559Transaction(
            chain_id=tx.chain_id,
            nonce=tx.nonce,
            max_priority_fee_per_gas=priority,
            max_fee_per_gas=max_fee,
            gas=tx.gas,
            to=bytes.fromhex(tx.to[2:]),
            value=tx.value,
            data=bytes.fromhex(tx.data),
        )
    )
    facts |= {"max_fee_per_gas": max_fee, "max_priority_fee_per_gas": priority}
    seq = write_receipt(f"{REPLACED}{tx.original_receipt_seq}", _json(facts), signed.hash)
    state.pending_transactions.append(
        PendingTransaction(
            state_version=0,
            raw_transaction=signed.raw_transaction.hex(),
            tx_hash=signed.hash.hex(),
            nonce=tx.nonce,
            receipt_seq=seq,
        )
    )
    tx.max_fee_per_gas, tx.max_priority_fee_per_gas = max_fee, priority
    tx.tx_hash, tx.receipt_seq = signed.hash.hex(), seq
    tx.signed_block, tx.stuck_reported = state.chain_block, False
    return True


def _json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
