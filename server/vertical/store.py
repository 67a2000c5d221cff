"""The bank's PSI results: which of its merchants a platform also holds, per session.

A run stores the cardinality always and, unless it was cardinality-only, the matched pairs
(bank merchant id, platform handle) compressed in one row. A session id is stored once: a
replayed session is refused.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Boolean, Engine, Integer, LargeBinary, String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from federation.clock import utcnow
from federation.errors import YinqiError
from federation.psi.protocol import PsiResult
from federation.storage import UtcDateTime, session_scope
from server.db import BankBase, bank_engine


class PsiStoreError(YinqiError):
    """A PSI session that is unknown, repeated or cannot be used for training."""


class PsiRun(BankBase):
    __tablename__ = "bank_psi_runs"

    session_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    platform: Mapped[str] = mapped_column(String(128), index=True)
    bank_count: Mapped[int] = mapped_column(Integer)
    platform_count: Mapped[int] = mapped_column(Integer)
    cardinality: Mapped[int] = mapped_column(Integer)
    cardinality_only: Mapped[bool] = mapped_column(Boolean)
    matches: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


@dataclass(frozen=True)
class Intersection:
    """A stored PSI run as the bank uses it."""

    session_id: str
    platform: str
    bank_count: int
    platform_count: int
    cardinality: int
    matches: tuple[tuple[str, int], ...] | None
    created_at: datetime

    @property
    def ids(self) -> list[str]:
        """The bank's shared merchant ids (empty for a cardinality-only run)."""
        return [m for m, _ in self.matches or ()]

    def to_dict(self) -> dict[str, object]:
        return {
            "session_id": self.session_id,
            "platform": self.platform,
            "bank_count": self.bank_count,
            "platform_count": self.platform_count,
            "cardinality": self.cardinality,
            "cardinality_only": self.matches is None,
            "created_at": self.created_at.isoformat(),
        }


def _pack(matches: tuple[tuple[str, int], ...]) -> bytes:
    return zlib.compress(json.dumps([[m, h] for m, h in matches], separators=(",", ":")).encode(), 6)


def _unpack(blob: bytes) -> tuple[tuple[str, int], ...]:
    return tuple((str(m), int(h)) for m, h in json.loads(zlib.decompress(blob)))


class PsiStore:
    def __init__(self, engine: Engine | str | None = None) -> None:
        self.engine = bank_engine(engine)

    def seen(self, session_id: str) -> bool:
        with session_scope(self.engine) as session:
            return session.get(PsiRun, session_id) is not None

    def save(self, session_id: str, platform: str, result: PsiResult) -> Intersection:
        row = PsiRun(
            session_id=session_id,
            platform=platform,
            bank_count=result.receiver_count,
            platform_count=result.sender_count,
            cardinality=result.cardinality,
            cardinality_only=result.matches is None,
            matches=None if result.matches is None else _pack(result.matches),
            created_at=utcnow(),
        )
        try:
            with session_scope(self.engine) as session:
                session.add(row)
        except IntegrityError:
            raise PsiStoreError(f"PSI session {session_id} is already stored; a session id is used once") from None
        return self.get(session_id)

    def get(self, session_id: str) -> Intersection:
        with session_scope(self.engine) as session:
            row = session.get(PsiRun, session_id)
            if row is None:
                known = session.scalars(select(PsiRun.session_id).order_by(PsiRun.created_at.desc()).limit(5)).all()
                raise PsiStoreError(
                    f"PSI session '{session_id}' is not stored at this bank (latest: {', '.join(known) or 'none'})"
                )
            return Intersection(
                row.session_id,
                row.platform,
                row.bank_count,
                row.platform_count,
                row.cardinality,
                None if row.matches is None else _unpack(row.matches),
                row.created_at,
            )

    def latest(self, platform: str | None = None) -> Intersection | None:
        query = select(PsiRun.session_id).order_by(PsiRun.created_at.desc())
        if platform:
            query = query.where(PsiRun.platform == platform)
        with session_scope(self.engine) as session:
            session_id = session.scalars(query.limit(1)).first()
        return None if session_id is None else self.get(session_id)

    def list(self) -> list[Intersection]:
        with session_scope(self.engine) as session:
            ids = session.scalars(select(PsiRun.session_id).order_by(PsiRun.created_at)).all()
        return [self.get(i) for i in ids]
