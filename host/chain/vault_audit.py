"""Judging an agent's receipts against what the chain records of it and of its vault.

Each function takes what `host.chain.vault_record` read and the agent's receipts, and
returns a `Finding`: passed or not, and a detail a person can act on. `host.chain.audit`
names them (`AuditCheck`) and puts them in its report. A trade through the vault carries
the sequence number and EIP-712 digest of the receipt the enclave made for it first (that
receipt has the verdict "signed" and 32 zero bytes for its transaction hash, since the
transaction holds the receipt's digest), so the chain links every trade to its receipt.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from eth_utils import to_checksum_address

from attestation.errors import ReceiptFormatError
from attestation.receipt import Receipt, receipt_hash
from host.chain.vault import Trade
from host.chain.vault_record import SentTransaction, TokenMove, VaultRecord, VaultSwap

NO_TX: Final = bytes(32)
# The verdict of a receipt under which the enclave signed a transaction (enclave.decisions).
SIGNED: Final = "signed"
# How many items a detail lists before it only counts them.
_SHOWN: Final = 5


@dataclass(frozen=True)
class Finding:
    """A check's outcome, before `host.chain.audit` names it."""

    passed: bool
    detail: str


def receipts_by_digest(receipts: Sequence[Receipt], chain_id: int) -> dict[bytes, Receipt]:
    """Each receipt by its EIP-712 digest on `chain_id` (empty when the chain ID is not a
    positive uint256: the receipt chain check reports that)."""
    try:
        return {receipt_hash(receipt, chain_id): receipt for receipt in receipts}
    except ReceiptFormatError:
        return {}


def vault_receipts(receipts: Sequence[Receipt]) -> list[Receipt]:
    """The receipts of vault trades: verdict "signed" and no transaction hash."""
    return [r for r in receipts if r.verdict == SIGNED and r.tx_hash == NO_TX]


def receipts_carried_by_swaps(digests: dict[bytes, Receipt], record: VaultRecord) -> Finding:
    """Every vault receipt's digest travels, with its seq, in a swap the agent sent to the
    vault; a reverted swap counts (the receipt is on chain) and is named."""
    carriers: dict[bytes, list[VaultSwap]] = defaultdict(list)
    for swap in record.swaps.values():
        carriers[swap.receipt_digest].append(swap)
    wanted = [(d, r) for d, r in digests.items() if r.verdict == SIGNED and r.tx_hash == NO_TX]
    missing: list[str] = []
    wrong_seq: list[str] = []
    reverted: list[str] = []
    for digest, receipt in sorted(wanted, key=lambda item: item[1].seq):
        swaps = carriers.get(digest, [])
        if not swaps:
            missing.append(f"seq {receipt.seq} (digest 0x{digest.hex()})")
            continue
        wrong_seq.extend(
            f"seq {receipt.seq}'s digest travels with receiptSeq {swap.receipt_seq} "
            f"(tx 0x{swap.tx_hash.hex()})"
            for swap in swaps
            if swap.receipt_seq != receipt.seq
        )
        if not any(swap.mined for swap in swaps):
            reverted.append(f"seq {receipt.seq} (tx 0x{swaps[-1].tx_hash.hex()})")
    problems = []
    if missing:
        problems.append(
            f"{len(missing)} signed receipt(s) with no swap to the vault carrying their digest "
            f"(never broadcast, or sent before the first block scanned): {_list(missing)}"
        )
    problems.extend(wrong_seq[:_SHOWN])
    if problems:
        return Finding(False, "; ".join(problems))
    detail = f"all {len(wanted)} vault trade receipts travel in a swap the agent sent to the vault"
    if reverted:
        detail += f"; {len(reverted)} of those swaps reverted: {_list(reverted)}"
    return Finding(True, detail)


def transactions_have_receipts(
    sent: Sequence[SentTransaction],
    receipts: Sequence[Receipt],
    digests: dict[bytes, Receipt],
    address: str,
    record: VaultRecord | None,
) -> Finding:
    """Every transaction `address` sent is a vault swap carrying the seq and digest of a
    "signed" receipt, one transaction per receipt, or (not to the vault) has a receipt
    naming its hash."""
    hashes = {r.tx_hash for r in receipts if r.tx_hash != NO_TX}
    unrecorded, problems = [], []
    carried: dict[bytes, list[bytes]] = defaultdict(list)
    for tx in sent:
        if record is None or tx.to != record.address:
            if tx.tx_hash not in hashes:
                unrecorded.append("0x" + tx.tx_hash.hex())
            continue
        swap = record.swaps.get(tx.tx_hash)
        if swap is None:
            problems.append(
                f"0x{tx.tx_hash.hex()} calls the vault with selector 0x{tx.data[:4].hex()}, "
                "which is not swap"
            )
            continue
        problem = _receipt_problem(digests, swap.receipt_digest, swap.receipt_seq)
        if problem:
            problems.append(f"0x{tx.tx_hash.hex()} {problem}")
        else:
            carried[swap.receipt_digest].append(tx.tx_hash)
    for digest, txs in carried.items():
        if len(txs) > 1:
            problems.append(
                f"receipt seq {digests[digest].seq} travels in {len(txs)} transactions "
                f"({', '.join('0x' + h.hex() for h in txs[:_SHOWN])}): the enclave signs one"
            )
    if unrecorded:
        where = "" if record is None else ", not to the vault,"
        text = (
            f"{len(unrecorded)} transaction(s) from the agent's address{where} have no receipt: "
            + ", ".join(unrecorded[:_SHOWN])
        )
        if record is None and vault_receipts(receipts):
            text += (
                " (the receipts of its signed decisions carry no transaction hash, as a vault"
                " agent's do: pass --vault ADDRESS)"
            )
        problems.insert(0, text)
    if problems:
        return Finding(False, "; ".join(problems[: _SHOWN + 1]))
    swaps = sum(len(txs) for txs in carried.values())
    detail = f"all {len(sent)} transactions from {address} have a receipt"
    if record is not None:
        detail += f" ({swaps} of them vault swaps carrying their receipt's seq and digest)"
    return Finding(True, detail)


def trades_have_receipts(
    record: VaultRecord, digests: dict[bytes, Receipt], address: str
) -> Finding:
    """Every Traded event of the vault is the attested agent's, carries the digest and seq of
    one of its "signed" receipts, and pays what the agent's swap call says."""
    agent = to_checksum_address(address)
    foreign, problems, ours = [], [], 0
    for trade in record.trades:
        where = f"tx 0x{trade.tx_hash.hex()} (block {trade.block})"
        if trade.agent != agent:
            foreign.append(f"{trade.agent} with receipt seq {trade.receipt_seq} in {where}")
            continue
        ours += 1
        problem = _receipt_problem(digests, trade.receipt_digest, trade.receipt_seq)
        if problem:
            problems.append(f"{where} {problem}")
        swap = record.swaps.get(trade.tx_hash)
        if swap is None:
            problems.append(f"{where} is no swap call the agent sent in the blocks scanned")
        elif (swap.token_in, swap.token_out, swap.amount_in) != (
            trade.token_in,
            trade.token_out,
            trade.amount_in,
        ):
            problems.append(
                f"{where} traded {trade.amount_in} of {trade.token_in} for {trade.token_out}, "
                f"its call said {swap.amount_in} of {swap.token_in} for {swap.token_out}"
            )
    if foreign:
        problems.append(
            f"{len(foreign)} trade(s) by an agent other than the attested {agent}: "
            f"{_list(foreign)} (verify each agent with its own receipts, or scan from a block "
            "after it was revoked)"
        )
    if problems:
        return Finding(False, "; ".join(problems[: _SHOWN + 1]))
    return Finding(
        True, f"all {ours} trades of the vault are the agent's, each under one of its receipts"
    )


def agents_attested(record: VaultRecord, address: str, config_hash: bytes) -> Finding:
    """The attested address is registered and active on the vault with the attested config
    hash, and no other agent is active."""
    agent = to_checksum_address(address)
    problems = []
    registered = record.agents.get(agent)
    if registered is None:
        problems.append(f"the attested address {agent} is not registered on the vault")
    elif not registered.active:
        problems.append(f"the attested address {agent} was revoked on the vault")
    elif registered.config_hash != config_hash:
        problems.append(
            f"{agent} is registered with config hash 0x{registered.config_hash.hex()}, the "
            f"attestation binds 0x{config_hash.hex()}: the owner registered another config"
        )
    others = sorted(a for a, r in record.agents.items() if r.active and a != agent)
    if others:
        problems.append(
            f"{len(others)} other active agent(s): {_list(others)} (a vault with several agents"
            " is verified agent by agent: run `verify agent` for each with its own receipts)"
        )
    if problems or registered is None:
        return Finding(False, "; ".join(problems))
    return Finding(
        True,
        f"{agent} is the vault's only active agent, registered with the attested config hash "
        f"(caps {registered.cap_per_trade} per trade, {registered.cap_per_day} per 24 hours, "
        "in the quote token's smallest units)",
    )


def outflows_explained(record: VaultRecord) -> Finding:
    """Every transfer out of the vault, in its quote token or a base token it ever allowed,
    is a trade's payment into its market's pair or an owner's withdrawal, in the same
    transaction and for the same token, recipient and amount."""
    trades: dict[bytes, list[Trade]] = defaultdict(list)
    for trade in record.trades:
        trades[trade.tx_hash].append(trade)
    withdrawals: dict[bytes, list[TokenMove]] = defaultdict(list)
    for withdrawal in record.withdrawals:
        withdrawals[withdrawal.tx_hash].append(withdrawal)
    paid, withdrawn = 0, 0
    unexplained: list[str] = []
    for move in record.outflows:
        payment = next((t for t in trades[move.tx_hash] if _pays(record, t, move)), None)
        if payment is not None:
            trades[move.tx_hash].remove(payment)  # one trade accounts for one transfer
            paid += 1
            continue
        if move in withdrawals[move.tx_hash]:
            withdrawals[move.tx_hash].remove(move)
            withdrawn += 1
            continue
        unexplained.append(
            f"{move.amount} of {move.token} to {move.to} in tx 0x{move.tx_hash.hex()}"
        )
    if unexplained:
        return Finding(
            False,
            f"{len(unexplained)} transfer(s) out of the vault with neither a trade nor an owner "
            f"withdrawal of that token, recipient and amount in the same transaction: "
            f"{_list(unexplained)}",
        )
    return Finding(
        True,
        f"{len(record.outflows)} transfer(s) out of the vault in {1 + len(record.markets)} "
        f"token(s): {paid} paid into a pool by a trade, {withdrawn} owner withdrawal(s), "
        "nothing else",
    )


def code_is_the_vault(record: VaultRecord) -> Finding:
    """The code at the vault's address is the committed GuardedVault's."""
    if record.code_problem is not None:
        return Finding(False, record.code_problem)
    return Finding(True, f"the code at {record.address} is the committed GuardedVault's")


def _pays(record: VaultRecord, trade: Trade, move: TokenMove) -> bool:
    """Whether `move` is `trade`'s payment: its token in, its amount in, to its market's pair."""
    base = trade.token_out if trade.token_in == record.quote_token else trade.token_in
    return (
        move.token == trade.token_in
        and move.amount == trade.amount_in
        and move.to in record.markets.get(base, frozenset())
    )


def _receipt_problem(digests: dict[bytes, Receipt], digest: bytes, seq: int) -> str | None:
    """What is wrong with a (receiptSeq, receiptDigest) pair the chain carries, or None."""
    receipt = digests.get(digest)
    if receipt is None:
        return f"carries receipt digest 0x{digest.hex()} (seq {seq}) that no receipt has"
    if receipt.seq != seq:
        return f"carries receipt seq {seq} with the digest of seq {receipt.seq}"
    if receipt.verdict != SIGNED:
        return f"carries the digest of seq {seq}, whose verdict is {receipt.verdict!r}"
    return None


def _list(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_SHOWN])
    return shown if len(items) <= _SHOWN else f"{shown} and {len(items) - _SHOWN} more"
