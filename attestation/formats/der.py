"""A minimal, strict DER (ITU-T X.690) reader for certificate extension values.

Only what extension parsing needs: one TLV at a time, the elements of a SEQUENCE, INTEGER,
OBJECT IDENTIFIER and OCTET STRING. It reads DER, not BER: definite lengths in their shortest
form only, single-byte tags only (tag numbers 0..30). Standard library only; used for the AMD
VCEK extensions and meant to be shared with the Intel PCK certificate extensions.
"""

from __future__ import annotations

from collections.abc import Iterator

# Universal tags as they appear in the identifier octet (X.690 section 8.1.2; bit 6 set means
# constructed, so SEQUENCE is 0x30 and SET is 0x31).
TAG_INTEGER = 0x02
TAG_OCTET_STRING = 0x04
TAG_OID = 0x06
TAG_ENUMERATED = 0x0A
TAG_SEQUENCE = 0x30

# X.690 section 8.1.3.5: long-form lengths take at most 126 subsequent octets; four are more
# than enough for anything this package reads (values up to 4 GiB).
_MAX_LENGTH_OCTETS = 4


class DerError(ValueError):
    """The bytes are not the DER encoding that was expected (truncated, malformed, wrong tag)."""


def read_tlv(data: bytes, offset: int = 0) -> tuple[int, bytes, int]:
    """Read the TLV starting at `offset`: return (tag, value, offset just past the value).

    The tag is the identifier octet as is (class, constructed bit and tag number), so a
    SEQUENCE is 0x30.

    Raises:
        DerError: the data ends early, the tag uses the multi-byte form, or the length is
            indefinite, not in its shortest form, or runs past the end of `data`.
    """
    if offset < 0 or offset >= len(data):
        raise DerError(f"DER: expected a tag at offset {offset}, found the end of the data")
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise DerError(
            f"DER: tag 0x{tag:02x} at offset {offset} uses the multi-byte tag form, "
            "which this reader does not support"
        )
    position = offset + 1
    if position >= len(data):
        raise DerError(f"DER: expected a length at offset {position}, found the end of the data")
    first = data[position]
    position += 1
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0:
            raise DerError(f"DER: indefinite length at offset {position - 1} is not allowed in DER")
        if count > _MAX_LENGTH_OCTETS:
            raise DerError(
                f"DER: length at offset {position - 1} takes {count} octets; "
                f"at most {_MAX_LENGTH_OCTETS} are supported"
            )
        if position + count > len(data):
            raise DerError(f"DER: length at offset {position - 1} is truncated")
        length_bytes = data[position : position + count]
        position += count
        length = int.from_bytes(length_bytes, "big")
        if length_bytes[0] == 0 or length < 0x80:
            raise DerError(
                f"DER: length {length} at offset {offset + 1} is not in its shortest form"
            )
    end = position + length
    if end > len(data):
        raise DerError(
            f"DER: value of tag 0x{tag:02x} at offset {offset} needs {length} bytes, "
            f"only {len(data) - position} remain"
        )
    return tag, bytes(data[position:end]), end


def decode_single(data: bytes, expected_tag: int) -> bytes:
    """The value of `data`, which must be exactly one TLV with tag `expected_tag`.

    Raises:
        DerError: malformed, another tag, or bytes left over after the TLV.
    """
    tag, value, end = read_tlv(data, 0)
    if tag != expected_tag:
        raise DerError(f"DER: expected tag 0x{expected_tag:02x}, found 0x{tag:02x}")
    if end != len(data):
        raise DerError(
            f"DER: expected one TLV of {end} bytes, found {len(data) - end} trailing byte(s)"
        )
    return value


def iter_elements(content: bytes) -> Iterator[tuple[int, bytes]]:
    """Yield (tag, value) for each TLV in `content`, e.g. the value of a SEQUENCE or SET.

    Raises:
        DerError: an element is malformed or runs past the end of `content`.
    """
    offset = 0
    while offset < len(content):
        tag, value, offset = read_tlv(content, offset)
        yield tag, value


def sequence_elements(data: bytes) -> list[tuple[int, bytes]]:
    """The (tag, value) elements of `data`, which must be exactly one SEQUENCE.

    Raises:
        DerError: not a single well-formed SEQUENCE.
    """
    return list(iter_elements(decode_single(data, TAG_SEQUENCE)))


def decode_integer(value: bytes) -> int:
    """The signed integer in the value octets of an INTEGER (or ENUMERATED).

    Raises:
        DerError: empty, or not in its shortest two's-complement form.
    """
    if not value:
        raise DerError("DER: INTEGER has no content octets; expected at least one")
    if len(value) > 1 and (
        (value[0] == 0x00 and value[1] < 0x80) or (value[0] == 0xFF and value[1] >= 0x80)
    ):
        raise DerError(f"DER: INTEGER {value.hex()} is not in its shortest form")
    return int.from_bytes(value, "big", signed=True)


def decode_oid(value: bytes) -> str:
    """The dotted-decimal form of the value octets of an OBJECT IDENTIFIER.

    Raises:
        DerError: empty, a sub-identifier with a leading 0x80 octet, or one left unfinished.
    """
    if not value:
        raise DerError("DER: OBJECT IDENTIFIER has no content octets; expected at least one")
    arcs: list[int] = []
    current = 0
    starting = True
    for index, octet in enumerate(value):
        if starting and octet == 0x80:
            raise DerError(
                f"DER: OBJECT IDENTIFIER sub-identifier at octet {index} has a leading 0x80 "
                "(not the shortest form)"
            )
        current = (current << 7) | (octet & 0x7F)
        starting = not octet & 0x80
        if starting:
            arcs.append(current)
            current = 0
    if not starting:
        raise DerError("DER: OBJECT IDENTIFIER ends inside a sub-identifier")
    first = arcs[0]
    # X.690 section 8.19.4: the first sub-identifier packs the first two arcs (40 * X + Y).
    leading = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(str(arc) for arc in [*leading, *arcs[1:]])


def encode_oid(dotted: str) -> bytes:
    """The value octets of an OBJECT IDENTIFIER given in dotted-decimal form.

    Raises:
        DerError: fewer than two arcs, a non-numeric arc, or a first/second arc out of range.
    """
    try:
        arcs = [int(part) for part in dotted.split(".")]
    except ValueError:
        raise DerError(f"OID {dotted!r}: expected dotted decimal numbers") from None
    if len(arcs) < 2 or arcs[0] > 2 or arcs[1] < 0 or (arcs[0] < 2 and arcs[1] >= 40):
        raise DerError(f"OID {dotted!r}: expected a first arc 0..2 and a valid second arc")
    out = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        if arc < 0:
            raise DerError(f"OID {dotted!r}: arcs must not be negative")
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out.extend(reversed(chunk))
    return bytes(out)
