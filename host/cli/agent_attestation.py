"""An agent's attestation, from a running agent or a file, verified before anything trusts it.

`tee-agent attest` and `tee-agent vault register` both check it here, the same way: the
quote to a trusted root at `--at` (`--trust-root` adds roots, such as the simulated one),
the event log the agent serves with it against its RTMR0-3, the caller's `--policy` when
given (its `[event_log]` rules read that log), and the report_data binding of the agent's
identity and the nonce.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError
from tee_agent_rpc import agent_pb2 as pb
from tee_agent_rpc import messages_pb2 as messages

from attestation.binding import AgentAttestation, AgentIdentity, check_binding
from attestation.checks import CheckName
from attestation.errors import AttestationError, PolicyFormatError
from attestation.event_log import verify_served_event_log
from attestation.jsontext import loads_bounded
from attestation.policy import ValidationPolicy, load_policy, validate
from attestation.report import Check, VerificationReport
from attestation.trust import TrustAnchors
from attestation.verifier import verify_evidence
from host.cli.arguments import parse_at, trust_anchors
from host.cli.connection import ClientError, call
from host.cli.outcome import EXIT_CHECK_FAILED, UsageError
from wire.errors import MalformedMessage
from wire.identity import attestation_from_message


@dataclass(frozen=True)
class TrustSettings:
    """What an attestation is verified against: the time, the trusted roots, the policy."""

    at: datetime
    anchors: TrustAnchors
    policy: ValidationPolicy | None


@dataclass(frozen=True)
class AttestationVerdict:
    """A verified attestation: the quote's report (policy applied) and the binding check."""

    attestation: AgentAttestation
    report: VerificationReport
    binding: Check

    @property
    def accepted(self) -> bool:
        """The quote is genuine, binds the identity and the nonce, and the policy holds."""
        return self.report.valid and self.binding.passed and self.report.policy_ok is not False


def trust_settings(args: argparse.Namespace) -> TrustSettings:
    """`--at`, `--trust-root` and `--policy` as the verification uses them.

    Raises:
        UsageError: a time, root file or policy that cannot be read or parsed.
    """
    at = parse_at(args.at)
    try:
        policy = load_policy(Path(args.policy)) if args.policy else None
    except PolicyFormatError as exc:
        raise UsageError(str(exc)) from None
    return TrustSettings(at=at, anchors=trust_anchors(args.trust_root), policy=policy)


def fetch_attestation(args: argparse.Namespace, nonce: bytes) -> AgentAttestation:
    """A running agent's quote over `nonce` (GetAttestation), with the identity it claims
    and its event log.

    Raises:
        ClientError: the agent cannot be reached or refused (exit 2), or sent a malformed
            identity or event log (exit 1).
    """
    request = pb.GetAttestationRequest(nonce=nonce)
    answer = call(args, "GetAttestation", request, messages.Attestation)
    try:
        return attestation_from_message(answer, nonce)
    except MalformedMessage as exc:
        raise ClientError(f"the agent sent a malformed {exc}", EXIT_CHECK_FAILED) from None


def read_attestation(path: Path) -> AgentAttestation:
    """An attestation `tee-agent attest --out` saved.

    Raises:
        UsageError: the file cannot be read or is not such an attestation.
    """
    try:
        return AgentAttestation.from_file_dict(loads_bounded(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"cannot read the attestation file {path}: {exc}") from None


def verify_attestation(attestation: AgentAttestation, trust: TrustSettings) -> AttestationVerdict:
    """Verify the quote, replay the event log served with it (when there is one: a log that
    does not replay to the quote's RTMRs makes the report invalid), apply the policy (with
    the attestation's nonce), check the binding.

    Raises:
        ClientError: (exit 1) the quote cannot be parsed as evidence.
    """
    try:
        report = verify_evidence(attestation.quote, at=trust.at, anchors=trust.anchors)
    except AttestationError as exc:
        raise ClientError(
            f"the agent's quote cannot be verified: {exc}", EXIT_CHECK_FAILED
        ) from None
    report = verify_served_event_log(report, attestation.event_log)
    if trust.policy is not None:
        report = validate(report, trust.policy, at=trust.at, nonce=attestation.nonce)
    binding = _binding(report.report_data, attestation.identity, attestation.nonce)
    return AttestationVerdict(attestation=attestation, report=report, binding=binding)


def _binding(report_data: str, identity: AgentIdentity, nonce: bytes) -> Check:
    try:
        claimed = identity.binding()
    except ValidationError as exc:
        detail = f"the agent's identity is malformed: {exc.errors()[0]['msg']}"
        return Check(name=CheckName.REPORT_DATA_BINDING, passed=False, detail=detail)
    return check_binding(report_data, claimed, nonce)
