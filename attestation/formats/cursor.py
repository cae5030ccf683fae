"""A bounds-checked reader over evidence bytes, raising the caller's format error."""

from __future__ import annotations

import struct
from typing import Any, NamedTuple

from attestation.errors import EvidenceFormatError


class Layout(NamedTuple):
    """A fixed little-endian layout: its struct, and the names of the fields it keeps."""

    struct: struct.Struct
    names: tuple[str, ...]


def layout(*fields: tuple[str | None, str]) -> Layout:
    """A layout of (name, struct code) pairs; reserved bytes ("x" codes) have no name."""
    return Layout(
        struct.Struct("<" + "".join(code for _, code in fields)),
        tuple(name for name, _ in fields if name is not None),
    )


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

    def read(self, fields: Layout, what: str) -> dict[str, Any]:
        """Read a layout's named fields at once, with one bounds check (`what` in errors)."""
        values = fields.struct.unpack(self.take(fields.struct.size, what))
        return dict(zip(fields.names, values, strict=True))

    def fail(self, message: str) -> EvidenceFormatError:
        return self._error(f"{self._what}: {message}")
