"""A platform's privacy ledger: the ε it has spent, per run and round, and its lifetime budget.

Every round a platform trains with DP-SGD is recorded (platform, run id, round, composed ε of
the run so far, δ, and the privacy unit the ε is about: `merchant_id`, or `row`). Within one run
ε composes through the accountant, so a run's cost is its largest recorded ε; across runs the
costs add up (basic sequential composition). Before training, the ClientApp asks
`check_budget`; past the budget it refuses the round.

Entries written before the unit was recorded were row-level (merchant-month) guarantees: a
ledger from then gets the column with the value `row` when first opened.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, Float, Integer, String, UniqueConstraint, func, inspect, select, text
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Mapped, mapped_column

from clients.db import PlatformBase, platform_engine
from federation.clock import utcnow
from federation.errors import YinqiError
from federation.storage import UtcDateTime, session_scope


class BudgetExceeded(YinqiError):
    """Training this round would take the platform past its privacy budget."""


class PrivacyLedgerEntry(PlatformBase):
    """One DP round a platform trained: ε is the run's composed ε after that round."""

    __tablename__ = "privacy_ledger"
    __table_args__ = (UniqueConstraint("platform", "run_id", "round", name="uq_privacy_ledger_round"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String(200), index=True)
    run_id: Mapped[str] = mapped_column(String(64), index=True)
    round: Mapped[int] = mapped_column(Integer)
    epsilon: Mapped[float] = mapped_column(Float)
    delta: Mapped[float] = mapped_column(Float)
    unit: Mapped[str] = mapped_column(String(64), default="row", server_default="row")
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


@dataclass
class LedgerSummary:
    platform: str
    spent_other_runs: float
    spent_this_run: float

    @property
    def total(self) -> float:
        return self.spent_other_runs + self.spent_this_run


class PrivacyLedger:
    """The ledger in one database (SQLite file by default, PostgreSQL through the same code)."""

    def __init__(self, url: str) -> None:
        self.engine = platform_engine(url)
        _add_unit_column(self.engine)

    def record(self, platform: str, run_id: str, round_: int, epsilon: float, delta: float, unit: str = "row") -> None:
        """Store the run's composed ε after `round_` about `unit` (idempotent for a repeated round)."""
        with session_scope(self.engine) as session:
            existing = session.scalar(
                select(PrivacyLedgerEntry).where(
                    PrivacyLedgerEntry.platform == platform,
                    PrivacyLedgerEntry.run_id == run_id,
                    PrivacyLedgerEntry.round == round_,
                )
            )
            if existing is None:
                session.add(
                    PrivacyLedgerEntry(
                        platform=platform, run_id=run_id, round=round_, epsilon=epsilon, delta=delta, unit=unit
                    )
                )
            else:
                existing.epsilon, existing.delta, existing.unit = epsilon, delta, unit

    def summary(self, platform: str, run_id: str) -> LedgerSummary:
        """ε spent by `platform` in other runs (summed) and in this run (composed so far)."""
        with session_scope(self.engine) as session:
            per_run = session.execute(
                select(PrivacyLedgerEntry.run_id, func.max(PrivacyLedgerEntry.epsilon))
                .where(PrivacyLedgerEntry.platform == platform)
                .group_by(PrivacyLedgerEntry.run_id)
            ).all()
        other = sum(eps for rid, eps in per_run if rid != run_id)
        this = next((eps for rid, eps in per_run if rid == run_id), 0.0)
        return LedgerSummary(platform, float(other), float(this))

    def entries(self, platform: str | None = None) -> list[PrivacyLedgerEntry]:
        with session_scope(self.engine) as session:
            query = select(PrivacyLedgerEntry).order_by(PrivacyLedgerEntry.id)
            if platform is not None:
                query = query.where(PrivacyLedgerEntry.platform == platform)
            return list(session.scalars(query))

    def check_budget(
        self, platform: str, run_id: str, projected_run_epsilon: float, budget: float, *, lifetime: bool = True
    ) -> LedgerSummary:
        """Raise `BudgetExceeded` when this run's projected ε (plus, for a `lifetime` budget,
        what earlier runs spent) exceeds `budget`."""
        summary = self.summary(platform, run_id)
        earlier = summary.spent_other_runs if lifetime else 0.0
        if earlier + projected_run_epsilon > budget + 1e-9:
            raise BudgetExceeded(
                f"platform '{platform}': privacy budget epsilon={budget:g} would be exceeded "
                f"(spent {earlier:.3f} in earlier runs, this run would reach "
                f"{projected_run_epsilon:.3f}); refusing to train"
            )
        return summary


_migrated: set[int] = set()


def _add_unit_column(engine: Engine) -> None:
    """A ledger created before the unit was recorded gets the column; its entries were row-level."""
    if id(engine) in _migrated:
        return
    columns = {c["name"] for c in inspect(engine).get_columns(PrivacyLedgerEntry.__tablename__)}
    if "unit" not in columns:
        try:
            with engine.begin() as connection:
                connection.execute(
                    text("ALTER TABLE privacy_ledger ADD COLUMN unit VARCHAR(64) NOT NULL DEFAULT 'row'")
                )
        except (OperationalError, ProgrammingError):  # another process added it first
            columns = {c["name"] for c in inspect(engine).get_columns(PrivacyLedgerEntry.__tablename__)}
            if "unit" not in columns:
                raise
    _migrated.add(id(engine))
