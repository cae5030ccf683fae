"""`tee-agent status`: a running agent's health and counters (GetStatus).

Exit codes: 0 success, 2 bad input, an unreachable agent or a refused call.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

from tee_agent_rpc import agent_pb2 as pb

from attestation.timefmt import format_time
from host.cli.connection import ClientError, call, message_dict, report_failure, target
from host.cli.outcome import EXIT_OK


def run(args: argparse.Namespace) -> int:
    """Print GetStatus as a summary or JSON; an error as `error: ...` (and JSON); exit code."""
    try:
        return _show_status(args)
    except ClientError as exc:
        return report_failure(exc, {"error": str(exc)} if args.json else None)


def _show_status(args: argparse.Namespace) -> int:
    status = call(args, "GetStatus", pb.GetStatusRequest(), pb.Status)
    if args.json:
        print(json.dumps(message_dict(status), indent=2))
        return EXIT_OK
    last, used = "none yet", status.notional_24h_usd
    if status.last_tick_seq:
        seen = datetime.fromtimestamp(status.last_tick_timestamp_ms / 1000, tz=UTC)
        last = f"seq {status.last_tick_seq} at {format_time(seen)}"
    minutes, seconds = divmod(int(status.uptime_seconds), 60)
    up = f"{minutes // 60}h {minutes % 60:02d}m {seconds:02d}s"
    lines = [
        f"agent {status.address or '(no identity yet)'} at {target(args)}",
        f"enclave: {status.enclave_state} ({status.enclave_restarts} restarts), up {up}",
        f"ticks: {status.ticks_accepted:,} accepted, {status.ticks_refused:,} refused",
        f"last tick accepted: {last}",
        f"receipts: {status.receipts:,} (head 0x{status.head_hash.hex()})",
        f"transactions: {status.transactions:,}",
        f"notional 24h: {used:,.2f} USD used, {status.notional_24h_left_usd:,.2f} USD left",
        f"paused: {'yes' if status.paused else 'no'}",
    ]
    print("\n".join(lines))
    return EXIT_OK
