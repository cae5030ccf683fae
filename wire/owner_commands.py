"""The owner command's format: what the owner signs and seals to the enclave.

Both sides take it from here: the owner's tools make a command (`make_owner_command`,
`tee-agent owner`), the enclave opens and checks one (`enclave.owner`). The signed message
is the canonical JSON of `OwnerCommand`, signed with the owner's Ed25519 key (the one whose
public key the measured config names), then sealed (libsodium SealedBox) to the enclave's
attested X25519 key, so the host that relays it can neither read nor forge it.
"""

from __future__ import annotations

import json
from typing import Literal

from nacl.public import PublicKey, SealedBox
from nacl.signing import SigningKey
from pydantic import BaseModel, ConfigDict, Field

DOMAIN = "tee-agent/owner-command/v1"


class OwnerCommand(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    domain: Literal["tee-agent/owner-command/v1"]
    action: Literal["pause", "resume"]
    counter: int = Field(ge=1, le=2**63 - 1)
    enclave: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")


def make_owner_command(
    owner_key: SigningKey,
    enclave_box_key: bytes,
    enclave_address: str,
    action: Literal["pause", "resume"],
    counter: int,
) -> bytes:
    """The ciphertext an owner sends: SealedBox(enclave key, Ed25519-signed command)."""
    command = OwnerCommand(domain=DOMAIN, action=action, counter=counter, enclave=enclave_address)
    message = json.dumps(command.model_dump(), sort_keys=True, separators=(",", ":")).encode()
    return SealedBox(PublicKey(enclave_box_key)).encrypt(owner_key.sign(message))
