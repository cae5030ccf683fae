"""`tee-agent verify ...`: check attestation evidence offline.

`verify quote FILE` verifies any supported evidence (Intel TDX/SGX DCAP quote, AWS Nitro
document, AMD SEV-SNP report, tee-agent simulated quote) and, with `--policy`, validates its
fields. `valid` says the evidence is genuine; `policy_ok` says the caller's policy accepts it.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from attestation.errors import (
    AttestationError,
    CertificateChainError,
    CollateralFormatError,
    EvidenceFormatError,
    PolicyFormatError,
)
from attestation.policy import NONCE_SIZE, load_policy, validate
from attestation.report import VerificationReport
from attestation.timefmt import format_time, parse_time
from attestation.trust import default_trust_anchors, load_trust_root_file
from attestation.verifier import verify_evidence
from host.cli import EXIT_CHECK_FAILED, EXIT_OK, EXIT_USAGE

# What each kind of evidence is called in the summary line.
_EVIDENCE_NOUN = {"tdx": "quote", "sgx": "quote", "sim": "quote", "nitro": "document"}


class UsageError(Exception):
    """The command line names input that cannot be used (bad time, unreadable file, ...)."""


def register(commands: Any) -> None:
    """Add the `verify` command group to the top-level subparsers."""
    verify = commands.add_parser("verify", help="verify attestation evidence offline")
    kinds = verify.add_subparsers(dest="verify_command", metavar="WHAT")
    kinds.required = True
    quote = kinds.add_parser(
        "quote",
        help="verify a TDX/SGX quote, Nitro document, SEV-SNP report or simulated quote",
        description=(
            "Verify signatures and certificate chains of attestation evidence at a time, "
            "up to pinned vendor roots, and optionally apply a validation policy. "
            "Exit 0: genuine (and the policy holds, when given); 1: well-formed but a check "
            "failed; 2: input cannot be parsed or the command was misused."
        ),
    )
    quote.add_argument(
        "file",
        metavar="FILE",
        help="the evidence: raw bytes, hex or base64 text ('-' reads standard input)",
    )
    quote.add_argument(
        "--collateral",
        metavar="FILE",
        action="append",
        default=[],
        help="Intel collateral (one dcap-qvl JSON bundle or several PCS files) or, for "
        "SEV-SNP, the VCEK certificate; may be given several times",
    )
    quote.add_argument("--policy", metavar="FILE", help="validation policy (TOML)")
    quote.add_argument(
        "--nonce",
        metavar="HEX",
        help=f"the {NONCE_SIZE}-byte nonce a policy's [report_data] prefix expects",
    )
    quote.add_argument(
        "--at",
        metavar="RFC3339",
        help="verify as of this time, with a zone (e.g. 2025-07-01T00:00:00Z); default now",
    )
    quote.add_argument(
        "--trust-root",
        metavar="PEM",
        action="append",
        default=[],
        help="also trust this root certificate (e.g. the simulated root); may be repeated",
    )
    quote.add_argument("--json", action="store_true", help="print one JSON object")
    quote.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log details"
    )
    quote.set_defaults(handler=run_verify_quote)
    from host import cli_verify_agent

    cli_verify_agent.register(kinds)


def run_verify_quote(args: argparse.Namespace) -> int:
    """Carry out `verify quote`; print the result; return the exit code.

    Input that cannot be parsed or used (evidence, collateral, policy, trust root, time,
    nonce, unreadable files) prints `error: ...` on stderr, and with --json also a JSON
    object with valid=false and error set, and returns 2.
    """
    try:
        report = _verify(args)
    except (UsageError, EvidenceFormatError, CollateralFormatError, PolicyFormatError) as exc:
        return _fail(args, str(exc), EXIT_USAGE)
    except OSError as exc:
        return _fail(args, f"{exc.filename or 'input'}: {exc.strerror or exc}", EXIT_USAGE)
    except AttestationError as exc:  # any other refusal is a failed check on readable input
        return _fail(args, str(exc), EXIT_CHECK_FAILED)

    if args.json:
        print(json.dumps(report.model_dump(mode="json"), indent=2))
    else:
        print(summary(report))
    accepted = report.valid and report.policy_ok is not False
    return EXIT_OK if accepted else EXIT_CHECK_FAILED


def _verify(args: argparse.Namespace) -> VerificationReport:
    at = _parse_at(args.at)
    nonce = _parse_nonce(args.nonce)
    # Read every input before verifying, so that a bad policy is reported as such.
    policy = load_policy(Path(args.policy)) if args.policy else None
    if nonce is not None and policy is None:
        raise UsageError("--nonce is only used with --policy (its [report_data] prefix)")
    anchors = default_trust_anchors()
    extra_roots = [der for path in args.trust_root for der in _read_trust_root(path)]
    if extra_roots:
        anchors = anchors.with_extra_roots(extra_roots)
    evidence = _read_input(args.file, "evidence")
    collateral = [_read_input(path, "collateral") for path in args.collateral]

    report = verify_evidence(evidence, at=at, anchors=anchors, collateral=collateral)
    if policy is not None:
        report = validate(report, policy, at=at, nonce=nonce)
    return report


def _parse_at(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        return parse_time(text)
    except ValueError as exc:
        raise UsageError(
            f"--at: expected an RFC 3339 time with a zone (e.g. 2025-07-01T00:00:00Z), "
            f"found {text!r} ({exc})"
        ) from None


def _parse_nonce(text: str | None) -> bytes | None:
    if text is None:
        return None
    try:
        nonce = bytes.fromhex(text.strip().removeprefix("0x"))
    except ValueError:
        raise UsageError(f"--nonce: expected hex digits, found {text!r}") from None
    if len(nonce) != NONCE_SIZE:
        raise UsageError(f"--nonce: expected {NONCE_SIZE} bytes, found {len(nonce)} bytes")
    return nonce


def _read_trust_root(name: str) -> list[bytes]:
    try:
        return load_trust_root_file(Path(name))
    except CertificateChainError as exc:  # unreadable, or holds no certificate
        raise UsageError(f"--trust-root: {exc}") from None


def _read_input(name: str, what: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(name).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {what} file {name}: {exc.strerror}") from None


def _fail(args: argparse.Namespace, message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    if getattr(args, "json", False):
        print(json.dumps(failure_object(message), indent=2))
    return code


def failure_object(message: str) -> dict[str, Any]:
    """The JSON printed when no report could be made: the report's keys, valid=false."""
    return {
        "valid": False,
        "tee": None,
        "version": None,
        "report_data": None,
        "measurements": {},
        "debug": None,
        "fields": {},
        "tcb_status": None,
        "advisory_ids": [],
        "policy_ok": None,
        "checks": [],
        "error": message,
        "evidence_time": None,
    }


def summary(report: VerificationReport) -> str:
    """A short human summary: the verdict first, then policy, TCB status, failed checks."""
    noun = _EVIDENCE_NOUN.get(report.tee, "report")
    kind = f"{report.tee}, {noun}" + ("" if report.version is None else f" v{report.version}")
    lines = [f"{'VALID' if report.valid else 'INVALID'} ({kind})"]
    if report.tee == "sim":
        lines.append("warning: simulated TEE evidence, not from real hardware")
    if report.policy_ok is not None:
        lines.append(f"policy: {'OK' if report.policy_ok else 'REJECTED'}")
    if report.tcb_status is not None:
        advisories = f" (advisories: {', '.join(report.advisory_ids)})"
        lines.append(f"tcb status: {report.tcb_status}{advisories if report.advisory_ids else ''}")
    elif report.tee not in ("nitro", "sev-snp"):  # their vendors publish no TCB status
        lines.append("tcb status: unknown (no collateral given)")
    if report.debug:
        lines.append("debug: ON (the host can read the TEE's memory)")
    if report.evidence_time is not None:
        made = datetime.fromtimestamp(report.evidence_time, tz=UTC)
        lines.append(f"evidence time: {format_time(made)}")
    failed = report.failed_checks()
    if failed:
        lines.append("failed checks:")
        lines.extend(f"  {check.name}: {check.detail}" for check in failed)
    return "\n".join(lines)
