"""`tee-agent receipts`: list, fetch one (--seq) or follow a running agent's receipts.

Printed one per line as a summary; with --json as one JSON object on one line,
`{"receipts": [...]}` (with --seq the receipt itself; with --follow one object per line as
each arrives): each the receipt file object, its hash and its transaction. Or written with
--out as the file `verify agent --receipts` and `replay-decision` read (with --json, then
`{"out": FILE, "written": N}` is printed). An error is `error: ...` on stderr, and with
--json `{"error": ...}` on stdout. Exit codes: 0 success, 1 a malformed receipt, 2 misuse,
an unreachable agent or a refused call.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

import grpc
from tee_agent_rpc import agent_pb2 as pb
from tee_agent_rpc import agent_pb2_grpc as pb_grpc

from attestation.timefmt import format_time
from host.cli.connection import (
    CALL_TIMEOUT,
    ClientError,
    connect,
    message_dict,
    report_failure,
    rpc_error,
)
from host.cli.outcome import EXIT_CHECK_FAILED, EXIT_OK, print_json
from wire.errors import MalformedMessage
from wire.records import ReceiptRecord, receipt_record

PAGE = 1000  # receipts asked for in one ListReceipts call


def run(args: argparse.Namespace) -> int:
    """Carry out `receipts`; an error prints `error: ...` on stderr (and `{"error": ...}`
    with --json); return the exit code."""
    try:
        return _receipts(args)
    except ClientError as exc:
        return report_failure(exc, {"error": str(exc)} if args.json else None)


def _receipts(args: argparse.Namespace) -> int:
    """List, fetch one (--seq) or follow receipts; print or write them.

    Raises:
        ClientError: misuse, unreachable agent or refused call (2), malformed receipt (1).
    """
    if args.seq is not None and (args.follow or args.limit is not None or args.from_seq != 1):
        raise ClientError("--seq fetches one receipt: it takes no --from, --limit or --follow")
    if args.follow and args.out is not None:
        raise ClientError("--out writes a finished file: it cannot be used with --follow")
    if args.limit is not None and args.limit < 1:
        raise ClientError(f"--limit must be at least 1, got {args.limit}")
    if args.from_seq < (0 if args.follow else 1) or (args.seq is not None and args.seq < 1):
        raise ClientError("receipt sequence numbers start at 1 (--from 0 only with --follow)")
    channel, stub = connect(args)
    written: list[dict[str, object]] = []
    listed: list[dict[str, object]] = []
    try:
        with channel:
            for event in _events(args, stub):
                if args.out is not None:
                    written.append(received_record(event).to_file_dict())
                elif args.json and not args.follow:
                    listed.append(event_dict(event))
                elif args.json:
                    print_json(event_dict(event))  # a stream: one object per line
                else:
                    print(event_line(event), flush=True)
    except grpc.RpcError as exc:
        raise rpc_error(args, exc) from None
    except KeyboardInterrupt:
        if args.follow:
            return EXIT_OK  # Ctrl-C is how a follow ends
        raise
    if args.json and args.out is None and not args.follow:
        print_json(listed[0] if args.seq is not None else {"receipts": listed})
    if args.out is not None:
        data = written[0] if args.seq is not None else written
        try:
            args.out.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        except OSError as exc:
            raise ClientError(f"cannot write {args.out}: {exc.strerror}") from None
        noun = "receipt" if len(written) == 1 else "receipts"
        print(f"wrote {len(written)} {noun} to {args.out}", file=sys.stderr)
        if args.json:
            print_json({"out": str(args.out), "written": len(written)})
    return EXIT_OK


def received_record(event: pb.DecisionEvent) -> ReceiptRecord:
    """The receipt an event carries.

    Raises:
        ClientError: (exit 1) the agent sent a receipt that is not well-formed.
    """
    try:
        return receipt_record(event.receipt)
    except MalformedMessage as exc:
        raise ClientError(f"the agent sent a malformed receipt: {exc}", EXIT_CHECK_FAILED) from None


def event_dict(event: pb.DecisionEvent) -> dict[str, object]:
    """One `receipts --json` line: the receipt file object, its hash and its transaction."""
    record = received_record(event)
    transaction = message_dict(event.transaction) if event.HasField("transaction") else None
    return {**record.to_file_dict(), "receipt_hash": "0x" + record.receipt_hash.hex(),
            "transaction": transaction}  # fmt: skip


def event_line(event: pb.DecisionEvent) -> str:
    """One `receipts` line: seq, verdict, time and transaction hash (or '-')."""
    r = event.receipt
    tx = "0x" + r.tx_hash.hex() if any(r.tx_hash) else "-"
    return f"{r.seq} {r.verdict} {format_time(datetime.fromtimestamp(r.timestamp, tz=UTC))} {tx}"


def _events(args: argparse.Namespace, stub: pb_grpc.AgentStub) -> Iterator[pb.DecisionEvent]:
    if args.seq is not None:
        yield stub.GetReceipt(pb.GetReceiptRequest(seq=args.seq), timeout=CALL_TIMEOUT)
        return
    left = args.limit
    if args.follow:  # no deadline: the stream lasts until the client leaves
        for event in stub.WatchDecisions(pb.WatchDecisionsRequest(from_seq=args.from_seq)):
            yield event
            left = None if left is None else left - 1
            if left == 0:
                return
        return
    seq = args.from_seq
    while left is None or left > 0:
        size = PAGE if left is None else min(PAGE, left)
        request = pb.ListReceiptsRequest(from_seq=seq, limit=size)
        page = stub.ListReceipts(request, timeout=CALL_TIMEOUT).receipts
        yield from page
        if len(page) < size:
            return
        seq, left = page[-1].receipt.seq + 1, None if left is None else left - len(page)
