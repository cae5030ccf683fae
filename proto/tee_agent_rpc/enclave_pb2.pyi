from tee_agent_rpc import messages_pb2 as _messages_pb2
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
    identity: _messages_pb2.Identity
    created: bool
    sealed_state: bytes
    state_version: int
    pending_outputs: int
    def __init__(self, identity: _Optional[_Union[_messages_pb2.Identity, _Mapping]] = ..., created: _Optional[bool] = ..., sealed_state: _Optional[bytes] = ..., state_version: _Optional[int] = ..., pending_outputs: _Optional[int] = ...) -> None: ...

class GetIdentityRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AttestRequest(_message.Message):
    __slots__ = ("nonce",)
    NONCE_FIELD_NUMBER: _ClassVar[int]
    nonce: bytes
    def __init__(self, nonce: _Optional[bytes] = ...) -> None: ...

class FeeHint(_message.Message):
    __slots__ = ("max_fee_per_gas_wei", "max_priority_fee_per_gas_wei")
    MAX_FEE_PER_GAS_WEI_FIELD_NUMBER: _ClassVar[int]
    MAX_PRIORITY_FEE_PER_GAS_WEI_FIELD_NUMBER: _ClassVar[int]
    max_fee_per_gas_wei: int
    max_priority_fee_per_gas_wei: int
    def __init__(self, max_fee_per_gas_wei: _Optional[int] = ..., max_priority_fee_per_gas_wei: _Optional[int] = ...) -> None: ...

class IngestRequest(_message.Message):
    __slots__ = ("tick_batches", "fees", "balances", "release_through", "twap_prices", "account")
    class BalancesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class TwapPricesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    TICK_BATCHES_FIELD_NUMBER: _ClassVar[int]
    FEES_FIELD_NUMBER: _ClassVar[int]
    BALANCES_FIELD_NUMBER: _ClassVar[int]
    RELEASE_THROUGH_FIELD_NUMBER: _ClassVar[int]
    TWAP_PRICES_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    tick_batches: _containers.RepeatedScalarFieldContainer[bytes]
    fees: FeeHint
    balances: _containers.ScalarMap[str, str]
    release_through: int
    twap_prices: _containers.ScalarMap[str, float]
    account: AccountView
    def __init__(self, tick_batches: _Optional[_Iterable[bytes]] = ..., fees: _Optional[_Union[FeeHint, _Mapping]] = ..., balances: _Optional[_Mapping[str, str]] = ..., release_through: _Optional[int] = ..., twap_prices: _Optional[_Mapping[str, float]] = ..., account: _Optional[_Union[AccountView, _Mapping]] = ...) -> None: ...

class AccountView(_message.Message):
    __slots__ = ("block_number", "mined_nonce", "pending_nonce")
    BLOCK_NUMBER_FIELD_NUMBER: _ClassVar[int]
    MINED_NONCE_FIELD_NUMBER: _ClassVar[int]
    PENDING_NONCE_FIELD_NUMBER: _ClassVar[int]
    block_number: int
    mined_nonce: int
    pending_nonce: int
    def __init__(self, block_number: _Optional[int] = ..., mined_nonce: _Optional[int] = ..., pending_nonce: _Optional[int] = ...) -> None: ...

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
    refused: _containers.RepeatedCompositeFieldContainer[_messages_pb2.RefusedTick]
    pending_receipts: int
    pending_transactions: int
    decision_seconds: _containers.RepeatedScalarFieldContainer[float]
    released: ReleaseResponse
    def __init__(self, sealed_state: _Optional[bytes] = ..., state_version: _Optional[int] = ..., accepted: _Optional[int] = ..., refused: _Optional[_Iterable[_Union[_messages_pb2.RefusedTick, _Mapping]]] = ..., pending_receipts: _Optional[int] = ..., pending_transactions: _Optional[int] = ..., decision_seconds: _Optional[_Iterable[float]] = ..., released: _Optional[_Union[ReleaseResponse, _Mapping]] = ...) -> None: ...

class ReleaseRequest(_message.Message):
    __slots__ = ("state_version",)
    STATE_VERSION_FIELD_NUMBER: _ClassVar[int]
    state_version: int
    def __init__(self, state_version: _Optional[int] = ...) -> None: ...

class ReleaseResponse(_message.Message):
    __slots__ = ("receipts", "transactions", "more")
    RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    TRANSACTIONS_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    receipts: _containers.RepeatedCompositeFieldContainer[_messages_pb2.Receipt]
    transactions: _containers.RepeatedCompositeFieldContainer[_messages_pb2.Transaction]
    more: bool
    def __init__(self, receipts: _Optional[_Iterable[_Union[_messages_pb2.Receipt, _Mapping]]] = ..., transactions: _Optional[_Iterable[_Union[_messages_pb2.Transaction, _Mapping]]] = ..., more: _Optional[bool] = ...) -> None: ...

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
