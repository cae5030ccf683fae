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

class Receipt(_message.Message):
    __slots__ = ("seq", "prev_hash", "input_digest", "model_hash", "config_hash", "decision_hash", "verdict", "tx_hash", "timestamp", "signature", "receipt_hash", "decision_json", "input_json")
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
    receipt_hash: bytes
    decision_json: str
    input_json: str
    def __init__(self, seq: _Optional[int] = ..., prev_hash: _Optional[bytes] = ..., input_digest: _Optional[bytes] = ..., model_hash: _Optional[bytes] = ..., config_hash: _Optional[bytes] = ..., decision_hash: _Optional[bytes] = ..., verdict: _Optional[str] = ..., tx_hash: _Optional[bytes] = ..., timestamp: _Optional[int] = ..., signature: _Optional[bytes] = ..., receipt_hash: _Optional[bytes] = ..., decision_json: _Optional[str] = ..., input_json: _Optional[str] = ...) -> None: ...

class Transaction(_message.Message):
    __slots__ = ("tx_hash", "nonce", "raw_transaction", "status", "detail", "receipt_seq")
    TX_HASH_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    RAW_TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_SEQ_FIELD_NUMBER: _ClassVar[int]
    tx_hash: bytes
    nonce: int
    raw_transaction: bytes
    status: str
    detail: str
    receipt_seq: int
    def __init__(self, tx_hash: _Optional[bytes] = ..., nonce: _Optional[int] = ..., raw_transaction: _Optional[bytes] = ..., status: _Optional[str] = ..., detail: _Optional[str] = ..., receipt_seq: _Optional[int] = ...) -> None: ...

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
    __slots__ = ("quote", "identity", "report_data", "nonce", "event_log")
    QUOTE_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    REPORT_DATA_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    EVENT_LOG_FIELD_NUMBER: _ClassVar[int]
    quote: bytes
    identity: Identity
    report_data: bytes
    nonce: bytes
    event_log: bytes
    def __init__(self, quote: _Optional[bytes] = ..., identity: _Optional[_Union[Identity, _Mapping]] = ..., report_data: _Optional[bytes] = ..., nonce: _Optional[bytes] = ..., event_log: _Optional[bytes] = ...) -> None: ...
