"""A platform's PSI sessions: the order in which it sent its ids (a row's *handle* is its
position), so that vertical training can find the rows the bank names by handle.

The platform never learns which handles matched; it only keeps its own order.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, Integer, LargeBinary, String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from clients.db import PlatformBase, platform_engine
from federation.clock import utcnow
from federation.errors import YinqiError
from federation.storage import UtcDateTime, session_scope


class SessionError(YinqiError):
    """A PSI session this platform does not know (or already stored)."""


class PsiSession(PlatformBase):
    __tablename__ = "platform_psi_sessions"

    session_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    bank: Mapped[str] = mapped_column(String(256))
    count: Mapped[int] = mapped_column(Integer)
    bank_count: Mapped[int] = mapped_column(Integer)
    cardinality: Mapped[int] = mapped_column(Integer)
    order: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


@dataclass(frozen=True)
class SessionOrder:
    session_id: str
    bank: str
    order: list[str]
    bank_count: int
    cardinality: int
    created_at: datetime

    def handles(self) -> dict[str, int]:
        return {merchant: handle for handle, merchant in enumerate(self.order)}


class SessionBook:
    def __init__(self, engine: Engine | str | None = None) -> None:
        self.engine = platform_engine(engine)

    def save(self, session_id: str, bank: str, order: list[str], bank_count: int, cardinality: int) -> None:
        blob = zlib.compress("\n".join(order).encode("utf-8"), 6)
        try:
            with session_scope(self.engine) as session:
                session.add(
                    PsiSession(
                        session_id=session_id,
                        bank=bank,
                        count=len(order),
                        bank_count=bank_count,
                        cardinality=cardinality,
                        order=blob,
                        created_at=utcnow(),
                    )
                )
        except IntegrityError:
            raise SessionError(f"PSI session {session_id} is already stored") from None

    def get(self, session_id: str) -> SessionOrder:
        with session_scope(self.engine) as session:
            row = session.get(PsiSession, session_id)
            if row is None:
                known = session.scalars(
                    select(PsiSession.session_id).order_by(PsiSession.created_at.desc()).limit(5)
                ).all()
                raise SessionError(
                    f"PSI session '{session_id}' is not known to this platform (latest: {', '.join(known) or 'none'}); "
                    "run `yinqi psi run` first"
                )
            order = zlib.decompress(row.order).decode("utf-8").split("\n") if row.count else []
            return SessionOrder(row.session_id, row.bank, order, row.bank_count, row.cardinality, row.created_at)
