"""The attestation vectors copied from real hardware, and what each must verify to."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from attestation.timefmt import parse_time

VECTORS_DIR = Path(__file__).parent / "vectors" / "attestation"


@cache
def manifest() -> dict[str, Any]:
    return json.loads((VECTORS_DIR / "MANIFEST.json").read_text())  # type: ignore[no-any-return]


def vectors(of_type: str | None = None) -> list[dict[str, Any]]:
    """Manifest entries, optionally only those of one `type` (e.g. "intel-tdx-quote")."""
    return [v for v in manifest()["vectors"] if of_type is None or v["type"] == of_type]


def vector_bytes(name: str) -> bytes:
    return (VECTORS_DIR / name).read_bytes()


def vector_ids(entries: list[dict[str, Any]]) -> list[str]:
    return [entry["file"] for entry in entries]


def at(text: str):  # type: ignore[no-untyped-def]
    return parse_time(text)
