"""`tee-agent status`: a running agent's health and counters (GetStatus), and its guarded
vault as the host last read it.

Exit codes: 0 success, 2 bad input, an unreachable agent or a refused call.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from tee_agent_rpc import agent_pb2 as pb

from attestation.timefmt import format_time
from host.cli.connection import ClientError, call, message_dict, report_failure, target
from host.cli.outcome import EXIT_OK, print_json


def run(args: argparse.Namespace) -> int:
    """Print GetStatus as a summary or JSON; an error as `error: ...` (and JSON); exit code."""
    try:
        return _show_status(args)
    except ClientError as exc:
        return report_failure(exc, {"error": str(exc)} if args.json else None)


def _show_status(args: argparse.Namespace) -> int:
    status = call(args, "GetStatus", pb.GetStatusRequest(), pb.Status)
    if args.json:
        found = message_dict(status)
        # Every field in proto order; vault null when the host has no vault configured.
        data = {field.name: found.get(field.name) for field in pb.Status.DESCRIPTOR.fields}
        print_json(data)
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
    if status.alarm:
        lines.append(f"ALARM (health NOT_SERVING): {status.alarm}")
    if status.HasField("vault"):
        lines.extend(_vault_lines(status.vault))
    print("\n".join(lines))
    return EXIT_OK


def _vault_lines(vault: pb.VaultStatus) -> list[str]:
    """The guarded vault as the host last read it; amounts in whole quote tokens."""
    if not vault.block:
        return [f"vault {vault.address}: not read yet ({vault.error})"]
    trading = "paused by the owner" if vault.paused else "trading"
    active = "active" if vault.agent_active else "NOT active (revoked or not registered)"
    lines = [
        f"vault {vault.address} at block {vault.block:,}: {trading}, agent {active}",
        f"  caps: {vault.cap_per_trade} per trade, {vault.cap_per_day} per 24h "
        f"(quote token {vault.quote_token})",
        f"  notional 24h: {vault.notional_24h} used, {vault.notional_24h_left} left",
        f"  last receipt seq traded: {vault.last_receipt_seq}; TWAP window "
        f"{vault.twap_window_seconds} s, max deviation {vault.max_deviation_bps} bps",
    ]
    if vault.error:
        lines.append(f"  the last read failed (figures above are older): {vault.error}")
    return lines
