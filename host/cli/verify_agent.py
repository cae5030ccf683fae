"""`tee-agent verify agent`: audit an agent end to end, from its attestation to the chain.

    tee-agent verify agent --rpc URL (--host ADDR | --receipts FILE --attestation FILE)
                           [--trust-root PEM]... [--policy FILE] [--at RFC3339]
                           [--from-block N] [--vault ADDRESS] [--json]

With --host, the quote (over a fresh nonce) with its event log, the receipts and the head
hash come from a running agent. With --receipts, they come from files: `tee-agent receipts
--out FILE` and `tee-agent attest --out FILE`. A non-empty event log must replay to the
quote's RTMR0-3 (as `verify quote --event-log` checks) and record the attested config hash;
a policy's [event_log] rules read it, and fail without one; the JSON carries it as `verify
quote` does (`event_log`: verified, rtmrs, events; null for none). Each receipt's decision
and input texts (from the agent, or in the file) must hash to what the receipt signed. With
--vault, the agent trades through that guarded vault: its trades are linked to receipts by
digest, and the vault itself is checked (its code, its active agents, its trades, what left
it). Exit codes as `verify quote`: 0 everything holds, 1 a check fails, 2 the input cannot
be used. (Much the same text is its help: host.cli.parser.)
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
from attestation.policy import load_policy
from attestation.receipt import Receipt
from attestation.receipt_texts import ReceiptTexts
from enclave.config import ConfigError, load_config
from host.chain.audit import audit_agent
from host.cli.arguments import parse_at, trust_anchors
from host.cli.evidence_files import read_attestation_file, read_receipts_file
from host.cli.outcome import EXIT_CHECK_FAILED, EXIT_OK, EXIT_USAGE, UsageError, print_json
from host.config import HostConfigError, load_host_config
from wire.errors import MalformedMessage
from wire.identity import attestation_from_message
from wire.records import receipt_record


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


def _take_defaults(args: argparse.Namespace) -> None:
    """--rpc, --host and --vault from the agent's config where not given: its [chain]
    rpc_url, [host] listen, and its enclave config's vault (unless the zero placeholder).

    Raises:
        _Unusable: the config cannot be read, or --rpc or a source is still missing.
    """
    path = args.config
    if path is None and Path("tee-agent.toml").is_file():
        path = Path("tee-agent.toml")
    if path is not None and (args.rpc is None or args.vault is None or not args.receipts):
        try:
            config = load_host_config(path)
            vault = load_config(config.enclave.config).vault.address
        except (HostConfigError, ConfigError) as exc:
            raise _Unusable(f"--config {path}: {exc}") from None
        args.rpc = args.rpc or config.chain.rpc_url or None
        if args.host is None and args.receipts is None:
            args.host = config.host.listen
        if args.vault is None and int(vault, 16) != 0:
            args.vault = vault
    if args.rpc is None:
        raise _Unusable("--rpc URL is needed (or a tee-agent.toml whose [chain] rpc_url is set)")
    if args.host is None and args.receipts is None:
        raise _Unusable("--host HOST:PORT or --receipts FILE is needed (or a tee-agent.toml)")


def _audit(args: argparse.Namespace) -> int:
    try:
        at = parse_at(args.at)
        anchors = trust_anchors(args.trust_root)
        policy = load_policy(args.policy) if args.policy else None
    except (UsageError, PolicyFormatError) as exc:
        raise _Unusable(str(exc)) from None
    _take_defaults(args)
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
        evidence = attestation_from_message(answer, nonce)
        records = [receipt_record(event.receipt) for event in events]
    except MalformedMessage as exc:
        raise _Unusable(f"the agent at {address} sent a malformed {exc}") from None
    texts = [ReceiptTexts(decision_json=r.decision_json, input_json=r.input_json) for r in records]
    return evidence, [r.receipt for r in records], texts, head


def _from_files(
    receipts_file: Path, attestation_file: Path
) -> tuple[AgentAttestation, list[Receipt], list[ReceiptTexts] | None]:
    """The attestation, the receipts and their texts from files (`host.cli.evidence_files`)."""
    try:
        receipts, texts = read_receipts_file(receipts_file.read_text(encoding="utf-8"))
        attestation = read_attestation_file(attestation_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # EvidenceFileError and UnicodeDecodeError included
        raise _Unusable(f"cannot read the receipts or attestation file: {exc}") from None
    return attestation, receipts, texts
