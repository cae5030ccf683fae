"""What the targets share: a fixed verification time, a choice byte, and a context stub."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import grpc

REPO = Path(__file__).resolve().parent.parent
VECTORS = REPO / "tests" / "vectors" / "attestation"
CORPUS = Path(__file__).resolve().parent / "corpus"
# Every evidence vector's collateral is current at this time (tests/vectors MANIFEST.json),
# so fuzzed inputs reach the checks past the validity windows.
VERIFY_AT = datetime(2025, 6, 1, tzinfo=UTC)
# Statuses a call may end with whatever it is sent: what the proto and docs name.
NEVER = frozenset({grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL})


class Finding(AssertionError):
    """An outcome outside the target's documented set: the fuzzer reports it as a crash."""


def choose(data: bytes, choices: int) -> tuple[int, bytes]:
    """The first byte picks one of `choices` (e.g. an RPC); the rest is its input."""
    if not data:
        return 0, b""
    return data[0] % choices, data[1:]


def with_choice(index: int, payload: bytes) -> bytes:
    """The input that `choose` turns into (`index`, `payload`): how seeds are written."""
    return bytes([index]) + payload


def split(payload: bytes, parts: int) -> list[bytes]:
    """Cut `payload` at 0xFF 0x00 markers into at most `parts` pieces (several messages)."""
    return payload.split(b"\xff\x00", parts - 1) if payload else [b""]


def join(pieces: Sequence[bytes]) -> bytes:
    """The inverse of `split`, for seeds."""
    return b"\xff\x00".join(pieces)


class Aborted(Exception):
    """`context.abort` was called: the servicer answered with a status, as gRPC would."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


class AbortContext:
    """The slice of grpc.ServicerContext the servicers use; abort raises `Aborted`."""

    def __init__(self, metadata: Sequence[tuple[str, str]] = ()) -> None:
        self._metadata = tuple(metadata)

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise Aborted(code, details)

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def is_active(self) -> bool:
        return True


def check_status(code: grpc.StatusCode, allowed: frozenset[grpc.StatusCode], what: str) -> None:
    """Raise a Finding unless `code` is OK or one of `allowed`."""
    if code != grpc.StatusCode.OK and code not in allowed:
        raise Finding(f"{what} answered {code.name}, outside {sorted(c.name for c in allowed)}")
