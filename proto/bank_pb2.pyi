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

class Reason(_message.Message):
    __slots__ = ("code", "text_en", "text_zh", "feature", "contribution")
    CODE_FIELD_NUMBER: _ClassVar[int]
    TEXT_EN_FIELD_NUMBER: _ClassVar[int]
    TEXT_ZH_FIELD_NUMBER: _ClassVar[int]
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    code: str
    text_en: str
    text_zh: str
    feature: str
    contribution: float
    def __init__(self, code: _Optional[str] = ..., text_en: _Optional[str] = ..., text_zh: _Optional[str] = ..., feature: _Optional[str] = ..., contribution: _Optional[float] = ...) -> None: ...

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
    __slots__ = ("merchant_id", "model_version", "model_sha256", "default_probability", "band", "turnover_fen", "limit_fen", "annual_rate_bp", "inputs_hash", "decision_id", "error", "error_code", "outcome", "reasons", "application_id")
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
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_ID_FIELD_NUMBER: _ClassVar[int]
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
    outcome: str
    reasons: _containers.RepeatedCompositeFieldContainer[Reason]
    application_id: int
    def __init__(self, merchant_id: _Optional[str] = ..., model_version: _Optional[str] = ..., model_sha256: _Optional[str] = ..., default_probability: _Optional[float] = ..., band: _Optional[str] = ..., turnover_fen: _Optional[int] = ..., limit_fen: _Optional[int] = ..., annual_rate_bp: _Optional[int] = ..., inputs_hash: _Optional[str] = ..., decision_id: _Optional[int] = ..., error: _Optional[str] = ..., error_code: _Optional[str] = ..., outcome: _Optional[str] = ..., reasons: _Optional[_Iterable[_Union[Reason, _Mapping]]] = ..., application_id: _Optional[int] = ...) -> None: ...

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
    __slots__ = ("account_id", "amount_fen", "term_days")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    TERM_DAYS_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    amount_fen: int
    term_days: int
    def __init__(self, account_id: _Optional[str] = ..., amount_fen: _Optional[int] = ..., term_days: _Optional[int] = ...) -> None: ...

class Draw(_message.Message):
    __slots__ = ("draw_id", "amount_fen", "principal_fen", "drawn_on", "term_days", "due_on", "days_past_due", "tier")
    DRAW_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FEN_FIELD_NUMBER: _ClassVar[int]
    DRAWN_ON_FIELD_NUMBER: _ClassVar[int]
    TERM_DAYS_FIELD_NUMBER: _ClassVar[int]
    DUE_ON_FIELD_NUMBER: _ClassVar[int]
    DAYS_PAST_DUE_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    draw_id: str
    amount_fen: int
    principal_fen: int
    drawn_on: str
    term_days: int
    due_on: str
    days_past_due: int
    tier: str
    def __init__(self, draw_id: _Optional[str] = ..., amount_fen: _Optional[int] = ..., principal_fen: _Optional[int] = ..., drawn_on: _Optional[str] = ..., term_days: _Optional[int] = ..., due_on: _Optional[str] = ..., days_past_due: _Optional[int] = ..., tier: _Optional[str] = ...) -> None: ...

class Account(_message.Message):
    __slots__ = ("account_id", "merchant_id", "status", "limit_fen", "principal_fen", "interest_fen", "available_fen", "annual_rate_bp", "band", "default_probability", "model_version", "decision_id", "accrued_through", "frozen", "days_past_due", "tier", "draws")
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
    FROZEN_FIELD_NUMBER: _ClassVar[int]
    DAYS_PAST_DUE_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    DRAWS_FIELD_NUMBER: _ClassVar[int]
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
    frozen: str
    days_past_due: int
    tier: str
    draws: _containers.RepeatedCompositeFieldContainer[Draw]
    def __init__(self, account_id: _Optional[str] = ..., merchant_id: _Optional[str] = ..., status: _Optional[str] = ..., limit_fen: _Optional[int] = ..., principal_fen: _Optional[int] = ..., interest_fen: _Optional[int] = ..., available_fen: _Optional[int] = ..., annual_rate_bp: _Optional[int] = ..., band: _Optional[str] = ..., default_probability: _Optional[float] = ..., model_version: _Optional[str] = ..., decision_id: _Optional[int] = ..., accrued_through: _Optional[str] = ..., frozen: _Optional[str] = ..., days_past_due: _Optional[int] = ..., tier: _Optional[str] = ..., draws: _Optional[_Iterable[_Union[Draw, _Mapping]]] = ...) -> None: ...

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

class ReviewRequest(_message.Message):
    __slots__ = ("month", "model_version")
    MONTH_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    month: str
    model_version: str
    def __init__(self, month: _Optional[str] = ..., model_version: _Optional[str] = ...) -> None: ...

class LimitExample(_message.Message):
    __slots__ = ("account_id", "merchant_id", "action", "old_limit_fen", "new_limit_fen", "band", "default_probability", "reasons")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    OLD_LIMIT_FEN_FIELD_NUMBER: _ClassVar[int]
    NEW_LIMIT_FEN_FIELD_NUMBER: _ClassVar[int]
    BAND_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    merchant_id: str
    action: str
    old_limit_fen: int
    new_limit_fen: int
    band: str
    default_probability: float
    reasons: _containers.RepeatedCompositeFieldContainer[Reason]
    def __init__(self, account_id: _Optional[str] = ..., merchant_id: _Optional[str] = ..., action: _Optional[str] = ..., old_limit_fen: _Optional[int] = ..., new_limit_fen: _Optional[int] = ..., band: _Optional[str] = ..., default_probability: _Optional[float] = ..., reasons: _Optional[_Iterable[_Union[Reason, _Mapping]]] = ...) -> None: ...

class ReviewReply(_message.Message):
    __slots__ = ("month", "on", "model_version", "lines", "already", "reviewed", "raised", "cut", "kept", "frozen", "unfrozen", "skipped", "seconds", "examples", "alerts", "workers")
    class SkippedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    MONTH_FIELD_NUMBER: _ClassVar[int]
    ON_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    ALREADY_FIELD_NUMBER: _ClassVar[int]
    REVIEWED_FIELD_NUMBER: _ClassVar[int]
    RAISED_FIELD_NUMBER: _ClassVar[int]
    CUT_FIELD_NUMBER: _ClassVar[int]
    KEPT_FIELD_NUMBER: _ClassVar[int]
    FROZEN_FIELD_NUMBER: _ClassVar[int]
    UNFROZEN_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    ALERTS_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    month: str
    on: str
    model_version: str
    lines: int
    already: int
    reviewed: int
    raised: int
    cut: int
    kept: int
    frozen: int
    unfrozen: int
    skipped: _containers.ScalarMap[str, int]
    seconds: float
    examples: _containers.RepeatedCompositeFieldContainer[LimitExample]
    alerts: _containers.RepeatedCompositeFieldContainer[MonitorRow]
    workers: int
    def __init__(self, month: _Optional[str] = ..., on: _Optional[str] = ..., model_version: _Optional[str] = ..., lines: _Optional[int] = ..., already: _Optional[int] = ..., reviewed: _Optional[int] = ..., raised: _Optional[int] = ..., cut: _Optional[int] = ..., kept: _Optional[int] = ..., frozen: _Optional[int] = ..., unfrozen: _Optional[int] = ..., skipped: _Optional[_Mapping[str, int]] = ..., seconds: _Optional[float] = ..., examples: _Optional[_Iterable[_Union[LimitExample, _Mapping]]] = ..., alerts: _Optional[_Iterable[_Union[MonitorRow, _Mapping]]] = ..., workers: _Optional[int] = ...) -> None: ...

class ClockRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AdvanceClockRequest(_message.Message):
    __slots__ = ("days",)
    DAYS_FIELD_NUMBER: _ClassVar[int]
    days: int
    def __init__(self, days: _Optional[int] = ...) -> None: ...

class SetClockRequest(_message.Message):
    __slots__ = ("date",)
    DATE_FIELD_NUMBER: _ClassVar[int]
    date: str
    def __init__(self, date: _Optional[str] = ...) -> None: ...

class ClockReply(_message.Message):
    __slots__ = ("today", "month", "source", "changed_at", "changed_by", "moved_from", "interest_fen", "tier_changes", "months_closed")
    TODAY_FIELD_NUMBER: _ClassVar[int]
    MONTH_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    CHANGED_AT_FIELD_NUMBER: _ClassVar[int]
    CHANGED_BY_FIELD_NUMBER: _ClassVar[int]
    MOVED_FROM_FIELD_NUMBER: _ClassVar[int]
    INTEREST_FEN_FIELD_NUMBER: _ClassVar[int]
    TIER_CHANGES_FIELD_NUMBER: _ClassVar[int]
    MONTHS_CLOSED_FIELD_NUMBER: _ClassVar[int]
    today: str
    month: str
    source: str
    changed_at: str
    changed_by: str
    moved_from: str
    interest_fen: int
    tier_changes: int
    months_closed: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, today: _Optional[str] = ..., month: _Optional[str] = ..., source: _Optional[str] = ..., changed_at: _Optional[str] = ..., changed_by: _Optional[str] = ..., moved_from: _Optional[str] = ..., interest_fen: _Optional[int] = ..., tier_changes: _Optional[int] = ..., months_closed: _Optional[_Iterable[str]] = ...) -> None: ...

class MetricsRequest(_message.Message):
    __slots__ = ("month", "months")
    MONTH_FIELD_NUMBER: _ClassVar[int]
    MONTHS_FIELD_NUMBER: _ClassVar[int]
    month: str
    months: int
    def __init__(self, month: _Optional[str] = ..., months: _Optional[int] = ...) -> None: ...

class TierAmounts(_message.Message):
    __slots__ = ("normal", "special_mention", "substandard", "doubtful", "loss")
    NORMAL_FIELD_NUMBER: _ClassVar[int]
    SPECIAL_MENTION_FIELD_NUMBER: _ClassVar[int]
    SUBSTANDARD_FIELD_NUMBER: _ClassVar[int]
    DOUBTFUL_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    normal: int
    special_mention: int
    substandard: int
    doubtful: int
    loss: int
    def __init__(self, normal: _Optional[int] = ..., special_mention: _Optional[int] = ..., substandard: _Optional[int] = ..., doubtful: _Optional[int] = ..., loss: _Optional[int] = ...) -> None: ...

class MonthMetrics(_message.Message):
    __slots__ = ("month", "applications", "approval_rate", "npl_ratio", "approved", "declined", "referred", "average_approved_limit_fen", "utilisation", "lines", "total_limit_fen", "drawn_fen", "balances_by_tier_fen", "draws_by_tier", "npl_fen", "stocks_as_of", "stocks_final", "reviews_raised", "reviews_cut", "reviews_kept", "new_draws", "new_draws_fen", "repaid_fen", "alerts")
    MONTH_FIELD_NUMBER: _ClassVar[int]
    APPLICATIONS_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_RATE_FIELD_NUMBER: _ClassVar[int]
    NPL_RATIO_FIELD_NUMBER: _ClassVar[int]
    APPROVED_FIELD_NUMBER: _ClassVar[int]
    DECLINED_FIELD_NUMBER: _ClassVar[int]
    REFERRED_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_APPROVED_LIMIT_FEN_FIELD_NUMBER: _ClassVar[int]
    UTILISATION_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_LIMIT_FEN_FIELD_NUMBER: _ClassVar[int]
    DRAWN_FEN_FIELD_NUMBER: _ClassVar[int]
    BALANCES_BY_TIER_FEN_FIELD_NUMBER: _ClassVar[int]
    DRAWS_BY_TIER_FIELD_NUMBER: _ClassVar[int]
    NPL_FEN_FIELD_NUMBER: _ClassVar[int]
    STOCKS_AS_OF_FIELD_NUMBER: _ClassVar[int]
    STOCKS_FINAL_FIELD_NUMBER: _ClassVar[int]
    REVIEWS_RAISED_FIELD_NUMBER: _ClassVar[int]
    REVIEWS_CUT_FIELD_NUMBER: _ClassVar[int]
    REVIEWS_KEPT_FIELD_NUMBER: _ClassVar[int]
    NEW_DRAWS_FIELD_NUMBER: _ClassVar[int]
    NEW_DRAWS_FEN_FIELD_NUMBER: _ClassVar[int]
    REPAID_FEN_FIELD_NUMBER: _ClassVar[int]
    ALERTS_FIELD_NUMBER: _ClassVar[int]
    month: str
    applications: int
    approval_rate: float
    npl_ratio: float
    approved: int
    declined: int
    referred: int
    average_approved_limit_fen: int
    utilisation: float
    lines: int
    total_limit_fen: int
    drawn_fen: int
    balances_by_tier_fen: TierAmounts
    draws_by_tier: TierAmounts
    npl_fen: int
    stocks_as_of: str
    stocks_final: bool
    reviews_raised: int
    reviews_cut: int
    reviews_kept: int
    new_draws: int
    new_draws_fen: int
    repaid_fen: int
    alerts: _containers.RepeatedCompositeFieldContainer[MonitorRow]
    def __init__(self, month: _Optional[str] = ..., applications: _Optional[int] = ..., approval_rate: _Optional[float] = ..., npl_ratio: _Optional[float] = ..., approved: _Optional[int] = ..., declined: _Optional[int] = ..., referred: _Optional[int] = ..., average_approved_limit_fen: _Optional[int] = ..., utilisation: _Optional[float] = ..., lines: _Optional[int] = ..., total_limit_fen: _Optional[int] = ..., drawn_fen: _Optional[int] = ..., balances_by_tier_fen: _Optional[_Union[TierAmounts, _Mapping]] = ..., draws_by_tier: _Optional[_Union[TierAmounts, _Mapping]] = ..., npl_fen: _Optional[int] = ..., stocks_as_of: _Optional[str] = ..., stocks_final: _Optional[bool] = ..., reviews_raised: _Optional[int] = ..., reviews_cut: _Optional[int] = ..., reviews_kept: _Optional[int] = ..., new_draws: _Optional[int] = ..., new_draws_fen: _Optional[int] = ..., repaid_fen: _Optional[int] = ..., alerts: _Optional[_Iterable[_Union[MonitorRow, _Mapping]]] = ...) -> None: ...

class MetricsReply(_message.Message):
    __slots__ = ("today", "clock", "month", "months")
    TODAY_FIELD_NUMBER: _ClassVar[int]
    CLOCK_FIELD_NUMBER: _ClassVar[int]
    MONTH_FIELD_NUMBER: _ClassVar[int]
    MONTHS_FIELD_NUMBER: _ClassVar[int]
    today: str
    clock: str
    month: str
    months: _containers.RepeatedCompositeFieldContainer[MonthMetrics]
    def __init__(self, today: _Optional[str] = ..., clock: _Optional[str] = ..., month: _Optional[str] = ..., months: _Optional[_Iterable[_Union[MonthMetrics, _Mapping]]] = ...) -> None: ...

class ApplicationsRequest(_message.Message):
    __slots__ = ("month", "merchant_id", "outcome", "limit")
    MONTH_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    month: str
    merchant_id: str
    outcome: str
    limit: int
    def __init__(self, month: _Optional[str] = ..., merchant_id: _Optional[str] = ..., outcome: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ApplicationRecord(_message.Message):
    __slots__ = ("id", "merchant_id", "month", "applied_at", "purpose", "outcome", "decision_id", "account_id", "model_version", "inputs_hash", "default_probability", "band", "limit_fen", "annual_rate_bp", "reasons")
    ID_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    MONTH_FIELD_NUMBER: _ClassVar[int]
    APPLIED_AT_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    INPUTS_HASH_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    BAND_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FEN_FIELD_NUMBER: _ClassVar[int]
    ANNUAL_RATE_BP_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    id: int
    merchant_id: str
    month: str
    applied_at: str
    purpose: str
    outcome: str
    decision_id: int
    account_id: str
    model_version: str
    inputs_hash: str
    default_probability: float
    band: str
    limit_fen: int
    annual_rate_bp: int
    reasons: _containers.RepeatedCompositeFieldContainer[Reason]
    def __init__(self, id: _Optional[int] = ..., merchant_id: _Optional[str] = ..., month: _Optional[str] = ..., applied_at: _Optional[str] = ..., purpose: _Optional[str] = ..., outcome: _Optional[str] = ..., decision_id: _Optional[int] = ..., account_id: _Optional[str] = ..., model_version: _Optional[str] = ..., inputs_hash: _Optional[str] = ..., default_probability: _Optional[float] = ..., band: _Optional[str] = ..., limit_fen: _Optional[int] = ..., annual_rate_bp: _Optional[int] = ..., reasons: _Optional[_Iterable[_Union[Reason, _Mapping]]] = ...) -> None: ...

class ApplicationsReply(_message.Message):
    __slots__ = ("applications",)
    APPLICATIONS_FIELD_NUMBER: _ClassVar[int]
    applications: _containers.RepeatedCompositeFieldContainer[ApplicationRecord]
    def __init__(self, applications: _Optional[_Iterable[_Union[ApplicationRecord, _Mapping]]] = ...) -> None: ...

class MonitorRequest(_message.Message):
    __slots__ = ("month", "model_version", "refresh")
    MONTH_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    REFRESH_FIELD_NUMBER: _ClassVar[int]
    month: str
    model_version: str
    refresh: bool
    def __init__(self, month: _Optional[str] = ..., model_version: _Optional[str] = ..., refresh: _Optional[bool] = ...) -> None: ...

class MonitorRow(_message.Message):
    __slots__ = ("model_version", "month", "metric", "value", "population", "level", "alert", "detail_json")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    MONTH_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    POPULATION_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    ALERT_FIELD_NUMBER: _ClassVar[int]
    DETAIL_JSON_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    month: str
    metric: str
    value: float
    population: int
    level: str
    alert: bool
    detail_json: str
    def __init__(self, model_version: _Optional[str] = ..., month: _Optional[str] = ..., metric: _Optional[str] = ..., value: _Optional[float] = ..., population: _Optional[int] = ..., level: _Optional[str] = ..., alert: _Optional[bool] = ..., detail_json: _Optional[str] = ...) -> None: ...

class MonitorReply(_message.Message):
    __slots__ = ("rows",)
    ROWS_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[MonitorRow]
    def __init__(self, rows: _Optional[_Iterable[_Union[MonitorRow, _Mapping]]] = ...) -> None: ...

class UnfreezeRequest(_message.Message):
    __slots__ = ("account_id",)
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    def __init__(self, account_id: _Optional[str] = ...) -> None: ...
