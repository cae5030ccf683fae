"""Key files: the vault owner's (`vault … --key FILE`, a secp256k1 private key as hex) and
the agent owner's (`owner … --key FILE`, an Ed25519 seed as hex), read the same way.

The file holds 64 hex digits, optionally 0x-prefixed, surrounding whitespace ignored. Like
the host's token file, it must be readable by its owner only (chmod 600). The key is
never shown: no message here or elsewhere quotes the file's contents.
"""

from __future__ import annotations

import stat
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from host.cli.outcome import UsageError

_KEY_HEX_DIGITS = 64
_HEX = frozenset("0123456789abcdefABCDEF")
# A key file is a line of hex; anything much longer is not one (and is not read whole).
_MAX_KEY_FILE_BYTES = 4096


def load_owner_key(path: Path) -> LocalAccount:
    """The owner's account from its key file.

    Raises:
        UsageError: the file is missing or unreadable, other users may read or change it,
            or it does not hold exactly one 32-byte secp256k1 key in hex. The message names
            the file and the problem, never its contents.
    """
    where = f"--key {path}"
    secret = read_hex_key(path, where, "a secp256k1 private key")
    try:
        account: LocalAccount = Account.from_key(secret)
    except Exception:  # eth_keys' errors may carry the value: say only what is wrong
        raise UsageError(
            f"{where}: not a valid secp256k1 private key (zero, or not below the curve order)"
        ) from None
    return account


def read_hex_key(path: Path, where: str, what: str) -> bytes:
    """The 32 bytes of a key file: 64 hex digits (optionally 0x-prefixed) and nothing else,
    in a regular file only its owner may read or change.

    Raises:
        UsageError: naming `where` and the problem, never the file's contents.
    """
    try:
        mode = path.stat().st_mode
        with path.open("rb") as file:
            raw = file.read(_MAX_KEY_FILE_BYTES + 1)
    except FileNotFoundError:
        raise UsageError(f"{where}: no such file") from None
    except OSError as exc:
        raise UsageError(f"{where}: cannot read: {exc.strerror or type(exc).__name__}") from None
    if not stat.S_ISREG(mode):
        raise UsageError(f"{where}: not a regular file")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UsageError(
            f"{where}: mode {stat.S_IMODE(mode):04o} lets other users read or change it; "
            "expected owner-only access (chmod 600)"
        )
    try:
        text = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        text = None
    digits = text.removeprefix("0x") if text is not None else ""
    if len(raw) > _MAX_KEY_FILE_BYTES or len(digits) != _KEY_HEX_DIGITS or not set(digits) <= _HEX:
        raise UsageError(
            f"{where}: expected {what} as {_KEY_HEX_DIGITS} hex digits "
            "(optionally 0x-prefixed) and nothing else"
        )
    return bytes.fromhex(digits)
