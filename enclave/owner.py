"""Owner commands: signed by the owner (Ed25519), encrypted to the enclave (X25519 SealedBox).

The host relays the ciphertext untouched: it can neither read a command nor forge one. The
signed message names the enclave's address and carries a counter that must exceed every
counter seen before, so a command cannot be replayed, nor sent to another enclave.
"""

from __future__ import annotations

from nacl.exceptions import BadSignatureError, CryptoError
from nacl.public import PrivateKey, SealedBox
from nacl.signing import VerifyKey
from pydantic import ValidationError

from wire.owner_commands import DOMAIN, OwnerCommand, make_owner_command

__all__ = [
    "DOMAIN",
    "OwnerCommand",
    "OwnerCommandError",
    "make_owner_command",
    "open_owner_command",
]

MAX_CIPHERTEXT = 4096


class OwnerCommandError(Exception):
    """An owner command was refused; `reason` is machine-readable."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def open_owner_command(
    ciphertext: bytes,
    *,
    box_key: PrivateKey,
    owner_public_key: bytes,
    enclave_address: str,
    last_counter: int,
) -> OwnerCommand:
    """Decrypt, authenticate and check an owner command.

    Raises:
        OwnerCommandError: with reason owner_command_undecryptable, owner_signature_invalid,
            owner_command_malformed, owner_command_wrong_enclave or owner_command_replayed.
    """
    if len(ciphertext) > MAX_CIPHERTEXT:
        raise OwnerCommandError(
            "owner_command_malformed", f"{len(ciphertext)} bytes; the limit is {MAX_CIPHERTEXT}"
        )
    try:
        signed = SealedBox(box_key).decrypt(ciphertext)
    except CryptoError:
        raise OwnerCommandError(
            "owner_command_undecryptable", "not encrypted to this enclave's X25519 key"
        ) from None
    try:
        message = VerifyKey(owner_public_key).verify(signed)
    except (BadSignatureError, ValueError):
        raise OwnerCommandError(
            "owner_signature_invalid", "not signed by the configured owner key"
        ) from None
    try:
        command = OwnerCommand.model_validate_json(message)
    except ValidationError as exc:
        raise OwnerCommandError("owner_command_malformed", str(exc.errors()[0]["msg"])) from None
    if command.enclave.lower() != enclave_address.lower():
        raise OwnerCommandError(
            "owner_command_wrong_enclave", f"addressed to {command.enclave}, not {enclave_address}"
        )
    if command.counter <= last_counter:
        raise OwnerCommandError(
            "owner_command_replayed",
            f"counter {command.counter} is not above the last accepted {last_counter}",
        )
    return command
