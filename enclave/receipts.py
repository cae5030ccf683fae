"""Making decision receipts: the attested account key signs each one's EIP-712 digest."""

from __future__ import annotations

from attestation.receipt import Receipt, receipt_hash
from enclave.signer import AccountSigner

# Stands in for the signature while the fields are validated; never leaves this function.
_PLACEHOLDER_SIGNATURE = bytes(64) + b"\x1b"


def make_receipt(
    signer: AccountSigner,
    *,
    chain_id: int,
    seq: int,
    prev_hash: bytes,
    input_digest: bytes,
    model_hash: bytes,
    config_hash: bytes,
    decision_hash: bytes,
    verdict: str,
    tx_hash: bytes,
    timestamp: int,
) -> Receipt:
    """Sign and return the receipt with these fields, by the attested account key.

    `prev_hash` is the previous receipt's `receipt_hash` (32 zero bytes for seq 1); zeros
    in a hash field mean "none".

    Raises:
        pydantic.ValidationError: a field is out of range: a hash not 32 bytes, seq 0 or
            beyond uint64, a verdict empty, over 128 characters or not printable ASCII.
        ReceiptFormatError: chain_id is not a positive uint256.
    """
    unsigned = Receipt(
        seq=seq,
        prev_hash=prev_hash,
        input_digest=input_digest,
        model_hash=model_hash,
        config_hash=config_hash,
        decision_hash=decision_hash,
        verdict=verdict,
        tx_hash=tx_hash,
        timestamp=timestamp,
        signature=_PLACEHOLDER_SIGNATURE,
    )
    # Validated above, so nothing is signed that is not a well-formed receipt.
    signature = signer.sign_digest(receipt_hash(unsigned, chain_id))
    return unsigned.model_copy(update={"signature": signature})
