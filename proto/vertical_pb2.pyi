from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PsiStart(_message.Message):
    __slots__ = ("session_id", "count", "cardinality_only", "protocol", "platform")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    CARDINALITY_ONLY_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    count: int
    cardinality_only: bool
    protocol: str
    platform: str
    def __init__(self, session_id: _Optional[str] = ..., count: _Optional[int] = ..., cardinality_only: _Optional[bool] = ..., protocol: _Optional[str] = ..., platform: _Optional[str] = ...) -> None: ...

class PsiAccept(_message.Message):
    __slots__ = ("session_id", "count", "chunk_size")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    count: int
    chunk_size: int
    def __init__(self, session_id: _Optional[str] = ..., count: _Optional[int] = ..., chunk_size: _Optional[int] = ...) -> None: ...

class PsiPoints(_message.Message):
    __slots__ = ("kind", "offset", "points")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[PsiPoints.Kind]
        BANK_BLINDED: _ClassVar[PsiPoints.Kind]
        BANK_REBLINDED: _ClassVar[PsiPoints.Kind]
        PLATFORM_BLINDED: _ClassVar[PsiPoints.Kind]
    KIND_UNSPECIFIED: PsiPoints.Kind
    BANK_BLINDED: PsiPoints.Kind
    BANK_REBLINDED: PsiPoints.Kind
    PLATFORM_BLINDED: PsiPoints.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    kind: PsiPoints.Kind
    offset: int
    points: bytes
    def __init__(self, kind: _Optional[_Union[PsiPoints.Kind, str]] = ..., offset: _Optional[int] = ..., points: _Optional[bytes] = ...) -> None: ...

class PsiDone(_message.Message):
    __slots__ = ("cardinality", "bank_count", "stored")
    CARDINALITY_FIELD_NUMBER: _ClassVar[int]
    BANK_COUNT_FIELD_NUMBER: _ClassVar[int]
    STORED_FIELD_NUMBER: _ClassVar[int]
    cardinality: int
    bank_count: int
    stored: bool
    def __init__(self, cardinality: _Optional[int] = ..., bank_count: _Optional[int] = ..., stored: _Optional[bool] = ...) -> None: ...

class PsiFrame(_message.Message):
    __slots__ = ("start", "accept", "points", "done")
    START_FIELD_NUMBER: _ClassVar[int]
    ACCEPT_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    start: PsiStart
    accept: PsiAccept
    points: PsiPoints
    done: PsiDone
    def __init__(self, start: _Optional[_Union[PsiStart, _Mapping]] = ..., accept: _Optional[_Union[PsiAccept, _Mapping]] = ..., points: _Optional[_Union[PsiPoints, _Mapping]] = ..., done: _Optional[_Union[PsiDone, _Mapping]] = ...) -> None: ...

class EmbedRequest(_message.Message):
    __slots__ = ("merchant_id", "bottom_sha256")
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    BOTTOM_SHA256_FIELD_NUMBER: _ClassVar[int]
    merchant_id: str
    bottom_sha256: str
    def __init__(self, merchant_id: _Optional[str] = ..., bottom_sha256: _Optional[str] = ...) -> None: ...

class EmbedReply(_message.Message):
    __slots__ = ("merchant_id", "embedding", "bottom_sha256", "platform")
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    BOTTOM_SHA256_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    merchant_id: str
    embedding: _containers.RepeatedScalarFieldContainer[float]
    bottom_sha256: str
    platform: str
    def __init__(self, merchant_id: _Optional[str] = ..., embedding: _Optional[_Iterable[float]] = ..., bottom_sha256: _Optional[str] = ..., platform: _Optional[str] = ...) -> None: ...
