"""The files `verify agent --receipts FILE --attestation FILE` reads, parsed and checked.

`tee-agent receipts --out` writes the receipts file (an array of receipts, or one object,
each with the decision and input texts beside its fields) and `tee-agent attest --out` the
attestation file. Whoever hands an auditor these files may have edited them at will, so
every way they can be wrong ends in `EvidenceFileError` with a message naming the item.
"""

from __future__ import annotations

from pydantic import ValidationError

from attestation.binding import AgentAttestation
from attestation.errors import ReceiptFormatError
from attestation.jsontext import loads_bounded
from attestation.receipt import Receipt
from attestation.receipt_texts import ReceiptTexts

# The texts `tee-agent receipts --out` writes beside each receipt's fields.
TEXT_FIELDS = ("decision_json", "input_json")
# Also written beside each receipt, and not part of what it signs.
_EXTRA_FIELDS = (*TEXT_FIELDS, "receipt_hash", "transaction")


class EvidenceFileError(ValueError):
    """A receipts or attestation file cannot be used; the message says where and why."""


def read_receipts_file(text: str) -> tuple[list[Receipt], list[ReceiptTexts] | None]:
    """The receipts of a receipts file, oldest first, and their texts. A file of bare
    receipts (no item has a text) has no texts to check: None; otherwise an item without
    one holds it back, as an empty text.

    Raises:
        EvidenceFileError: not JSON, not an array of objects (or one object), or an item
            that is not a well-formed receipt or whose texts are not strings.
    """
    try:
        raw = loads_bounded(text)
    except ValueError as exc:
        raise EvidenceFileError(f"the receipts file is not JSON: {exc}") from None
    items = raw if isinstance(raw, list) else [raw]
    receipts, texts = [], []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise EvidenceFileError(
                f"receipts file item {index} is of type {type(item).__name__}, expected an object"
            )
        try:
            receipts.append(
                Receipt.from_json_dict({k: v for k, v in item.items() if k not in _EXTRA_FIELDS})
            )
            texts.append(
                ReceiptTexts.model_validate({name: item.get(name, "") for name in TEXT_FIELDS})
            )
        except (ReceiptFormatError, ValidationError) as exc:
            raise EvidenceFileError(f"receipts file item {index}: {exc}") from None
    has_texts = any(name in item for item in items for name in TEXT_FIELDS)
    return receipts, texts if has_texts else None


def read_attestation_file(text: str) -> AgentAttestation:
    """The attestation `tee-agent attest --out` wrote: quote, nonce and identity.

    Raises:
        EvidenceFileError: not JSON, or not an object with those fields well formed.
    """
    try:
        return AgentAttestation.from_file_dict(loads_bounded(text))
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise EvidenceFileError(f"the attestation file cannot be used: {exc}") from None
