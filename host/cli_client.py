"""`tee-agent status`, `receipts` and `attest`: a client of a running agent's public API.

They call the read RPCs (no token needed) over TCP, TLS with `--tls-ca`. `--host` defaults
to $TEE_AGENT_HOST, else 127.0.0.1:50051. Exit codes: 0 success, 1 a check failed (attest:
the quote, its binding or the policy; a malformed answer), 2 bad input, an unreachable
agent or an RPC the agent refused.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format
from pydantic import ValidationError
from tee_agent_rpc import agent_pb2 as pb
from tee_agent_rpc import agent_pb2_grpc as pb_grpc

from attestation.binding import AgentAttestation, AgentIdentity, check_binding
from attestation.checks import CheckName
from attestation.errors import AttestationError, PolicyFormatError
from attestation.policy import load_policy, validate
from attestation.report import Check
from attestation.timefmt import format_time
from attestation.trust import default_trust_anchors
from attestation.verifier import verify_evidence
from host.cli import EXIT_CHECK_FAILED, EXIT_OK, EXIT_USAGE
from host.cli_verify import UsageError, _parse_at, _parse_nonce, _read_trust_root, failure_object
from host.cli_verify import summary as quote_summary
from wire.errors import MalformedMessage
from wire.identity import identity_from_message
from wire.records import ReceiptRecord, receipt_record

DEFAULT_HOST = "127.0.0.1:50051"
CALL_TIMEOUT = 30.0
PAGE = 1000
FILE_HELP = "an array; with --seq one object: for `verify agent` and `replay-decision`"
ATTEST_HELP = (
    "fetch a fresh quote over a nonce and verify it, its binding to the agent's identity "
    "and the nonce, and the policy. Exit 0: all hold; 1: a check failed; 2: bad input or no agent"
)


class ClientError(Exception):
    """A command that cannot complete; `code` is its exit code."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def register(commands: Any) -> None:
    """Add `status`, `receipts` and `attest` to the top-level subparsers."""
    status = commands.add_parser("status", help="a running agent's health and counters")
    receipts = commands.add_parser("receipts", help="a running agent's decision receipts")
    add = receipts.add_argument
    add("--from", dest="from_seq", type=int, default=1, metavar="SEQ", help="first seq (default 1)")
    add("--limit", type=int, metavar="N", help="at most N receipts")
    add("--follow", action="store_true", help="then new ones until Ctrl-C (--from 0: new only)")
    add("--seq", type=int, metavar="N", help="only the receipt with seq N")
    add("--out", type=Path, metavar="FILE", help=f"write them as JSON ({FILE_HELP})")
    attest = commands.add_parser("attest", help=ATTEST_HELP, description=ATTEST_HELP)
    add = attest.add_argument
    add("--nonce", metavar="HEX", help="32-byte nonce (default: random)")
    add("--trust-root", metavar="PEM", action="append", default=[], help="also trust this root")
    add("--at", metavar="RFC3339", help="verify as of this time (default now)")
    add("--policy", metavar="FILE", help="validation policy (TOML)")
    add("--out", type=Path, metavar="FILE",
        help="also save the quote, nonce and identity (for `verify agent --attestation`)")  # fmt: skip
    for parser, handler in ((status, run_status), (receipts, run_receipts), (attest, run_attest)):
        add = parser.add_argument
        add("--host", metavar="HOST:PORT", help=f"default $TEE_AGENT_HOST or {DEFAULT_HOST}")
        add("--tls-ca", metavar="PEM", help="use TLS, trusting this CA certificate")
        add("--json", action="store_true", help="print JSON")
        add("-v", "--verbose", action="store_true", default=argparse.SUPPRESS)
        parser.set_defaults(handler=_guarded(handler))


def _guarded(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn ClientError and UsageError into `error: ...` on stderr (and a JSON object)."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (ClientError, UsageError) as exc:
            code = exc.code if isinstance(exc, ClientError) else EXIT_USAGE
            print(f"error: {exc}", file=sys.stderr)
            if args.json and handler is run_attest:
                failure = {**failure_object(str(exc)), "binding": None, "identity": None}
                print(json.dumps({**failure, "accepted": False}, indent=2))
            elif args.json and handler is run_status:
                print(json.dumps({"error": str(exc)}, indent=2))
            return code

    return run


def target(args: argparse.Namespace) -> str:
    """The address to call: --host, else $TEE_AGENT_HOST, else 127.0.0.1:50051."""
    return str(args.host or os.environ.get("TEE_AGENT_HOST") or DEFAULT_HOST)


def connect(args: argparse.Namespace) -> tuple[grpc.Channel, Any]:
    """A channel and Agent stub to the agent (TLS with --tls-ca).

    Raises:
        ClientError: the --tls-ca file cannot be read.
    """
    address = target(args)
    if args.tls_ca is None:
        channel = grpc.insecure_channel(address)
    else:
        try:
            ca = Path(args.tls_ca).read_bytes()
        except OSError as exc:
            raise ClientError(f"--tls-ca: cannot read {args.tls_ca}: {exc.strerror}") from None
        channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=ca))
    return channel, pb_grpc.AgentStub(channel)


def call(args: argparse.Namespace, method: str, request: Any) -> Any:
    """One unary call of `method` with a deadline, on a channel of its own.

    Raises:
        ClientError: (exit 2) the agent cannot be reached or refused the call.
    """
    channel, stub = connect(args)
    with channel:
        try:
            return getattr(stub, method)(request, timeout=CALL_TIMEOUT)
        except grpc.RpcError as exc:
            raise rpc_error(args, exc) from None


def rpc_error(args: argparse.Namespace, exc: grpc.RpcError) -> ClientError:
    """The exit-2 error for a failed call: unreachable, or refused with the agent's reason."""
    code, details = exc.code(), exc.details() or ""
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return ClientError(f"cannot reach the agent at {target(args)}: {details or code.name}")
    return ClientError(f"the agent at {target(args)} refused: {code.name}: {details}")


def message_dict(message: Any) -> dict[str, Any]:
    """A message as JSON values: proto field names, every field, numbers, bytes as 0x-hex."""
    data: dict[str, Any] = json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True,
        unquote_int64_if_possible=True,
    )  # fmt: skip
    for field in message.DESCRIPTOR.fields:
        if field.type == field.TYPE_BYTES and not field.is_repeated:
            data[field.name] = "0x" + getattr(message, field.name).hex()
    return {name: data[name] for name in message.DESCRIPTOR.fields_by_name if name in data}


def run_status(args: argparse.Namespace) -> int:
    """`tee-agent status`: GetStatus, as a summary or JSON. Raises ClientError (exit 2)."""
    status = call(args, "GetStatus", pb.GetStatusRequest())
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


def received_record(event: pb.DecisionEvent) -> ReceiptRecord:
    """The receipt an event carries.

    Raises:
        ClientError: (exit 1) the agent sent a receipt that is not well-formed.
    """
    try:
        return receipt_record(event.receipt)
    except MalformedMessage as exc:
        raise ClientError(f"the agent sent a malformed receipt: {exc}", EXIT_CHECK_FAILED) from None


def event_dict(event: pb.DecisionEvent) -> dict[str, Any]:
    """One `receipts --json` line: the receipt file object, its hash and its transaction."""
    record = received_record(event)
    transaction = message_dict(event.transaction) if event.HasField("transaction") else None
    return {**record.to_file_dict(), "receipt_hash": "0x" + record.receipt_hash.hex(),
            "transaction": transaction}  # fmt: skip


def event_line(event: Any) -> str:
    r = event.receipt
    tx = "0x" + r.tx_hash.hex() if any(r.tx_hash) else "-"
    return f"{r.seq} {r.verdict} {format_time(datetime.fromtimestamp(r.timestamp, tz=UTC))} {tx}"


def _events(args: argparse.Namespace, stub: Any) -> Iterator[Any]:
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


def run_receipts(args: argparse.Namespace) -> int:
    """`tee-agent receipts`: list, fetch one (--seq) or follow receipts; print or write them.

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
    written: list[dict[str, Any]] = []
    try:
        with channel:
            for event in _events(args, stub):
                if args.out is not None:
                    written.append(received_record(event).to_file_dict())
                else:
                    print(json.dumps(event_dict(event)) if args.json else event_line(event))
                    sys.stdout.flush()
    except grpc.RpcError as exc:
        raise rpc_error(args, exc) from None
    except KeyboardInterrupt:
        if args.follow:
            return EXIT_OK  # Ctrl-C is how a follow ends
        raise
    if args.out is not None:
        data = written[0] if args.seq is not None else written
        try:
            args.out.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        except OSError as exc:
            raise ClientError(f"cannot write {args.out}: {exc.strerror}") from None
        noun = "receipt" if len(written) == 1 else "receipts"
        print(f"wrote {len(written)} {noun} to {args.out}", file=sys.stderr)
    return EXIT_OK


def run_attest(args: argparse.Namespace) -> int:
    """`tee-agent attest`: fetch a quote over a nonce, verify it, check the binding (and policy).

    Raises:
        UsageError, ClientError: bad input or no agent (2); the quote cannot be parsed (1).
    """
    at = _parse_at(args.at)
    nonce = _parse_nonce(args.nonce) or os.urandom(32)
    try:
        policy = load_policy(Path(args.policy)) if args.policy else None
    except PolicyFormatError as exc:
        raise ClientError(str(exc)) from None
    anchors = default_trust_anchors()
    extra = [der for path in args.trust_root for der in _read_trust_root(path)]
    anchors = anchors.with_extra_roots(extra) if extra else anchors
    answer = call(args, "GetAttestation", pb.GetAttestationRequest(nonce=nonce))
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
        print(quote_summary(report))
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
