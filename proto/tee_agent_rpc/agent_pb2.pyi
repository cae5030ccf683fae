from tee_agent_rpc import messages_pb2 as _messages_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

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
    refused_ticks: _containers.RepeatedCompositeFieldContainer[_messages_pb2.RefusedTick]
    receipts: int
    transactions: int
    def __init__(self, received: _Optional[int] = ..., accepted: _Optional[int] = ..., refused: _Optional[int] = ..., refused_by_reason: _Optional[_Mapping[str, int]] = ..., refused_ticks: _Optional[_Iterable[_Union[_messages_pb2.RefusedTick, _Mapping]]] = ..., receipts: _Optional[int] = ..., transactions: _Optional[int] = ...) -> None: ...

class WatchDecisionsRequest(_message.Message):
    __slots__ = ("from_seq",)
    FROM_SEQ_FIELD_NUMBER: _ClassVar[int]
    from_seq: int
    def __init__(self, from_seq: _Optional[int] = ...) -> None: ...

class DecisionEvent(_message.Message):
    __slots__ = ("receipt", "transaction")
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    receipt: _messages_pb2.Receipt
    transaction: _messages_pb2.Transaction
    def __init__(self, receipt: _Optional[_Union[_messages_pb2.Receipt, _Mapping]] = ..., transaction: _Optional[_Union[_messages_pb2.Transaction, _Mapping]] = ...) -> None: ...

class GetAttestationRequest(_message.Message):
    __slots__ = ("nonce",)
    NONCE_FIELD_NUMBER: _ClassVar[int]
    nonce: bytes
    def __init__(self, nonce: _Optional[bytes] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Status(_message.Message):
    __slots__ = ("uptime_seconds", "enclave_state", "enclave_restarts", "last_tick_seq", "last_tick_timestamp_ms", "ticks_accepted", "ticks_refused", "receipts", "head_hash", "transactions", "notional_24h_usd", "notional_24h_left_usd", "paused", "address", "vault", "alarm")
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
    VAULT_FIELD_NUMBER: _ClassVar[int]
    ALARM_FIELD_NUMBER: _ClassVar[int]
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
    vault: VaultStatus
    alarm: str
    def __init__(self, uptime_seconds: _Optional[float] = ..., enclave_state: _Optional[str] = ..., enclave_restarts: _Optional[int] = ..., last_tick_seq: _Optional[int] = ..., last_tick_timestamp_ms: _Optional[int] = ..., ticks_accepted: _Optional[int] = ..., ticks_refused: _Optional[int] = ..., receipts: _Optional[int] = ..., head_hash: _Optional[bytes] = ..., transactions: _Optional[int] = ..., notional_24h_usd: _Optional[float] = ..., notional_24h_left_usd: _Optional[float] = ..., paused: _Optional[bool] = ..., address: _Optional[str] = ..., vault: _Optional[_Union[VaultStatus, _Mapping]] = ..., alarm: _Optional[str] = ...) -> None: ...

class VaultStatus(_message.Message):
    __slots__ = ("address", "block", "quote_token", "paused", "agent_active", "cap_per_trade", "cap_per_day", "notional_24h", "notional_24h_left", "last_receipt_seq", "twap_window_seconds", "max_deviation_bps", "error")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    QUOTE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    AGENT_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    CAP_PER_TRADE_FIELD_NUMBER: _ClassVar[int]
    CAP_PER_DAY_FIELD_NUMBER: _ClassVar[int]
    NOTIONAL_24H_FIELD_NUMBER: _ClassVar[int]
    NOTIONAL_24H_LEFT_FIELD_NUMBER: _ClassVar[int]
    LAST_RECEIPT_SEQ_FIELD_NUMBER: _ClassVar[int]
    TWAP_WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_DEVIATION_BPS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    address: str
    block: int
    quote_token: str
    paused: bool
    agent_active: bool
    cap_per_trade: str
    cap_per_day: str
    notional_24h: str
    notional_24h_left: str
    last_receipt_seq: int
    twap_window_seconds: int
    max_deviation_bps: int
    error: str
    def __init__(self, address: _Optional[str] = ..., block: _Optional[int] = ..., quote_token: _Optional[str] = ..., paused: _Optional[bool] = ..., agent_active: _Optional[bool] = ..., cap_per_trade: _Optional[str] = ..., cap_per_day: _Optional[str] = ..., notional_24h: _Optional[str] = ..., notional_24h_left: _Optional[str] = ..., last_receipt_seq: _Optional[int] = ..., twap_window_seconds: _Optional[int] = ..., max_deviation_bps: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

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
