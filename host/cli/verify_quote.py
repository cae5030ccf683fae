"""`tee-agent verify quote FILE`: check attestation evidence offline.

It verifies any supported evidence (Intel TDX/SGX DCAP quote, AWS Nitro document, AMD
SEV-SNP report, tee-agent simulated quote) and, with `--policy`, validates its fields.
With `--event-log`, a TDX event log (dstack's JSON form or the CCEL binary) must replay to
the quote's RTMR0-3, and the report lists its events. `valid` says the evidence is genuine
(and the log holds); `policy_ok` says the caller's policy accepts it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from attestation.errors import (
    AttestationError,
    CollateralFormatError,
    EvidenceFormatError,
    PolicyFormatError,
)
from attestation.policy import load_policy, validate
from attestation.report import VerificationReport
from attestation.verifier import verify_evidence
from host.cli.arguments import parse_at, parse_nonce, read_input, trust_anchors
from host.cli.outcome import (
    EXIT_CHECK_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    failure_object,
    print_json,
)
from host.cli.summary import report_summary


def run(args: argparse.Namespace) -> int:
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
        print_json(report.model_dump(mode="json"))
    else:
        print(report_summary(report))
    accepted = report.valid and report.policy_ok is not False
    return EXIT_OK if accepted else EXIT_CHECK_FAILED


def _verify(args: argparse.Namespace) -> VerificationReport:
    at = parse_at(args.at)
    nonce = parse_nonce(args.nonce)
    # Read every input before verifying, so that a bad policy is reported as such.
    policy = load_policy(Path(args.policy)) if args.policy else None
    if nonce is not None and policy is None:
        raise UsageError("--nonce is only used with --policy (its [report_data] prefix)")
    anchors = trust_anchors(args.trust_root)
    evidence = read_input(args.file, "evidence")
    collateral = [read_input(path, "collateral") for path in args.collateral]
    event_log = read_input(args.event_log, "event log") if args.event_log else None

    report = verify_evidence(
        evidence, at=at, anchors=anchors, collateral=collateral, event_log=event_log
    )
    if policy is not None:
        report = validate(report, policy, at=at, nonce=nonce)
    return report


def _fail(args: argparse.Namespace, message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    if getattr(args, "json", False):
        print_json(failure_object(message))
    return code
