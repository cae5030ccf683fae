"""`tee-agent owner pause|resume`: the owner's command to a running agent, end to end.

It first verifies the agent's attestation over a fresh nonce (as `tee-agent attest` does:
the quote to a trusted root, the policy, the binding of the identity and the nonce), then
signs the command with the owner's Ed25519 key and seals it to the X25519 key that very
quote attests, so the host that relays it can neither read, change nor redirect it; then it
sends it (SubmitOwnerCommand, with the host's bearer token) and prints the receipt the
enclave made of it. With --config, the attested config hash must be that file's and the
file must name this owner key, or nothing is sent.

The counter, which must exceed every counter the enclave accepted before, defaults to the
current time in microseconds (so commands sent one after another always rise); --counter
sets it. Exit codes: 0 the command was applied (its receipt printed); 1 the attestation or
a check failed, or the enclave refused the command (forged, replayed, another owner); 2 bad
input, an unreachable agent, a missing token.
"""

from __future__ import annotations

import argparse
import os
import stat
import time
from pathlib import Path
from typing import Literal

import grpc
from nacl.signing import SigningKey
from tee_agent_rpc import agent_pb2 as pb

from attestation.binding import NONCE_SIZE
from enclave.config import ConfigError, load_config
from host.cli.agent_attestation import fetch_attestation, trust_settings, verify_attestation
from host.cli.connection import ClientError, connect, report_failure, target
from host.cli.outcome import EXIT_CHECK_FAILED, EXIT_OK, UsageError, print_json
from host.cli.receipts import event_dict
from host.cli.vault_key import read_hex_key
from wire.owner_commands import make_owner_command

# Where `tee-agent init` puts them, read from the working directory by default.
DEFAULT_KEY = Path("owner.key")
DEFAULT_TOKEN_FILE = Path("auth-token")
TOKEN_VARIABLE = "TEE_AGENT_TOKEN"  # noqa: S105 (the variable's name, not a secret)
CALL_TIMEOUT = 120.0  # the enclave may be busy with a batch; an owner command waits its turn
_MAX_TOKEN_BYTES = 4096


def run(args: argparse.Namespace) -> int:
    """Carry out `owner pause|resume`; an error prints `error: ...` (and JSON with --json)."""
    try:
        return _owner(args)
    except (ClientError, UsageError) as exc:
        return report_failure(exc, {"applied": False, "error": str(exc)} if args.json else None)


def _owner(args: argparse.Namespace) -> int:
    action: Literal["pause", "resume"] = args.action
    key = SigningKey(read_hex_key(args.key, f"--key {args.key}", "an Ed25519 seed"))
    token = _token(args)
    counter = args.counter if args.counter is not None else time.time_ns() // 1000
    if not 1 <= counter <= 2**63 - 1:
        raise UsageError(f"--counter must be between 1 and 2^63-1, got {counter}")
    trust = trust_settings(args)
    attestation = fetch_attestation(args, os.urandom(NONCE_SIZE))
    verdict = verify_attestation(attestation, trust)
    identity = attestation.identity
    if not verdict.accepted:
        failed = [c.name for c in verdict.report.failed_checks()]
        if not verdict.binding.passed:
            failed.append(verdict.binding.name)
        raise ClientError(
            f"the agent at {target(args)} does not attest as required ({', '.join(failed) or 'policy'}): "
            "nothing sent (see `tee-agent attest`)",
            EXIT_CHECK_FAILED,
        )
    if args.config is not None:
        _check_config(args.config, identity.config_hash, key)
    ciphertext = make_owner_command(
        key, identity.x25519_public_key, identity.address, action, counter
    )
    channel, stub = connect(args)
    with channel:
        try:
            answer = stub.SubmitOwnerCommand(
                pb.SubmitOwnerCommandRequest(ciphertext=ciphertext),
                metadata=(("authorization", f"Bearer {token}"),),
                timeout=CALL_TIMEOUT,
            )
            event = stub.GetReceipt(
                pb.GetReceiptRequest(seq=answer.receipt_seq), timeout=CALL_TIMEOUT
            )
        except grpc.RpcError as exc:
            raise _refused(args, exc) from None
    receipt = event_dict(event)
    if args.json:
        print_json({"applied": True, "action": action, "paused": answer.paused,
                    "counter": counter, "agent": identity.address, "receipt": receipt})  # fmt: skip
    else:
        state = "paused" if answer.paused else "running (resumed)"
        print(f"{action} applied: agent {identity.address} is {state}")
        print(f"receipt {receipt['seq']}: {receipt['verdict']} (hash {receipt['receipt_hash']})")
        print(f"counter {counter}; the attestation was verified before sending")
    return EXIT_OK


def _token(args: argparse.Namespace) -> str:
    """The host's bearer token: $TEE_AGENT_TOKEN, else --token-file (default ./auth-token).

    Raises:
        UsageError: neither is there, or the file is unreadable, readable by others, or not
            one token.
    """
    from_environment = os.environ.get(TOKEN_VARIABLE, "").strip()
    if from_environment and args.token_file is None:
        return from_environment
    path = args.token_file or DEFAULT_TOKEN_FILE
    where = f"--token-file {path}"
    try:
        mode = path.stat().st_mode
        with path.open("rb") as file:
            raw = file.read(_MAX_TOKEN_BYTES + 1)
    except FileNotFoundError:
        raise UsageError(
            f"{where}: no such file (the host's bearer token: `tee-agent init` writes "
            f"auth-token; or set ${TOKEN_VARIABLE})"
        ) from None
    except OSError as exc:
        raise UsageError(f"{where}: cannot read: {exc.strerror or type(exc).__name__}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UsageError(
            f"{where}: mode {stat.S_IMODE(mode):04o} lets other users read or change it; "
            "expected owner-only access (chmod 600)"
        )
    token = raw.decode("utf-8", errors="replace").strip()
    if len(raw) > _MAX_TOKEN_BYTES or not token or any(c.isspace() for c in token):
        raise UsageError(f"{where}: expected one token without spaces")
    return token


def _check_config(path: Path, attested_hash: bytes, key: SigningKey) -> None:
    """The attested config must be `path`'s, and name this owner key.

    Raises:
        UsageError: the file cannot be read as an enclave config (exit 2).
        ClientError: (exit 1) another config is attested, or it names another owner.
    """
    try:
        config = load_config(path)
    except ConfigError as exc:
        raise UsageError(f"--config {path}: {exc}") from None
    if config.config_hash() != attested_hash:
        raise ClientError(
            f"the agent attests config hash 0x{attested_hash.hex()}, not the hash of {path} "
            f"(0x{config.config_hash().hex()}): nothing sent",
            EXIT_CHECK_FAILED,
        )
    if config.owner.public_key.lower() != key.verify_key.encode().hex():
        raise ClientError(
            f"{path} names owner key {config.owner.public_key}, not the one in --key: "
            "the enclave would refuse the command; nothing sent",
            EXIT_CHECK_FAILED,
        )


def _refused(args: argparse.Namespace, exc: grpc.RpcError) -> ClientError:
    code, details = exc.code(), exc.details() or ""
    if code == grpc.StatusCode.PERMISSION_DENIED:  # the enclave refused the command itself
        return ClientError(f"the enclave refused the command: {details}", EXIT_CHECK_FAILED)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return ClientError(f"cannot reach the agent at {target(args)}: {details or code.name}")
    return ClientError(f"the agent at {target(args)} refused: {code.name}: {details}")
