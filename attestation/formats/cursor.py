"""A bounds-checked reader over evidence bytes, raising the caller's format error."""

from __future__ import annotations

import struct
from typing import Any

from attestation.errors import EvidenceFormatError


class ByteCursor:
    """Reads fixed-size little-endian fields in order, naming each field in its errors."""

    def __init__(
        self, data: bytes, error: type[EvidenceFormatError], what: str, offset: int = 0
    ) -> None:
        self.data = data
        self.offset = offset
        self._error = error
        self._what = what

    def take(self, size: int, field: str) -> bytes:
        end = self.offset + size
        if size < 0 or end > len(self.data):
            raise self._error(
                f"{self._what} is truncated: field '{field}' needs {size} bytes at offset "
                f"{self.offset}, but the input ends at {len(self.data)} bytes"
            )
        chunk = self.data[self.offset : end]
        self.offset = end
        return chunk

    def u16(self, field: str) -> int:
        return int.from_bytes(self.take(2, field), "little")

    def u32(self, field: str) -> int:
        return int.from_bytes(self.take(4, field), "little")

    def unpack(self, layout: struct.Struct, field: str) -> tuple[Any, ...]:
        """Read every field of a fixed `layout` at once (`field` names it in errors)."""
        return layout.unpack(self.take(layout.size, field))

    def fail(self, message: str) -> EvidenceFormatError:
        return self._error(f"{self._what}: {message}")
