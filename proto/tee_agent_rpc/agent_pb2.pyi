from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

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

class RefusedTick(_message.Message):
    __slots__ = ("seq", "reason")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    seq: int
    reason: str
    def __init__(self, seq: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class StreamSummary(_message.Message):
    __slots__ = ("received", "accepted", "refused", "refused_by_reason", "refused_ticks", "receipts", "transactions")
    class RefusedByReasonEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    REFUSED_BY_REASON_FIELD_NUMBER: _ClassVar[int]
    REFUSED_TICKS_FIELD_NUMBER: _ClassVar[int]
    RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    TRANSACTIONS_FIELD_NUMBER: _ClassVar[int]
    received: int
    accepted: int
    refused: int
    refused_by_reason: _containers.ScalarMap[str, int]
    refused_ticks: _containers.RepeatedCompositeFieldContainer[RefusedTick]
    receipts: int
    transactions: int
    def __init__(self, received: _Optional[int] = ..., accepted: _Optional[int] = ..., refused: _Optional[int] = ..., refused_by_reason: _Optional[_Mapping[str, int]] = ..., refused_ticks: _Optional[_Iterable[_Union[RefusedTick, _Mapping]]] = ..., receipts: _Optional[int] = ..., transactions: _Optional[int] = ...) -> None: ...

class WatchDecisionsRequest(_message.Message):
    __slots__ = ("from_seq",)
    FROM_SEQ_FIELD_NUMBER: _ClassVar[int]
    from_seq: int
    def __init__(self, from_seq: _Optional[int] = ...) -> None: ...

class Receipt(_message.Message):
    __slots__ = ("seq", "prev_hash", "input_digest", "model_hash", "config_hash", "decision_hash", "verdict", "tx_hash", "timestamp", "signature", "receipt_hash")
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
    RECEIPT_HASH_FIELD_NUMBER: _ClassVar[int]
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
    receipt_hash: bytes
    def __init__(self, seq: _Optional[int] = ..., prev_hash: _Optional[bytes] = ..., input_digest: _Optional[bytes] = ..., model_hash: _Optional[bytes] = ..., config_hash: _Optional[bytes] = ..., decision_hash: _Optional[bytes] = ..., verdict: _Optional[str] = ..., tx_hash: _Optional[bytes] = ..., timestamp: _Optional[int] = ..., signature: _Optional[bytes] = ..., receipt_hash: _Optional[bytes] = ...) -> None: ...

class DecisionEvent(_message.Message):
    __slots__ = ("receipt", "decision_json", "input_json", "transaction")
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    DECISION_JSON_FIELD_NUMBER: _ClassVar[int]
    INPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    receipt: Receipt
    decision_json: str
    input_json: str
    transaction: Transaction
    def __init__(self, receipt: _Optional[_Union[Receipt, _Mapping]] = ..., decision_json: _Optional[str] = ..., input_json: _Optional[str] = ..., transaction: _Optional[_Union[Transaction, _Mapping]] = ...) -> None: ...

class Transaction(_message.Message):
    __slots__ = ("tx_hash", "nonce", "raw_transaction", "status", "detail")
    TX_HASH_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    RAW_TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    tx_hash: bytes
    nonce: int
    raw_transaction: bytes
    status: str
    detail: str
    def __init__(self, tx_hash: _Optional[bytes] = ..., nonce: _Optional[int] = ..., raw_transaction: _Optional[bytes] = ..., status: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class GetAttestationRequest(_message.Message):
    __slots__ = ("nonce",)
    NONCE_FIELD_NUMBER: _ClassVar[int]
    nonce: bytes
    def __init__(self, nonce: _Optional[bytes] = ...) -> None: ...

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

class Attestation(_message.Message):
    __slots__ = ("quote", "identity", "report_data", "nonce")
    QUOTE_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    REPORT_DATA_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    quote: bytes
    identity: Identity
    report_data: bytes
    nonce: bytes
    def __init__(self, quote: _Optional[bytes] = ..., identity: _Optional[_Union[Identity, _Mapping]] = ..., report_data: _Optional[bytes] = ..., nonce: _Optional[bytes] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Status(_message.Message):
    __slots__ = ("uptime_seconds", "enclave_state", "enclave_restarts", "last_tick_seq", "last_tick_timestamp_ms", "ticks_accepted", "ticks_refused", "receipts", "head_hash", "transactions", "notional_24h_usd", "notional_24h_left_usd", "paused", "address")
    UPTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ENCLAVE_STATE_FIELD_NUMBER: _ClassVar[int]
    ENCLAVE_RESTARTS_FIELD_NUMBER: _ClassVar[int]
    LAST_TICK_SEQ_FIELD_NUMBER: _ClassVar[int]
    LAST_TICK_TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    TICKS_ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    TICKS_REFUSED_FIELD_NUMBER: _ClassVar[int]
    RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    HEAD_HASH_FIELD_NUMBER: _ClassVar[int]
    TRANSACTIONS_FIELD_NUMBER: _ClassVar[int]
    NOTIONAL_24H_USD_FIELD_NUMBER: _ClassVar[int]
    NOTIONAL_24H_LEFT_USD_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    uptime_seconds: float
    enclave_state: str
    enclave_restarts: int
    last_tick_seq: int
    last_tick_timestamp_ms: int
    ticks_accepted: int
    ticks_refused: int
    receipts: int
    head_hash: bytes
    transactions: int
    notional_24h_usd: float
    notional_24h_left_usd: float
    paused: bool
    address: str
    def __init__(self, uptime_seconds: _Optional[float] = ..., enclave_state: _Optional[str] = ..., enclave_restarts: _Optional[int] = ..., last_tick_seq: _Optional[int] = ..., last_tick_timestamp_ms: _Optional[int] = ..., ticks_accepted: _Optional[int] = ..., ticks_refused: _Optional[int] = ..., receipts: _Optional[int] = ..., head_hash: _Optional[bytes] = ..., transactions: _Optional[int] = ..., notional_24h_usd: _Optional[float] = ..., notional_24h_left_usd: _Optional[float] = ..., paused: _Optional[bool] = ..., address: _Optional[str] = ...) -> None: ...

class ListReceiptsRequest(_message.Message):
    __slots__ = ("from_seq", "limit")
    FROM_SEQ_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    from_seq: int
    limit: int
    def __init__(self, from_seq: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class ListReceiptsResponse(_message.Message):
    __slots__ = ("receipts",)
    RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    receipts: _containers.RepeatedCompositeFieldContainer[DecisionEvent]
    def __init__(self, receipts: _Optional[_Iterable[_Union[DecisionEvent, _Mapping]]] = ...) -> None: ...

class GetReceiptRequest(_message.Message):
    __slots__ = ("seq",)
    SEQ_FIELD_NUMBER: _ClassVar[int]
    seq: int
    def __init__(self, seq: _Optional[int] = ...) -> None: ...

class SubmitOwnerCommandRequest(_message.Message):
    __slots__ = ("ciphertext",)
    CIPHERTEXT_FIELD_NUMBER: _ClassVar[int]
    ciphertext: bytes
    def __init__(self, ciphertext: _Optional[bytes] = ...) -> None: ...

class SubmitOwnerCommandResponse(_message.Message):
    __slots__ = ("receipt_seq", "paused")
    RECEIPT_SEQ_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    receipt_seq: int
    paused: bool
    def __init__(self, receipt_seq: _Optional[int] = ..., paused: _Optional[bool] = ...) -> None: ...
