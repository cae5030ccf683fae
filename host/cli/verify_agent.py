"""`tee-agent verify agent`: audit an agent end to end, from its attestation to the chain.

    tee-agent verify agent --rpc URL (--host ADDR | --receipts FILE --attestation FILE)
                           [--trust-root PEM]... [--policy FILE] [--at RFC3339]
                           [--from-block N] [--vault ADDRESS] [--json]

With --host, the quote (over a fresh nonce), the receipts and the head hash come from a
running agent. With --receipts, they come from files: `tee-agent receipts --out FILE` and
`tee-agent attest --out FILE`. Each receipt's decision and input texts (from the agent, or
in the file) must hash to what the receipt signed. With --vault, the agent trades through that guarded vault:
its trades are linked to receipts by digest, and the vault itself is checked (its code, its
active agents, its trades, what left it). Exit codes as `verify quote`: 0 everything holds,
1 a check fails, 2 the input cannot be used. (The same text is its help: host.cli.parser.)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import grpc
from tee_agent_rpc import agent_pb2 as pb
from tee_agent_rpc import agent_pb2_grpc as pb_grpc
from web3 import Web3

from attestation.binding import AgentAttestation
from attestation.errors import PolicyFormatError
from attestation.jsontext import loads_bounded
from attestation.policy import load_policy
from attestation.receipt import Receipt
from attestation.receipt_texts import ReceiptTexts
from host.chain.audit import audit_agent
from host.cli.arguments import parse_at, trust_anchors
from host.cli.outcome import EXIT_CHECK_FAILED, EXIT_OK, EXIT_USAGE, UsageError, print_json
from wire.errors import MalformedMessage
from wire.identity import identity_from_message
from wire.records import receipt_record

# The texts `tee-agent receipts --out` writes beside each receipt's fields.
_TEXTS = ("decision_json", "input_json")


class _Unusable(Exception):
    """The input cannot be used (a file, the chain, the agent): exit 2."""


def run(args: argparse.Namespace) -> int:
    """Carry out `verify agent`; print the report; return the exit code (see above)."""
    try:
        return _audit(args)
    except _Unusable as exc:
        print(f"error: {exc}", file=sys.stderr)
        if args.json:
            print_json({"valid": False, "error": str(exc), "checks": []})
        return EXIT_USAGE


def _audit(args: argparse.Namespace) -> int:
    try:
        at = parse_at(args.at)
        anchors = trust_anchors(args.trust_root)
        policy = load_policy(args.policy) if args.policy else None
    except (UsageError, PolicyFormatError) as exc:
        raise _Unusable(str(exc)) from None
    if args.vault is not None and not Web3.is_address(args.vault):
        raise _Unusable(f"--vault must be an address, 0x and 40 hex digits: {args.vault!r}")
    head: bytes | None
    texts: list[ReceiptTexts] | None
    if args.host:
        evidence, receipts, texts, head = _from_host(args.host)
    else:
        if args.attestation is None:
            raise _Unusable(
                "--receipts needs --attestation FILE (written by `tee-agent attest --out`)"
            )
        evidence, receipts, texts = _from_files(args.receipts, args.attestation)
        head = None
    w3 = Web3(Web3.HTTPProvider(args.rpc, request_kwargs={"timeout": 30}))
    try:
        chain_id = w3.eth.chain_id
    except Exception as exc:
        raise _Unusable(f"cannot reach the chain at {args.rpc}: {exc}") from None
    if chain_id != evidence.identity.chain_id:
        raise _Unusable(
            f"{args.rpc} is chain {chain_id}, the agent signs for {evidence.identity.chain_id}"
        )
    report = audit_agent(
        evidence, receipts, w3, anchors=anchors, at=at, policy=policy,
        expected_head_hash=head, from_block=args.from_block, vault=args.vault, texts=texts,
    )  # fmt: skip
    if args.json:
        print_json(report.as_dict())
    else:
        vault = "" if report.vault is None else f", {report.vault_trades} trades in {report.vault}"
        print(f"{'VALID' if report.valid else 'INVALID'}: agent {report.address}, "
              f"{report.receipts} receipts, {report.transactions_on_chain} transactions on chain"
              f"{vault}")  # fmt: skip
        for check in report.checks:
            print(f"  {'ok  ' if check.passed else 'FAIL'} {check.name}: {check.detail}")
    return EXIT_OK if report.valid else EXIT_CHECK_FAILED


def _from_host(
    address: str,
) -> tuple[AgentAttestation, list[Receipt], list[ReceiptTexts], bytes]:
    """The attestation over a fresh nonce, the receipts with their texts (empty where the
    agent sent none), and the head hash, from a running agent."""
    nonce = os.urandom(32)
    try:
        with grpc.insecure_channel(address) as channel:
            stub = pb_grpc.AgentStub(channel)
            answer = stub.GetAttestation(pb.GetAttestationRequest(nonce=nonce), timeout=60)
            head = stub.GetStatus(pb.GetStatusRequest(), timeout=30).head_hash
            events, seq = [], 1
            while True:
                page = stub.ListReceipts(
                    pb.ListReceiptsRequest(from_seq=seq, limit=1000), timeout=60
                )
                events.extend(page.receipts)
                if len(page.receipts) < 1000:
                    break
                seq = page.receipts[-1].receipt.seq + 1
    except grpc.RpcError as exc:
        raise _Unusable(f"cannot reach the agent at {address}: {exc.details()}") from None
    try:
        identity = identity_from_message(answer.identity)
        records = [receipt_record(event.receipt) for event in events]
    except MalformedMessage as exc:
        raise _Unusable(f"the agent at {address} sent a malformed {exc}") from None
    texts = [ReceiptTexts(decision_json=r.decision_json, input_json=r.input_json) for r in records]
    evidence = AgentAttestation(quote=answer.quote, nonce=nonce, identity=identity)
    return evidence, [r.receipt for r in records], texts, head


def _from_files(
    receipts_file: Path, attestation_file: Path
) -> tuple[AgentAttestation, list[Receipt], list[ReceiptTexts] | None]:
    """The attestation, the receipts and their texts from files. A file of bare receipts
    (no item has a text) has no texts to check: None; otherwise an item without one holds
    it back, as an empty text."""
    try:
        raw = loads_bounded(receipts_file.read_text(encoding="utf-8"))
        items = raw if isinstance(raw, list) else [raw]
        receipts = [
            Receipt.from_json_dict({k: v for k, v in item.items()
                                    if k not in (*_TEXTS, "receipt_hash", "transaction")})
            for item in items
        ]  # fmt: skip
        texts = None
        if any(name in item for item in items for name in _TEXTS):
            texts = [
                ReceiptTexts.model_validate({name: item.get(name, "") for name in _TEXTS})
                for item in items
            ]
        attestation = AgentAttestation.from_file_dict(
            loads_bounded(attestation_file.read_text(encoding="utf-8"))
        )
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise _Unusable(f"cannot read the receipts or attestation file: {exc}") from None
    return attestation, receipts, texts
