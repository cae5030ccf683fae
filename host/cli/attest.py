"""`tee-agent attest`: fetch a running agent's quote over a nonce and verify it.

It checks the quote, the event log served with it (replayed to its RTMR0-3, as `verify
quote --event-log` does), its binding to the agent's identity and the nonce, and the policy
(`host.cli.agent_attestation`, which `vault register` checks with too). With --json, the
report's `event_log` is null when the agent served none, else its verdict and events. Exit
codes: 0 all hold; 1 a check failed (the quote, its event log, its binding or the policy, or
a malformed answer); 2 bad input, an unreachable agent or a refused call.

`--out FILE` saves the attestation as JSON: {"quote": hex, "nonce": hex, "identity": {...},
"event_log": [events in dstack's JSON form; [] for none]}. `verify agent --attestation FILE`
reads it back, and it is itself an event log file for `verify quote --event-log FILE` (an
object with an `event_log` array), beside the quote: `jq -r .quote FILE`.
"""

from __future__ import annotations

import argparse
import json
import os

from attestation.binding import NONCE_SIZE
from host.cli.agent_attestation import fetch_attestation, trust_settings, verify_attestation
from host.cli.arguments import parse_nonce
from host.cli.connection import ClientError, report_failure
from host.cli.outcome import EXIT_CHECK_FAILED, EXIT_OK, UsageError, failure_object, print_json
from host.cli.summary import report_summary


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
    nonce = parse_nonce(args.nonce) or os.urandom(NONCE_SIZE)
    trust = trust_settings(args)
    attestation = fetch_attestation(args, nonce)
    verdict = verify_attestation(attestation, trust)
    report, binding, identity = verdict.report, verdict.binding, attestation.identity
    if args.out is not None:
        saved = json.dumps(attestation.to_file_dict(), indent=2)
        args.out.write_text(saved + "\n", encoding="utf-8")
    shown = identity.to_json_dict()
    if args.json:
        out = {**report.model_dump(mode="json"), "binding": binding.model_dump(),
               "identity": shown, "nonce": nonce.hex(), "accepted": verdict.accepted}  # fmt: skip
        print_json(out)
    else:
        print(report_summary(report))
        if not attestation.event_log:
            print("event log: none served (the platform keeps none, or the host withheld it)")
        print(f"binding: {'OK' if binding.passed else 'FAILED'}: {binding.detail}")
        print(f"agent {identity.address} (chain {identity.chain_id}, platform "
              f"{identity.platform}, policy {identity.policy})")  # fmt: skip
        for name in ("x25519_public_key", "config_hash", "model_hash"):
            print(f"{name.replace('_', ' ')}: {shown[name]}")
        print(f"nonce: 0x{nonce.hex()}")
    return EXIT_OK if verdict.accepted else EXIT_CHECK_FAILED
