"""Everything the enclave must not lose: keys, nonce, limits, receipts' head, pending outputs.

It exists in plaintext only inside the enclave; the host only ever holds it sealed. Every
change bumps `state_version`, and the sealed state of a version is handed to the host before
any receipt or transaction of that version leaves the enclave.
"""

from __future__ import annotations

import secrets

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

from enclave.guardrails import SpendEntry
from enclave.market import MarketMemory

STATE_FORMAT = 1
# Outputs kept until the host releases them; a host that never releases stalls the agent
# here rather than letting memory grow without bound.
MAX_PENDING_OUTPUTS = 100_000
# ... and at most this many bytes of them: the sealed state carries every pending output,
# and one reply of the enclave (16 MiB at most) carries the sealed state, up to
# RELEASE_BUDGET_BYTES of released outputs and the refusals of a batch (about 3 MB at most).
MAX_PENDING_BYTES = 6 << 20
# Released outputs per reply, at most (always at least one output, which is far smaller).
RELEASE_BUDGET_BYTES = 4 << 20
# What a receipt weighs in the sealed state and on the wire beside its texts (hashes in
# hex, field names, the signature), and a transaction beside its raw bytes in hex.
_RECEIPT_BYTES = 1_000
_TRANSACTION_BYTES = 200


class PendingReceipt(BaseModel):
    state_version: int
    receipt: dict[str, object]
    decision_json: str
    input_json: str


class PendingTransaction(BaseModel):
    state_version: int
    raw_transaction: str
    tx_hash: str
    nonce: int
    receipt_seq: int


def output_bytes(output: PendingReceipt | PendingTransaction) -> int:
    """About how many bytes `output` takes in the sealed state and in a reply (a little
    more rather than less)."""
    if isinstance(output, PendingReceipt):
        return _RECEIPT_BYTES + len(output.decision_json) + len(output.input_json)
    return _TRANSACTION_BYTES + len(output.raw_transaction)


class InFlightTransaction(BaseModel):
    """A signed transaction not yet known to be mined (`enclave.in_flight`): its fields, so
    that it can be signed again at a higher fee, and which receipts it belongs to."""

    nonce: int
    chain_id: int
    to: str  # 0x and 40 hex digits
    value: int
    data: str  # hex, no 0x
    gas: int
    max_fee_per_gas: int
    max_priority_fee_per_gas: int
    tx_hash: str  # hex, no 0x: of the version signed last
    # The receipt of the version signed last, and the receipt of the decision it carries out.
    receipt_seq: int
    original_receipt_seq: int
    original_tx_hash: str
    # The chain's block number (as last reported) when this version was signed; None when
    # no block number had been reported yet (the first report then starts the wait).
    signed_block: int | None = None
    # A replacement the fee cap did not allow was reported once in a receipt.
    stuck_reported: bool = False


class EnclaveState(BaseModel):
    """The sealed state (a mutable model, private to the enclave)."""

    # A validation error must not quote its input: that could be part of a secret key.
    model_config = ConfigDict(hide_input_in_errors=True)

    format: int = STATE_FORMAT
    account_secret: bytes = Field(repr=False)
    box_secret: bytes = Field(repr=False)
    state_version: int = 0
    tx_nonce: int = 0
    receipt_seq: int = 0
    head_hash: bytes = bytes(32)
    market: MarketMemory = Field(default_factory=MarketMemory)
    last_decision: int | None = None
    last_trade: int | None = None
    spent: list[SpendEntry] = []
    paused: bool = False
    owner_counter: int = 0
    ticks_accepted: int = 0
    ticks_refused: int = 0
    pending_receipts: list[PendingReceipt] = []
    pending_transactions: list[PendingTransaction] = []
    # The highest block number the host has reported (never goes back), and the signed
    # transactions not yet known to be mined, in nonce order (`enclave.in_flight` keeps
    # it). Both absent from older sealed states.
    chain_block: int = 0
    in_flight: list[InFlightTransaction] = []

    @field_serializer("account_secret", "box_secret", "head_hash")
    def _hex(self, value: bytes) -> str:
        return value.hex()

    @field_validator("account_secret", "box_secret", "head_hash", mode="before")
    @classmethod
    def _from_hex(cls, value: object) -> object:
        return bytes.fromhex(value) if isinstance(value, str) else value

    @field_validator("in_flight")
    @classmethod
    def _in_nonce_order(cls, value: list[InFlightTransaction]) -> list[InFlightTransaction]:
        # Every state the enclave seals has them in nonce order already (each nonce it signs
        # is above every earlier one); sorting (stably) here makes that hold for any input.
        return sorted(value, key=lambda t: t.nonce)

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: int) -> int:
        if value != STATE_FORMAT:
            raise ValueError(f"state format {value} is not supported (expected {STATE_FORMAT})")
        return value

    def pending_bytes(self) -> int:
        """What the outputs waiting for release weigh (`output_bytes`)."""
        outputs: list[PendingReceipt | PendingTransaction] = [
            *self.pending_receipts,
            *self.pending_transactions,
        ]
        return sum(map(output_bytes, outputs))

    def __repr__(self) -> str:  # never print keys, even by accident
        return f"EnclaveState(version={self.state_version}, receipts={self.receipt_seq})"

    __str__ = __repr__

    @classmethod
    def fresh(cls) -> EnclaveState:
        """New state with new keys from the OS CSPRNG."""
        return cls(account_secret=_secp256k1_secret(), box_secret=secrets.token_bytes(32))

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> EnclaveState:
        """Raises: pydantic.ValidationError for anything but a state this code wrote."""
        return cls.model_validate_json(data)


def _secp256k1_secret() -> bytes:
    # A uniformly random scalar in [1, n-1] for secp256k1 (SEC 2, section 2.4.1).
    order = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    while True:
        candidate = int.from_bytes(secrets.token_bytes(32), "big")
        if 1 <= candidate < order:
            return candidate.to_bytes(32, "big")
