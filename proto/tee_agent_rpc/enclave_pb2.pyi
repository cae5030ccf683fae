from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OpenRequest(_message.Message):
    __slots__ = ("sealed_state",)
    SEALED_STATE_FIELD_NUMBER: _ClassVar[int]
    sealed_state: bytes
    def __init__(self, sealed_state: _Optional[bytes] = ...) -> None: ...

class OpenResponse(_message.Message):
    __slots__ = ("identity", "created", "sealed_state", "state_version", "pending_outputs")
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    SEALED_STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_VERSION_FIELD_NUMBER: _ClassVar[int]
    PENDING_OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    identity: Identity
    created: bool
    sealed_state: bytes
    state_version: int
    pending_outputs: int
    def __init__(self, identity: _Optional[_Union[Identity, _Mapping]] = ..., created: _Optional[bool] = ..., sealed_state: _Optional[bytes] = ..., state_version: _Optional[int] = ..., pending_outputs: _Optional[int] = ...) -> None: ...

class GetIdentityRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Identity(_message.Message):
    __slots__ = ("address", "x25519_public_key", "config_hash", "model_hash", "measurement", "platform", "simulated", "chain_id", "policy")
    class MeasurementEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    X25519_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    CONFIG_HASH_FIELD_NUMBER: _ClassVar[int]
    MODEL_HASH_FIELD_NUMBER: _ClassVar[int]
    MEASUREMENT_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    SIMULATED_FIELD_NUMBER: _ClassVar[int]
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    address: str
    x25519_public_key: bytes
    config_hash: bytes
    model_hash: bytes
    measurement: _containers.ScalarMap[str, str]
    platform: str
    simulated: bool
    chain_id: int
    policy: str
    def __init__(self, address: _Optional[str] = ..., x25519_public_key: _Optional[bytes] = ..., config_hash: _Optional[bytes] = ..., model_hash: _Optional[bytes] = ..., measurement: _Optional[_Mapping[str, str]] = ..., platform: _Optional[str] = ..., simulated: _Optional[bool] = ..., chain_id: _Optional[int] = ..., policy: _Optional[str] = ...) -> None: ...

class AttestRequest(_message.Message):
    __slots__ = ("nonce",)
    NONCE_FIELD_NUMBER: _ClassVar[int]
    nonce: bytes
    def __init__(self, nonce: _Optional[bytes] = ...) -> None: ...

class AttestResponse(_message.Message):
    __slots__ = ("quote", "identity", "report_data")
    QUOTE_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    REPORT_DATA_FIELD_NUMBER: _ClassVar[int]
    quote: bytes
    identity: Identity
    report_data: bytes
    def __init__(self, quote: _Optional[bytes] = ..., identity: _Optional[_Union[Identity, _Mapping]] = ..., report_data: _Optional[bytes] = ...) -> None: ...

class FeeHint(_message.Message):
    __slots__ = ("max_fee_per_gas_wei", "max_priority_fee_per_gas_wei")
    MAX_FEE_PER_GAS_WEI_FIELD_NUMBER: _ClassVar[int]
    MAX_PRIORITY_FEE_PER_GAS_WEI_FIELD_NUMBER: _ClassVar[int]
    max_fee_per_gas_wei: int
    max_priority_fee_per_gas_wei: int
    def __init__(self, max_fee_per_gas_wei: _Optional[int] = ..., max_priority_fee_per_gas_wei: _Optional[int] = ...) -> None: ...

class TickBatch(_message.Message):
    __slots__ = ("pair", "seq", "timestamp_ms", "price", "volume")
    PAIR_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    pair: str
    seq: _containers.RepeatedScalarFieldContainer[int]
    timestamp_ms: _containers.RepeatedScalarFieldContainer[int]
    price: _containers.RepeatedScalarFieldContainer[float]
    volume: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, pair: _Optional[str] = ..., seq: _Optional[_Iterable[int]] = ..., timestamp_ms: _Optional[_Iterable[int]] = ..., price: _Optional[_Iterable[float]] = ..., volume: _Optional[_Iterable[float]] = ...) -> None: ...

class IngestRequest(_message.Message):
    __slots__ = ("batches", "fees", "balances", "release_through")
    class BalancesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    FEES_FIELD_NUMBER: _ClassVar[int]
    BALANCES_FIELD_NUMBER: _ClassVar[int]
    RELEASE_THROUGH_FIELD_NUMBER: _ClassVar[int]
    batches: _containers.RepeatedCompositeFieldContainer[TickBatch]
    fees: FeeHint
    balances: _containers.ScalarMap[str, str]
    release_through: int
    def __init__(self, batches: _Optional[_Iterable[_Union[TickBatch, _Mapping]]] = ..., fees: _Optional[_Union[FeeHint, _Mapping]] = ..., balances: _Optional[_Mapping[str, str]] = ..., release_through: _Optional[int] = ...) -> None: ...

class RefusedTick(_message.Message):
    __slots__ = ("seq", "reason")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    seq: int
    reason: str
    def __init__(self, seq: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class IngestResponse(_message.Message):
    __slots__ = ("sealed_state", "state_version", "accepted", "refused", "pending_receipts", "pending_transactions", "decision_seconds", "released")
    SEALED_STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_VERSION_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    PENDING_RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    PENDING_TRANSACTIONS_FIELD_NUMBER: _ClassVar[int]
    DECISION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    sealed_state: bytes
    state_version: int
    accepted: int
    refused: _containers.RepeatedCompositeFieldContainer[RefusedTick]
    pending_receipts: int
    pending_transactions: int
    decision_seconds: _containers.RepeatedScalarFieldContainer[float]
    released: ReleaseResponse
    def __init__(self, sealed_state: _Optional[bytes] = ..., state_version: _Optional[int] = ..., accepted: _Optional[int] = ..., refused: _Optional[_Iterable[_Union[RefusedTick, _Mapping]]] = ..., pending_receipts: _Optional[int] = ..., pending_transactions: _Optional[int] = ..., decision_seconds: _Optional[_Iterable[float]] = ..., released: _Optional[_Union[ReleaseResponse, _Mapping]] = ...) -> None: ...

class ReleaseRequest(_message.Message):
    __slots__ = ("state_version",)
    STATE_VERSION_FIELD_NUMBER: _ClassVar[int]
    state_version: int
    def __init__(self, state_version: _Optional[int] = ...) -> None: ...

class Receipt(_message.Message):
    __slots__ = ("seq", "prev_hash", "input_digest", "model_hash", "config_hash", "decision_hash", "verdict", "tx_hash", "timestamp", "signature", "decision_json", "input_json")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    PREV_HASH_FIELD_NUMBER: _ClassVar[int]
    INPUT_DIGEST_FIELD_NUMBER: _ClassVar[int]
    MODEL_HASH_FIELD_NUMBER: _ClassVar[int]
    CONFIG_HASH_FIELD_NUMBER: _ClassVar[int]
    DECISION_HASH_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    TX_HASH_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    DECISION_JSON_FIELD_NUMBER: _ClassVar[int]
    INPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    seq: int
    prev_hash: bytes
    input_digest: bytes
    model_hash: bytes
    config_hash: bytes
    decision_hash: bytes
    verdict: str
    tx_hash: bytes
    timestamp: int
    signature: bytes
    decision_json: str
    input_json: str
    def __init__(self, seq: _Optional[int] = ..., prev_hash: _Optional[bytes] = ..., input_digest: _Optional[bytes] = ..., model_hash: _Optional[bytes] = ..., config_hash: _Optional[bytes] = ..., decision_hash: _Optional[bytes] = ..., verdict: _Optional[str] = ..., tx_hash: _Optional[bytes] = ..., timestamp: _Optional[int] = ..., signature: _Optional[bytes] = ..., decision_json: _Optional[str] = ..., input_json: _Optional[str] = ...) -> None: ...

class SignedTransaction(_message.Message):
    __slots__ = ("raw_transaction", "tx_hash", "nonce", "receipt_seq")
    RAW_TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    TX_HASH_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_SEQ_FIELD_NUMBER: _ClassVar[int]
    raw_transaction: bytes
    tx_hash: bytes
    nonce: int
    receipt_seq: int
    def __init__(self, raw_transaction: _Optional[bytes] = ..., tx_hash: _Optional[bytes] = ..., nonce: _Optional[int] = ..., receipt_seq: _Optional[int] = ...) -> None: ...

class ReleaseResponse(_message.Message):
    __slots__ = ("receipts", "transactions")
    RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    TRANSACTIONS_FIELD_NUMBER: _ClassVar[int]
    receipts: _containers.RepeatedCompositeFieldContainer[Receipt]
    transactions: _containers.RepeatedCompositeFieldContainer[SignedTransaction]
    def __init__(self, receipts: _Optional[_Iterable[_Union[Receipt, _Mapping]]] = ..., transactions: _Optional[_Iterable[_Union[SignedTransaction, _Mapping]]] = ...) -> None: ...

class OwnerCommandRequest(_message.Message):
    __slots__ = ("ciphertext",)
    CIPHERTEXT_FIELD_NUMBER: _ClassVar[int]
    ciphertext: bytes
    def __init__(self, ciphertext: _Optional[bytes] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class EnclaveStatus(_message.Message):
    __slots__ = ("open", "paused", "state_version", "last_tick_seq", "last_tick_timestamp_ms", "receipts", "next_nonce", "notional_24h_usd", "notional_24h_left_usd", "ticks_accepted", "ticks_refused")
    OPEN_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    STATE_VERSION_FIELD_NUMBER: _ClassVar[int]
    LAST_TICK_SEQ_FIELD_NUMBER: _ClassVar[int]
    LAST_TICK_TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_NONCE_FIELD_NUMBER: _ClassVar[int]
    NOTIONAL_24H_USD_FIELD_NUMBER: _ClassVar[int]
    NOTIONAL_24H_LEFT_USD_FIELD_NUMBER: _ClassVar[int]
    TICKS_ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    TICKS_REFUSED_FIELD_NUMBER: _ClassVar[int]
    open: bool
    paused: bool
    state_version: int
    last_tick_seq: int
    last_tick_timestamp_ms: int
    receipts: int
    next_nonce: int
    notional_24h_usd: float
    notional_24h_left_usd: float
    ticks_accepted: int
    ticks_refused: int
    def __init__(self, open: _Optional[bool] = ..., paused: _Optional[bool] = ..., state_version: _Optional[int] = ..., last_tick_seq: _Optional[int] = ..., last_tick_timestamp_ms: _Optional[int] = ..., receipts: _Optional[int] = ..., next_nonce: _Optional[int] = ..., notional_24h_usd: _Optional[float] = ..., notional_24h_left_usd: _Optional[float] = ..., ticks_accepted: _Optional[int] = ..., ticks_refused: _Optional[int] = ...) -> None: ...
