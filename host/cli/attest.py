"""`tee-agent attest`: fetch a running agent's quote over a nonce and verify it.

It checks the quote, its binding to the agent's identity and the nonce, and the policy.
Exit codes: 0 all hold; 1 a check failed (the quote, its binding or the policy, or a
malformed answer); 2 bad input, an unreachable agent or a refused call.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from pydantic import ValidationError
from tee_agent_rpc import agent_pb2 as pb
from tee_agent_rpc import messages_pb2 as messages

from attestation.binding import NONCE_SIZE, AgentAttestation, AgentIdentity, check_binding
from attestation.checks import CheckName
from attestation.errors import AttestationError, PolicyFormatError
from attestation.policy import load_policy, validate
from attestation.report import Check
from attestation.verifier import verify_evidence
from host.cli.arguments import parse_at, parse_nonce, trust_anchors
from host.cli.connection import ClientError, call, report_failure
from host.cli.outcome import EXIT_CHECK_FAILED, EXIT_OK, UsageError, failure_object
from host.cli.summary import report_summary
from wire.errors import MalformedMessage
from wire.identity import identity_from_message


def run(args: argparse.Namespace) -> int:
    """Carry out `attest`; an error prints `error: ...` (and, with --json, a failure object)."""
    try:
        return _attest(args)
    except (ClientError, UsageError) as exc:
        failure = {**failure_object(str(exc)), "binding": None, "identity": None}
        return report_failure(exc, {**failure, "accepted": False} if args.json else None)


def _attest(args: argparse.Namespace) -> int:
    """Fetch a quote over a nonce, verify it, check the binding (and policy); print them.

    Raises:
        UsageError, ClientError: bad input or no agent (2); the quote cannot be parsed (1).
    """
    at = parse_at(args.at)
    nonce = parse_nonce(args.nonce) or os.urandom(NONCE_SIZE)
    try:
        policy = load_policy(Path(args.policy)) if args.policy else None
    except PolicyFormatError as exc:
        raise ClientError(str(exc)) from None
    anchors = trust_anchors(args.trust_root)
    request = pb.GetAttestationRequest(nonce=nonce)
    answer = call(args, "GetAttestation", request, messages.Attestation)
    try:
        identity = identity_from_message(answer.identity)
    except MalformedMessage as exc:
        raise ClientError(f"the agent sent a malformed {exc}", EXIT_CHECK_FAILED) from None
    attestation = AgentAttestation(quote=answer.quote, nonce=nonce, identity=identity)
    try:
        report = verify_evidence(attestation.quote, at=at, anchors=anchors)
    except AttestationError as exc:
        raise ClientError(
            f"the agent's quote cannot be verified: {exc}", EXIT_CHECK_FAILED
        ) from None
    if policy is not None:
        report = validate(report, policy, at=at, nonce=nonce)
    binding = _binding(report.report_data, identity, nonce)
    accepted = report.valid and binding.passed and report.policy_ok is not False
    if args.out is not None:
        saved = json.dumps(attestation.to_file_dict(), indent=2)
        args.out.write_text(saved + "\n", encoding="utf-8")
    shown = identity.to_json_dict()
    if args.json:
        out = {**report.model_dump(mode="json"), "binding": binding.model_dump(),
               "identity": shown, "nonce": nonce.hex(), "accepted": accepted}  # fmt: skip
        print(json.dumps(out, indent=2))
    else:
        print(report_summary(report))
        print(f"binding: {'OK' if binding.passed else 'FAILED'}: {binding.detail}")
        print(f"agent {identity.address} (chain {identity.chain_id}, platform "
              f"{identity.platform}, policy {identity.policy})")  # fmt: skip
        for name in ("x25519_public_key", "config_hash", "model_hash"):
            print(f"{name.replace('_', ' ')}: {shown[name]}")
        print(f"nonce: 0x{nonce.hex()}")
    return EXIT_OK if accepted else EXIT_CHECK_FAILED


def _binding(report_data: str, identity: AgentIdentity, nonce: bytes) -> Check:
    try:
        claimed = identity.binding()
    except ValidationError as exc:
        detail = f"the agent's identity is malformed: {exc.errors()[0]['msg']}"
        return Check(name=CheckName.REPORT_DATA_BINDING, passed=False, detail=detail)
    return check_binding(report_data, claimed, nonce)
