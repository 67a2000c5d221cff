from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FeatureRow(_message.Message):
    __slots__ = ("numbers", "labels")
    class NumbersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NUMBERS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    numbers: _containers.ScalarMap[str, float]
    labels: _containers.ScalarMap[str, str]
    def __init__(self, numbers: _Optional[_Mapping[str, float]] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ScoreRequest(_message.Message):
    __slots__ = ("merchant_id", "model_version", "rows")
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    merchant_id: str
    model_version: str
    rows: _containers.RepeatedCompositeFieldContainer[FeatureRow]
    def __init__(self, merchant_id: _Optional[str] = ..., model_version: _Optional[str] = ..., rows: _Optional[_Iterable[_Union[FeatureRow, _Mapping]]] = ...) -> None: ...

class ScoreReply(_message.Message):
    __slots__ = ("merchant_id", "model_version", "model_sha256", "default_probability", "band", "turnover_fen", "limit_fen", "annual_rate_bp", "inputs_hash", "decision_id", "error", "error_code")
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_SHA256_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    BAND_FIELD_NUMBER: _ClassVar[int]
    TURNOVER_FEN_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FEN_FIELD_NUMBER: _ClassVar[int]
    ANNUAL_RATE_BP_FIELD_NUMBER: _ClassVar[int]
    INPUTS_HASH_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    merchant_id: str
    model_version: str
    model_sha256: str
    default_probability: float
    band: str
    turnover_fen: int
    limit_fen: int
    annual_rate_bp: int
    inputs_hash: str
    decision_id: int
    error: str
    error_code: str
    def __init__(self, merchant_id: _Optional[str] = ..., model_version: _Optional[str] = ..., model_sha256: _Optional[str] = ..., default_probability: _Optional[float] = ..., band: _Optional[str] = ..., turnover_fen: _Optional[int] = ..., limit_fen: _Optional[int] = ..., annual_rate_bp: _Optional[int] = ..., inputs_hash: _Optional[str] = ..., decision_id: _Optional[int] = ..., error: _Optional[str] = ..., error_code: _Optional[str] = ...) -> None: ...

class ScoreBatchRequest(_message.Message):
    __slots__ = ("model_version", "requests")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    requests: _containers.RepeatedCompositeFieldContainer[ScoreRequest]
    def __init__(self, model_version: _Optional[str] = ..., requests: _Optional[_Iterable[_Union[ScoreRequest, _Mapping]]] = ...) -> None: ...

class ScoreBatchReply(_message.Message):
    __slots__ = ("replies",)
    REPLIES_FIELD_NUMBER: _ClassVar[int]
    replies: _containers.RepeatedCompositeFieldContainer[ScoreReply]
    def __init__(self, replies: _Optional[_Iterable[_Union[ScoreReply, _Mapping]]] = ...) -> None: ...

class OpenRequest(_message.Message):
    __slots__ = ("merchant_id", "model_version", "rows")
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    merchant_id: str
    model_version: str
    rows: _containers.RepeatedCompositeFieldContainer[FeatureRow]
    def __init__(self, merchant_id: _Optional[str] = ..., model_version: _Optional[str] = ..., rows: _Optional[_Iterable[_Union[FeatureRow, _Mapping]]] = ...) -> None: ...

class AccountRequest(_message.Message):
    __slots__ = ("account_id", "merchant_id")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    merchant_id: str
    def __init__(self, account_id: _Optional[str] = ..., merchant_id: _Optional[str] = ...) -> None: ...

class MoneyRequest(_message.Message):
    __slots__ = ("account_id", "amount_fen")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    amount_fen: int
    def __init__(self, account_id: _Optional[str] = ..., amount_fen: _Optional[int] = ...) -> None: ...

class Account(_message.Message):
    __slots__ = ("account_id", "merchant_id", "status", "limit_fen", "principal_fen", "interest_fen", "available_fen", "annual_rate_bp", "band", "default_probability", "model_version", "decision_id", "accrued_through")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FEN_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FEN_FIELD_NUMBER: _ClassVar[int]
    INTEREST_FEN_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FEN_FIELD_NUMBER: _ClassVar[int]
    ANNUAL_RATE_BP_FIELD_NUMBER: _ClassVar[int]
    BAND_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    ACCRUED_THROUGH_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    merchant_id: str
    status: str
    limit_fen: int
    principal_fen: int
    interest_fen: int
    available_fen: int
    annual_rate_bp: int
    band: str
    default_probability: float
    model_version: str
    decision_id: int
    accrued_through: str
    def __init__(self, account_id: _Optional[str] = ..., merchant_id: _Optional[str] = ..., status: _Optional[str] = ..., limit_fen: _Optional[int] = ..., principal_fen: _Optional[int] = ..., interest_fen: _Optional[int] = ..., available_fen: _Optional[int] = ..., annual_rate_bp: _Optional[int] = ..., band: _Optional[str] = ..., default_probability: _Optional[float] = ..., model_version: _Optional[str] = ..., decision_id: _Optional[int] = ..., accrued_through: _Optional[str] = ...) -> None: ...

class AccrueRequest(_message.Message):
    __slots__ = ("through", "account_id")
    THROUGH_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    through: str
    account_id: str
    def __init__(self, through: _Optional[str] = ..., account_id: _Optional[str] = ...) -> None: ...

class AccrueReply(_message.Message):
    __slots__ = ("through", "accounts", "interest_fen")
    THROUGH_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    INTEREST_FEN_FIELD_NUMBER: _ClassVar[int]
    through: str
    accounts: int
    interest_fen: int
    def __init__(self, through: _Optional[str] = ..., accounts: _Optional[int] = ..., interest_fen: _Optional[int] = ...) -> None: ...
