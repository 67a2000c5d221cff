"""Applications: every score request for a merchant, with its outcome and reasons.

A score (`ScoringService.Score`/`ScoreBatch`) or an opening (`CreditService.Open`) of a consented
merchant is an application: approved with a limit and rate, declined, or referred to a credit
officer, with the reason codes, the model version and sha256, the inputs' sha256, the decision
it rests on and the bank's business date. Application volume (申请量) and approval rate (通过率)
are counted from here. A request refused before scoring (no consent, no reported features) is
not an application; the call log keeps it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Engine, Float, Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column

from federation.storage import UtcDateTime, session_scope
from server.db import BankBase


class Application(BankBase):
    """One application and its outcome."""

    __tablename__ = "bank_applications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    merchant_id: Mapped[str] = mapped_column(String(128), index=True)
    month: Mapped[str] = mapped_column(String(7), index=True)  # the business date's month
    applied_at: Mapped[datetime] = mapped_column(UtcDateTime)  # on the bank's clock
    purpose: Mapped[str] = mapped_column(String(16))  # score | open
    outcome: Mapped[str] = mapped_column(String(16))  # approved | declined | referred
    decision_id: Mapped[int] = mapped_column(Integer, index=True)
    account_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    model_version: Mapped[str] = mapped_column(String(32))
    model_sha256: Mapped[str] = mapped_column(String(64))
    inputs_hash: Mapped[str] = mapped_column(String(64))
    pd: Mapped[float] = mapped_column(Float)
    band: Mapped[str] = mapped_column(String(32))
    limit_fen: Mapped[int] = mapped_column(BigInteger)
    annual_rate_bp: Mapped[int] = mapped_column(Integer)
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    contributions: Mapped[dict[str, float]] = mapped_column(JSON)


@dataclass(frozen=True)
class ApplicationView:
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
    pd: float
    band: str
    limit_fen: int
    annual_rate_bp: int
    reasons: tuple[dict[str, Any], ...]

    @classmethod
    def of(cls, a: Application) -> ApplicationView:
        return cls(
            a.id,
            a.merchant_id,
            a.month,
            a.applied_at.isoformat(timespec="seconds"),
            a.purpose,
            a.outcome,
            a.decision_id,
            a.account_id or "",
            a.model_version,
            a.inputs_hash,
            a.pd,
            a.band,
            a.limit_fen,
            a.annual_rate_bp,
            tuple(a.reasons or ()),
        )

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["reasons"] = list(self.reasons)
        return data


def listing(
    engine: Engine,
    month: str | None = None,
    merchant: str | None = None,
    outcome: str | None = None,
    limit: int = 50,
) -> list[ApplicationView]:
    """Applications, newest first."""
    query = select(Application).order_by(Application.id.desc())
    if month:
        query = query.where(Application.month == month)
    if merchant:
        query = query.where(Application.merchant_id == merchant)
    if outcome:
        query = query.where(Application.outcome == outcome)
    if limit:
        query = query.limit(limit)
    with session_scope(engine) as session:
        return [ApplicationView.of(a) for a in session.scalars(query)]


def counts_by_month(rows: Sequence[tuple[str, str, int]]) -> dict[str, dict[str, int]]:
    """[(month, outcome, count)] -> {month: {outcome: count}}."""
    out: dict[str, dict[str, int]] = {}
    for month, outcome, count in rows:
        out.setdefault(month, {})[outcome] = int(count)
    return out
