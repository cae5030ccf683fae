"""The arguments several commands share: `--at`, `--nonce`, `--trust-root` and input files.

Each function turns one argument's text into the value a command uses, or raises
`UsageError` with a message naming the option, what it expects and what it found.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from attestation.binding import NONCE_SIZE
from attestation.errors import CertificateChainError
from attestation.timefmt import parse_time
from attestation.trust import TrustAnchors, default_trust_anchors, load_trust_root_file
from host.cli.outcome import UsageError


def parse_at(text: str | None) -> datetime:
    """The time to verify at: `--at` (RFC 3339, with a zone), else now.

    Raises:
        UsageError: the text is not an RFC 3339 time with a zone.
    """
    if text is None:
        return datetime.now(UTC)
    try:
        return parse_time(text)
    except ValueError as exc:
        raise UsageError(
            f"--at: expected an RFC 3339 time with a zone (e.g. 2025-07-01T00:00:00Z), "
            f"found {text!r} ({exc})"
        ) from None


def parse_nonce(text: str | None) -> bytes | None:
    """The `--nonce` bytes (hex, optionally 0x-prefixed), or None when not given.

    Raises:
        UsageError: the text is not hex, or not NONCE_SIZE bytes.
    """
    if text is None:
        return None
    try:
        nonce = bytes.fromhex(text.strip().removeprefix("0x"))
    except ValueError:
        raise UsageError(f"--nonce: expected hex digits, found {text!r}") from None
    if len(nonce) != NONCE_SIZE:
        raise UsageError(f"--nonce: expected {NONCE_SIZE} bytes, found {len(nonce)} bytes")
    return nonce


def _read_trust_root(name: str) -> list[bytes]:
    try:
        return load_trust_root_file(Path(name))
    except CertificateChainError as exc:  # unreadable, or holds no certificate
        raise UsageError(f"--trust-root: {exc}") from None


def trust_anchors(trust_root_files: list[str]) -> TrustAnchors:
    """The pinned vendor roots, and the roots of every `--trust-root` file.

    Raises:
        UsageError: a file cannot be read or holds no certificate.
    """
    anchors = default_trust_anchors()
    extra = [der for name in trust_root_files for der in _read_trust_root(name)]
    return anchors.with_extra_roots(extra) if extra else anchors


def read_input(name: str, what: str) -> bytes:
    """The bytes of an input file, or of standard input for '-'; `what` names it in errors.

    Raises:
        UsageError: the file cannot be read.
    """
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(name).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {what} file {name}: {exc.strerror}") from None
