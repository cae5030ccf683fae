"""End-to-end audit of an agent: attestation, receipt chain, and the chain's own record.

Given a quote with the identity it binds, the agent's receipts, and a node of the chain the
agent signs for, check that:
1. the quote is genuine and binds the address, the X25519 key and the config hash; the event
   log served with it, when there is one, replays to its RTMR0-3 (`event_log_digests`,
   `event_log_replay`, as `verify quote --event-log` checks) and records that config hash
   (`event_log_binds_identity`); and, with a policy, its measurements, TCB and (`[event_log]`)
   logged events are acceptable;
2. the receipts are signed by that address, in sequence, each linked to the one before,
   and the decision and input texts served with them (when given) hash to what each signed;
3. every receipt with a transaction hash names a transaction on chain, sent from that address;
4. every transaction that address sent has a receipt (nothing was signed off the record), and
   one the enclave signed again at a higher fee is on chain only as the original or as a
   replacement a receipt names (`host.chain.replacement_audit`).

With the address of the agent's guarded vault, a trade's receipt carries no transaction hash
(the transaction carries the receipt's digest instead), and the audit also checks the vault:
its code, that the attested address is its one active agent with the attested config hash,
that every Traded event links to a receipt, and that nothing left it but through trades and
owner withdrawals (`host.chain.vault_audit`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import TransactionNotFound

from attestation.binding import AgentAttestation, check_binding
from attestation.checks import POLICY_CHECKS, CheckName
from attestation.event_log import verify_served_event_log
from attestation.policy import ValidationPolicy, validate
from attestation.policy_event_log import identity_events_check
from attestation.receipt import Receipt
from attestation.receipt_chain import verify_receipts
from attestation.receipt_texts import ReceiptTexts, check_receipt_texts
from attestation.report import Check, CheckList
from attestation.trust import TrustAnchors
from attestation.verifier import verify_evidence
from host.chain import vault_audit
from host.chain.replacement_audit import is_replacement, replacements_have_receipts
from host.chain.vault import VaultError
from host.chain.vault_audit import NO_TX, Finding
from host.chain.vault_record import VaultRecord, read_vault_record, transactions_from

# The checks of a served event log, named as `verify quote --event-log` names them.
_EVENT_LOG_CHECKS = (CheckName.EVENT_LOG_DIGESTS, CheckName.EVENT_LOG_REPLAY)


class AuditCheck(StrEnum):
    """The checks `audit_agent` makes itself, beside the report_data binding it appends."""

    ATTESTATION = "attestation"
    ATTESTATION_POLICY = "attestation_policy"
    RECEIPT_CHAIN = "receipt_chain"
    # Only when the receipts' texts are given (`verify agent` always has them but from a
    # file of bare receipts).
    RECEIPT_TEXTS = "receipt_texts"
    RECEIPTS_ON_CHAIN = "receipts_on_chain"
    TRANSACTIONS_HAVE_RECEIPTS = "transactions_have_receipts"
    NONCE_ACCOUNTS_FOR_EVERY_TRANSACTION = "nonce_accounts_for_every_transaction"
    # A transaction signed again at a higher fee is on chain only under its own receipt
    # (host.chain.replacement_audit).
    REPLACEMENTS_HAVE_RECEIPTS = "replacements_have_receipts"
    # With a vault (host.chain.vault_audit):
    VAULT_CODE = "vault_code"
    VAULT_AGENTS_ATTESTED = "vault_agents_attested"
    VAULT_TRADES_HAVE_RECEIPTS = "vault_trades_have_receipts"
    VAULT_OUTFLOWS = "vault_outflows"


@dataclass(frozen=True)
class AuditReport:
    valid: bool
    checks: list[Check]
    address: str
    receipts: int
    transactions_on_chain: int
    attestation: dict[str, object]
    # The vault audited beside the agent, and the Traded events found in it.
    vault: str | None = None
    vault_trades: int = 0
    # The served event log as `verify quote` reports it (verified, rtmrs, events); None
    # when the agent served none.
    event_log: dict[str, object] | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "valid": self.valid,
            "address": self.address,
            "receipts": self.receipts,
            "transactions_on_chain": self.transactions_on_chain,
            "vault": self.vault,
            "vault_trades": self.vault_trades,
            "checks": [check.model_dump() for check in self.checks],
            "error": next((f"{c.name}: {c.detail}" for c in self.checks if not c.passed), None),
            "attestation": self.attestation,
            "event_log": self.event_log,
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
    vault: str | None = None,
    texts: Sequence[ReceiptTexts] | None = None,
) -> AuditReport:
    """Run every check (the vault's too, given its address; the texts', given one per
    receipt); never raises for what the evidence or the chain says.

    Raises:
        pydantic.ValidationError: the claimed address is not 0x and 40 hex digits.
        ValueError: `vault` is not 0x and 40 hex digits, or `texts` not one per receipt.
    """
    checks = CheckList()
    claimed = evidence.identity
    report = verify_evidence(evidence.quote, at=at, anchors=anchors)
    checks.add(
        AuditCheck.ATTESTATION,
        report.valid,
        f"{report.tee} quote verifies" if report.valid else f"quote: {report.error}",
    )
    report = verify_served_event_log(report, evidence.event_log)
    checks.extend(c for c in report.checks if c.name in _EVENT_LOG_CHECKS)
    if report.event_log is not None and report.event_log.verified:
        checks.append(identity_events_check(report, claimed.binding()))
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
    if texts is not None:
        checks.add(AuditCheck.RECEIPT_TEXTS, *check_receipt_texts(receipts, texts))

    # One block for every read, so that a block mined meanwhile cannot split the picture.
    to_block = w3.eth.block_number
    on_chain = transactions_from(w3, claimed.address, from_block, to_block)
    digests = vault_audit.receipts_by_digest(receipts, claimed.chain_id)
    record, vault_problem = None, None
    if vault is not None:
        if not Web3.is_address(vault):
            raise ValueError(f"the vault address must be 0x and 40 hex digits, got {vault!r}")
        try:
            record = read_vault_record(w3, vault, on_chain, from_block, to_block)
        except VaultError as exc:
            vault_problem = str(exc)

    on_chain_finding = _receipts_with_hashes_on_chain(w3, receipts, claimed.address)
    if record is not None:
        carried = vault_audit.receipts_carried_by_swaps(digests, record)
        on_chain_finding = _both(on_chain_finding, carried, receipts)
    elif vault_problem is not None:
        on_chain_finding = _both(on_chain_finding, Finding(False, vault_problem), receipts)
    checks.add(AuditCheck.RECEIPTS_ON_CHAIN, on_chain_finding.passed, on_chain_finding.detail)
    sent = vault_audit.transactions_have_receipts(
        on_chain, receipts, digests, claimed.address, record
    )
    if vault_problem is not None:  # the agent's calls to it cannot be told apart
        sent = Finding(False, vault_problem)
    checks.add(AuditCheck.TRANSACTIONS_HAVE_RECEIPTS, sent.passed, sent.detail)
    again = replacements_have_receipts(receipts, texts, on_chain, record)
    checks.add(AuditCheck.REPLACEMENTS_HAVE_RECEIPTS, again.passed, again.detail)
    nonce = w3.eth.get_transaction_count(Web3.to_checksum_address(claimed.address), to_block)
    checks.add(
        AuditCheck.NONCE_ACCOUNTS_FOR_EVERY_TRANSACTION,
        nonce == len(on_chain),
        f"the address's nonce is {nonce} and {len(on_chain)} transactions from it were found"
        + ("" if nonce == len(on_chain) else " (scan from block 0, or a transaction is missing)"),
    )
    if vault is not None:
        _vault_checks(checks, record, vault_problem, claimed.address, claimed.config_hash, digests)
    return AuditReport(
        valid=checks.all_passed,
        checks=checks.items,
        address=claimed.address,
        receipts=len(receipts),
        transactions_on_chain=len(on_chain),
        attestation=report.model_dump(mode="json"),
        vault=None if vault is None else Web3.to_checksum_address(vault),
        vault_trades=0 if record is None else len(record.trades),
        event_log=None if report.event_log is None else report.event_log.model_dump(mode="json"),
    )


def _receipts_with_hashes_on_chain(w3: Web3, receipts: list[Receipt], address: str) -> Finding:
    """Every receipt with a transaction hash names a transaction on chain from `address` (but
    a replacement's: only one version of a nonce is mined, `replacements_have_receipts`)."""
    signed = {r.tx_hash: r.seq for r in receipts if r.tx_hash != NO_TX and not is_replacement(r)}
    missing, foreign_sender = [], []
    for tx_hash, seq in signed.items():
        try:
            tx = w3.eth.get_transaction(HexBytes(tx_hash))
        except TransactionNotFound:
            missing.append(f"seq {seq} ({tx_hash.hex()})")
            continue
        if str(tx["from"]).lower() != address.lower():
            foreign_sender.append(f"seq {seq} was sent by {tx['from']}")
    if not missing and not foreign_sender:
        return Finding(
            True, f"all {len(signed)} signed receipts name a transaction on chain from the agent"
        )
    return Finding(
        False,
        "; ".join([f"not on chain: {', '.join(missing[:5])}"] * bool(missing) + foreign_sender[:5]),
    )


def _both(hashed: Finding, vault: Finding, receipts: list[Receipt]) -> Finding:
    """The receipts with a transaction hash, and the vault's, as one finding."""
    if not any(r.tx_hash != NO_TX and not is_replacement(r) for r in receipts):
        return vault
    if hashed.passed and vault.passed:
        return Finding(True, f"{hashed.detail}; {vault.detail}")
    return Finding(False, "; ".join(f.detail for f in (hashed, vault) if not f.passed))


def _vault_checks(
    checks: CheckList,
    record: VaultRecord | None,
    problem: str | None,
    address: str,
    config_hash: bytes,
    digests: dict[bytes, Receipt],
) -> None:
    """Add the vault's own checks; each fails with `problem` when it could not be read."""
    names = (
        AuditCheck.VAULT_CODE,
        AuditCheck.VAULT_AGENTS_ATTESTED,
        AuditCheck.VAULT_TRADES_HAVE_RECEIPTS,
        AuditCheck.VAULT_OUTFLOWS,
    )
    if record is None:
        for name in names:
            checks.add(name, False, problem or "the vault was not read")
        return
    findings = (
        vault_audit.code_is_the_vault(record),
        vault_audit.agents_attested(record, address, config_hash),
        vault_audit.trades_have_receipts(record, digests, address),
        vault_audit.outflows_explained(record),
    )
    for name, finding in zip(names, findings, strict=True):
        checks.add(name, finding.passed, finding.detail)
