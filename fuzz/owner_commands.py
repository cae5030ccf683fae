"""Target `owner_commands`: `enclave.owner.open_owner_command`, the decoding of an owner
command (SealedBox to the enclave's X25519 key, around an Ed25519-signed JSON command).

Anyone can encrypt to the enclave's public key, and the owner's own tooling writes the JSON,
so the fuzzed bytes reach every layer. The first byte picks the layer they enter at:
0 the ciphertext as the host relays it; 1 a signed message, encrypted here to the enclave
(anyone can); 2 the command JSON, signed here with the owner's key (what a confused or
compromised owner tool could send). Documented outcome: a command, or `OwnerCommandError`.
"""

from __future__ import annotations

import contextlib
import json
from functools import cache

from nacl.public import PrivateKey, SealedBox
from nacl.signing import SigningKey

from enclave.owner import DOMAIN, OwnerCommandError, make_owner_command, open_owner_command
from fuzz.harness import choose, with_choice

ADDRESS = "0x" + "ab" * 20


@cache
def _keys() -> tuple[PrivateKey, SigningKey]:
    # Fixed keys: an input means the same thing in every run (a finding replays).
    return PrivateKey(bytes(range(32))), SigningKey(bytes(range(32, 64)))


def TestOneInput(data: bytes) -> None:
    box_key, owner = _keys()
    layer, payload = choose(data, 3)
    if layer == 0:
        ciphertext = payload
    elif layer == 1:
        ciphertext = SealedBox(box_key.public_key).encrypt(payload)
    else:
        ciphertext = SealedBox(box_key.public_key).encrypt(owner.sign(payload))
    with contextlib.suppress(OwnerCommandError):
        open_owner_command(
            ciphertext,
            box_key=box_key,
            owner_public_key=owner.verify_key.encode(),
            enclave_address=ADDRESS,
            last_counter=5,
        )


def seeds() -> list[bytes]:
    box_key, owner = _keys()
    box = bytes(box_key.public_key)
    command = {"domain": DOMAIN, "action": "pause", "counter": 7, "enclave": ADDRESS}
    text = json.dumps(command, sort_keys=True, separators=(",", ":")).encode()
    return [
        with_choice(0, make_owner_command(owner, box, ADDRESS, "pause", 9)),
        with_choice(0, make_owner_command(owner, box, ADDRESS, "resume", 3)),
        with_choice(1, owner.sign(text)),
        with_choice(2, text),
        with_choice(2, text.replace(b"pause", b"resume").replace(b"7", b"1")),
    ]
