"""End-to-end audit of an agent: attestation, receipt chain, and the chain's own record.

Given a quote with the identity it binds, the agent's receipts, and a node of the chain the
agent signs for, check that:
1. the quote is genuine and binds the address, the X25519 key and the config hash (and, with
   a policy, that its measurements and TCB are acceptable);
2. the receipts are signed by that address, in sequence, each linked to the one before;
3. every receipt with a transaction hash names a transaction on chain, sent from that address;
4. every transaction that address sent has a receipt (nothing was signed off the record).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import TransactionNotFound

from attestation.binding import AgentAttestation, check_binding
from attestation.checks import POLICY_CHECKS
from attestation.policy import ValidationPolicy, validate
from attestation.receipt import Receipt
from attestation.receipt_chain import verify_receipts
from attestation.report import Check, CheckList
from attestation.trust import TrustAnchors
from attestation.verifier import verify_evidence

NO_TX = bytes(32)


class AuditCheck(StrEnum):
    """The checks `audit_agent` makes itself, beside the report_data binding it appends."""

    ATTESTATION = "attestation"
    ATTESTATION_POLICY = "attestation_policy"
    RECEIPT_CHAIN = "receipt_chain"
    RECEIPTS_ON_CHAIN = "receipts_on_chain"
    TRANSACTIONS_HAVE_RECEIPTS = "transactions_have_receipts"
    NONCE_ACCOUNTS_FOR_EVERY_TRANSACTION = "nonce_accounts_for_every_transaction"


@dataclass(frozen=True)
class AuditReport:
    valid: bool
    checks: list[Check]
    address: str
    receipts: int
    transactions_on_chain: int
    attestation: dict[str, object]

    def as_dict(self) -> dict[str, object]:
        return {
            "valid": self.valid,
            "address": self.address,
            "receipts": self.receipts,
            "transactions_on_chain": self.transactions_on_chain,
            "checks": [check.model_dump() for check in self.checks],
            "error": next((f"{c.name}: {c.detail}" for c in self.checks if not c.passed), None),
            "attestation": self.attestation,
        }


def audit_agent(
    evidence: AgentAttestation,
    receipts: list[Receipt],
    w3: Web3,
    *,
    anchors: TrustAnchors,
    at: datetime,
    policy: ValidationPolicy | None = None,
    expected_head_hash: bytes | None = None,
    from_block: int = 0,
) -> AuditReport:
    """Run every check; never raises for what the evidence or the chain says.

    Raises:
        pydantic.ValidationError: the claimed address is not 0x and 40 hex digits.
    """
    checks = CheckList()
    claimed = evidence.identity
    report = verify_evidence(evidence.quote, at=at, anchors=anchors)
    checks.add(
        AuditCheck.ATTESTATION,
        report.valid,
        f"{report.tee} quote verifies" if report.valid else f"quote: {report.error}",
    )
    if policy is not None:
        report = validate(report, policy, at=at, nonce=evidence.nonce)
        failed = [c for c in report.checks if c.name in POLICY_CHECKS and not c.passed]
        checks.add(
            AuditCheck.ATTESTATION_POLICY,
            bool(report.policy_ok),
            "measurements, TCB status and debug flag accepted by the policy"
            if report.policy_ok
            else "; ".join(f"{c.name}: {c.detail}" for c in failed) or "policy not satisfied",
        )
    binding = check_binding(report.report_data, claimed.binding(), evidence.nonce)
    checks.append(binding)

    chain = verify_receipts(
        receipts,
        address=claimed.address,
        chain_id=claimed.chain_id,
        config_hash=claimed.config_hash,
        expected_head_hash=expected_head_hash,
    )
    checks.add(
        AuditCheck.RECEIPT_CHAIN,
        chain.valid,
        f"{chain.count} receipts signed by {claimed.address}, in sequence and linked"
        if chain.valid
        else chain.error or "the receipt chain does not verify",
    )

    on_chain = _transactions_from(w3, claimed.address, from_block)
    signed = {r.tx_hash: r.seq for r in receipts if r.tx_hash != NO_TX}
    missing, foreign_sender = [], []
    for tx_hash, seq in signed.items():
        try:
            tx = w3.eth.get_transaction(HexBytes(tx_hash))
        except TransactionNotFound:
            missing.append(f"seq {seq} ({tx_hash.hex()})")
            continue
        if str(tx["from"]).lower() != claimed.address.lower():
            foreign_sender.append(f"seq {seq} was sent by {tx['from']}")
    checks.add(
        AuditCheck.RECEIPTS_ON_CHAIN,
        not missing and not foreign_sender,
        f"all {len(signed)} signed receipts name a transaction on chain from the agent"
        if not missing and not foreign_sender
        else "; ".join(
            [f"not on chain: {', '.join(missing[:5])}"] * bool(missing) + foreign_sender[:5]
        ),
    )
    unrecorded = sorted(set(on_chain) - set(signed))
    checks.add(
        AuditCheck.TRANSACTIONS_HAVE_RECEIPTS,
        not unrecorded,
        f"all {len(on_chain)} transactions from {claimed.address} have a receipt"
        if not unrecorded
        else f"{len(unrecorded)} transaction(s) from the agent's address have no receipt: "
        + ", ".join("0x" + h.hex() for h in unrecorded[:5]),
    )
    nonce = w3.eth.get_transaction_count(Web3.to_checksum_address(claimed.address))
    checks.add(
        AuditCheck.NONCE_ACCOUNTS_FOR_EVERY_TRANSACTION,
        nonce == len(on_chain),
        f"the address's nonce is {nonce} and {len(on_chain)} transactions from it were found"
        + ("" if nonce == len(on_chain) else " (scan from block 0, or a transaction is missing)"),
    )
    return AuditReport(
        valid=checks.all_passed,
        checks=checks.items,
        address=claimed.address,
        receipts=len(receipts),
        transactions_on_chain=len(on_chain),
        attestation=report.model_dump(mode="json"),
    )


def _transactions_from(w3: Web3, address: str, from_block: int) -> list[bytes]:
    """Hashes of every transaction `address` sent, from `from_block` to the latest block."""
    wanted = address.lower()
    found = []
    for number in range(from_block, w3.eth.block_number + 1):
        block = w3.eth.get_block(number, full_transactions=True)
        for tx in block["transactions"]:
            if isinstance(tx, bytes):  # hash-only entries: full_transactions was not honoured
                continue
            if str(tx["from"]).lower() == wanted:
                found.append(bytes(tx["hash"]))
    return found
