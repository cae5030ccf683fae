"""The client commands' link to a running agent's public API: address, channel, calls.

`status`, `receipts` and `attest` call the read RPCs (no token needed) over TCP, TLS with
`--tls-ca`. `--host` defaults to $TEE_AGENT_HOST, else 127.0.0.1:50051. An agent that
cannot be reached, or refuses a call, ends the command with exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from tee_agent_rpc import agent_pb2_grpc as pb_grpc

from host.cli.outcome import EXIT_USAGE, UsageError, print_json
from host.cli.parser import DEFAULT_HOST

CALL_TIMEOUT = 30.0

Reply = TypeVar("Reply", bound=Message)


class ClientError(Exception):
    """A command that cannot complete; `code` is its exit code."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def report_failure(exc: ClientError | UsageError, failure: dict[str, object] | None) -> int:
    """Print `error: ...` on stderr and `failure`, if any, as JSON; return the exit code."""
    print(f"error: {exc}", file=sys.stderr)
    if failure is not None:
        print_json(failure)
    return exc.code if isinstance(exc, ClientError) else EXIT_USAGE


def target(args: argparse.Namespace) -> str:
    """The address to call: --host, else $TEE_AGENT_HOST, else 127.0.0.1:50051."""
    return str(args.host or os.environ.get("TEE_AGENT_HOST") or DEFAULT_HOST)


def connect(args: argparse.Namespace) -> tuple[grpc.Channel, pb_grpc.AgentStub]:
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


def call(args: argparse.Namespace, method: str, request: Message, reply: type[Reply]) -> Reply:
    """One unary call of `method` with a deadline, on a channel of its own.

    `reply` is the message type `method` answers with: it types the answer, which the
    generated (untyped) stub does not.

    Raises:
        ClientError: (exit 2) the agent cannot be reached or refused the call.
    """
    channel, stub = connect(args)
    with channel:
        try:
            answer: Reply = getattr(stub, method)(request, timeout=CALL_TIMEOUT)
        except grpc.RpcError as exc:
            raise rpc_error(args, exc) from None
        return answer


def rpc_error(args: argparse.Namespace, exc: grpc.RpcError) -> ClientError:
    """The exit-2 error for a failed call: unreachable, or refused with the agent's reason."""
    code, details = exc.code(), exc.details() or ""
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return ClientError(f"cannot reach the agent at {target(args)}: {details or code.name}")
    return ClientError(f"the agent at {target(args)} refused: {code.name}: {details}")


def message_dict(message: Message) -> dict[str, object]:
    """A message as JSON values: proto field names, every field, numbers, and bytes as
    0x-hex at every depth (the gRPC JSON mapping's base64 is for machines, not people)."""
    data = json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True,
        unquote_int64_if_possible=True,
    )  # fmt: skip
    return _hex_bytes(message, data)


def _hex_bytes(message: Message, data: dict[str, Any]) -> dict[str, object]:
    """`data` (MessageToDict of `message`) with its bytes fields as 0x-hex, recursively
    (maps carry only strings and numbers in these protos: left as they are)."""
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        if field.type == field.TYPE_BYTES:
            data[field.name] = (
                ["0x" + item.hex() for item in value] if field.is_repeated else "0x" + value.hex()
            )
        elif (
            field.type != field.TYPE_MESSAGE
            or field.name not in data
            or (field.message_type is not None and field.message_type.GetOptions().map_entry)
        ):
            continue
        elif field.is_repeated:
            data[field.name] = [
                _hex_bytes(item, dict(entry))
                for item, entry in zip(value, data[field.name], strict=True)
            ]
        else:
            data[field.name] = _hex_bytes(value, dict(data[field.name]))
    return {name: data[name] for name in message.DESCRIPTOR.fields_by_name if name in data}
