"""Numbers that travel as decimal text (token amounts beyond 64 bits), parsed strictly.

`str.isdigit` and `int` accept more than a decimal number: "²" is a digit to `isdigit` but
not to `int`, `int` takes "١٢" (Arabic-Indic digits), " 1", "+1" and "1_000". An amount on
the wire is ASCII digits only, of bounded length, or it is refused by name.
"""

from __future__ import annotations

import re

from wire.errors import MalformedMessage

UINT256_MAX = 2**256 - 1
UINT256_DIGITS = len(str(UINT256_MAX))  # 78
# ASCII digits only: `\d` would match every Unicode decimal digit.
_DIGITS = re.compile(r"[0-9]+")


class MalformedNumber(MalformedMessage):
    """A field that should hold a decimal number does not; names the field."""


def parse_uint256_text(text: str, field: str) -> int:
    """The unsigned integer `text` writes in ASCII decimal digits (no sign, no spaces, no
    exponent, no separators), at most UINT256_MAX.

    Raises:
        MalformedNumber: anything else, naming `field` and (the start of) what was found.
    """
    if len(text) > UINT256_DIGITS or not _DIGITS.fullmatch(text):
        raise MalformedNumber(
            f"{field} must be an unsigned integer of 1 to {UINT256_DIGITS} ASCII digits, "
            f"found {text[:32]!r}{'...' if len(text) > 32 else ''}"
        )
    value = int(text)
    if value > UINT256_MAX:
        raise MalformedNumber(f"{field} must be at most 2^256 - 1, found {text}")
    return value
