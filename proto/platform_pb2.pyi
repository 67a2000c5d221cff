from proto import bank_pb2 as _bank_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ConsentEvent(_message.Message):
    __slots__ = ("event_id", "merchant_id", "granted", "at", "note")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    GRANTED_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    event_id: int
    merchant_id: str
    granted: bool
    at: str
    note: str
    def __init__(self, event_id: _Optional[int] = ..., merchant_id: _Optional[str] = ..., granted: _Optional[bool] = ..., at: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class ConsentReport(_message.Message):
    __slots__ = ("platform", "events")
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    platform: str
    events: _containers.RepeatedCompositeFieldContainer[ConsentEvent]
    def __init__(self, platform: _Optional[str] = ..., events: _Optional[_Iterable[_Union[ConsentEvent, _Mapping]]] = ...) -> None: ...

class ConsentAck(_message.Message):
    __slots__ = ("received", "stored")
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    STORED_FIELD_NUMBER: _ClassVar[int]
    received: int
    stored: int
    def __init__(self, received: _Optional[int] = ..., stored: _Optional[int] = ...) -> None: ...

class MerchantFeatures(_message.Message):
    __slots__ = ("merchant_id", "rows")
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    merchant_id: str
    rows: _containers.RepeatedCompositeFieldContainer[_bank_pb2.FeatureRow]
    def __init__(self, merchant_id: _Optional[str] = ..., rows: _Optional[_Iterable[_Union[_bank_pb2.FeatureRow, _Mapping]]] = ...) -> None: ...

class FeatureReport(_message.Message):
    __slots__ = ("merchants", "platform")
    MERCHANTS_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    merchants: _containers.RepeatedCompositeFieldContainer[MerchantFeatures]
    platform: str
    def __init__(self, merchants: _Optional[_Iterable[_Union[MerchantFeatures, _Mapping]]] = ..., platform: _Optional[str] = ...) -> None: ...

class FeatureAck(_message.Message):
    __slots__ = ("received", "changed")
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    received: int
    changed: int
    def __init__(self, received: _Optional[int] = ..., changed: _Optional[int] = ...) -> None: ...
