"""Evidence arrives as raw bytes, hex text or base64 text; this turns any of them into bytes."""

from __future__ import annotations

import base64
import binascii
import re

from attestation.errors import EvidenceFormatError

# Larger than any real quote, document or report (a DCAP quote with a full PCK chain is
# about 5 KB; padded buffers reach 8 KB). Anything bigger is refused before parsing.
MAX_EVIDENCE_BYTES = 1 << 20

_HEX_TEXT = re.compile(rb"(?:0x)?[0-9a-fA-F\s]+")
_BASE64_TEXT = re.compile(rb"[A-Za-z0-9+/=_\-\s]+")


def decode_evidence(data: bytes) -> bytes:
    """Return the evidence bytes from raw bytes, hex text or base64 text.

    Text forms may carry surrounding whitespace and line breaks. Raw binary evidence always
    contains bytes outside the printable ASCII range in its header, so it is never mistaken
    for text.

    Raises:
        EvidenceFormatError: empty or oversized input, or text that is neither hex nor base64.
    """
    if not data:
        raise EvidenceFormatError("evidence is empty: expected a quote, document or report")
    if len(data) > MAX_EVIDENCE_BYTES:
        raise EvidenceFormatError(
            f"evidence is {len(data)} bytes; the limit is {MAX_EVIDENCE_BYTES} bytes"
        )
    if _HEX_TEXT.fullmatch(data):
        text = b"".join(data.split())
        if text[:2].lower() == b"0x":
            text = text[2:]
        if len(text) % 2 == 0:
            try:
                return _non_empty(binascii.unhexlify(text))
            except binascii.Error:
                pass
    if _BASE64_TEXT.fullmatch(data):
        text = b"".join(data.split())
        try:
            if b"-" in text or b"_" in text:
                return _non_empty(base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4)))
            return _non_empty(base64.b64decode(text + b"=" * (-len(text) % 4), validate=True))
        except (binascii.Error, ValueError) as exc:
            raise EvidenceFormatError(
                f"evidence looks like base64 text but does not decode: {exc}"
            ) from None
    return data


def _non_empty(decoded: bytes) -> bytes:
    if not decoded:
        raise EvidenceFormatError("evidence text decodes to zero bytes")
    return decoded
