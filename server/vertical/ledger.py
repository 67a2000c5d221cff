"""The bank's label-privacy ledger: ε spent on its labels in each vertical run.

Each run re-randomises the labels it uses (or noises its returned gradients), so runs compose
sequentially: with a lifetime budget, a run is refused before it starts when its ε plus what
earlier runs spent would exceed it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, Float, Integer, String, func, select
from sqlalchemy.orm import Mapped, mapped_column

from federation.clock import utcnow
from federation.errors import YinqiError
from federation.storage import UtcDateTime, session_scope
from server.db import BankBase, bank_engine


class LabelBudgetExceeded(YinqiError):
    """A vertical run would spend more label privacy than the bank's budget allows."""


class LabelPrivacyEntry(BankBase):
    __tablename__ = "bank_label_privacy"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(64), index=True)
    session_id: Mapped[str] = mapped_column(String(64))
    platform: Mapped[str] = mapped_column(String(128))
    mechanism: Mapped[str] = mapped_column(String(16))
    epsilon: Mapped[float] = mapped_column(Float)
    delta: Mapped[float] = mapped_column(Float)
    rows: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class LabelLedger:
    def __init__(self, engine: Engine | str | None = None) -> None:
        self.engine = bank_engine(engine)

    def spent(self) -> float:
        with session_scope(self.engine) as session:
            return float(session.scalar(select(func.coalesce(func.sum(LabelPrivacyEntry.epsilon), 0.0))) or 0.0)

    def charge(
        self,
        *,
        run_id: str,
        session_id: str,
        platform: str,
        mechanism: str,
        epsilon: float,
        delta: float,
        rows: int,
        budget: float | None,
    ) -> float:
        """Record the run's ε (refusing it past `budget`); returns the lifetime total."""
        earlier = self.spent()
        if budget is not None and earlier + epsilon > budget + 1e-9:
            raise LabelBudgetExceeded(
                f"label privacy budget epsilon={budget:g} would be exceeded (spent {earlier:.3f} in earlier "
                f"runs, this run needs {epsilon:.3f}); refusing to train"
            )
        with session_scope(self.engine) as session:
            session.add(
                LabelPrivacyEntry(
                    run_id=run_id,
                    session_id=session_id,
                    platform=platform,
                    mechanism=mechanism,
                    epsilon=float(epsilon),
                    delta=float(delta),
                    rows=int(rows),
                    created_at=utcnow(),
                )
            )
        return earlier + epsilon

    def entries(self) -> list[LabelPrivacyEntry]:
        with session_scope(self.engine) as session:
            return list(session.scalars(select(LabelPrivacyEntry).order_by(LabelPrivacyEntry.id)))
