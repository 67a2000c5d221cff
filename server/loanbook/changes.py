"""Limit changes: every time a line's limit is set or reviewed, what happened and why.

One row per line per event: its opening, each monthly review (raised, cut, kept, or not
reviewed and why), each re-evaluation when a model is promoted. Each row keeps the old, the
policy's and the new limit, the decision it rests on, the reason codes (a review's as their
facts, worded in both languages when read: `wording.as_read`) and the model's contributions
per feature (the next review explains what moved against them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Date, Engine, Float, Integer, String, UniqueConstraint, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from federation.storage import UtcDateTime, batch_param, each_batch, session_scope
from server.db import BankBase
from server.loanbook import wording

KINDS = ("open", "review", "promotion")
ACTIONS = ("open", "raise", "cut", "keep", "skip")


class LimitChange(BankBase):
    """One limit event of one line."""

    __tablename__ = "bank_limit_changes"
    # a month is reviewed once per line: a second run (or a retry after a crash) skips it
    __table_args__ = (UniqueConstraint("account_id", "kind", "review_month", name="uq_bank_limit_review"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # no index of its own: the unique key above starts with it and serves a line's lookups
    account_id: Mapped[str] = mapped_column(String(32))
    merchant_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))  # open | review | promotion
    review_month: Mapped[str | None] = mapped_column(String(7), nullable=True, index=True)  # reviews only
    on: Mapped[date] = mapped_column(Date, index=True)  # business date
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    action: Mapped[str] = mapped_column(String(8))  # open | raise | cut | keep | skip
    old_limit_fen: Mapped[int] = mapped_column(BigInteger)
    target_limit_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # the policy's
    new_limit_fen: Mapped[int] = mapped_column(BigInteger)
    principal_fen: Mapped[int] = mapped_column(BigInteger)
    frozen: Mapped[bool] = mapped_column(Boolean, default=False)  # new draws frozen after it
    decision_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    model_version: Mapped[str] = mapped_column(String(32), default="")
    pd: Mapped[float | None] = mapped_column(Float, nullable=True)
    band: Mapped[str] = mapped_column(String(32), default="")
    turnover_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    contributions: Mapped[dict[str, float]] = mapped_column(JSON)


@dataclass(frozen=True)
class Previous:
    """What the last limit event of a line knew: to explain what moved since."""

    pd: float | None
    band: str
    turnover_fen: int | None
    contributions: dict[str, float]


def latest(session: Session, account_ids: Sequence[str]) -> dict[str, Previous]:
    """account id -> its latest scored limit event (open, review or promotion), for `account_ids`."""
    newest = (
        select(func.max(LimitChange.id))
        .where(LimitChange.pd.is_not(None), LimitChange.account_id.in_(batch_param()))
        .group_by(LimitChange.account_id)
    )
    query = select(
        LimitChange.account_id, LimitChange.pd, LimitChange.band, LimitChange.turnover_fen, LimitChange.contributions
    ).where(LimitChange.id.in_(newest.scalar_subquery()))
    return {
        account: Previous(pd, band, turnover, dict(contributions or {}))
        for account, pd, band, turnover, contributions in each_batch(session, query, account_ids)
    }


def reviewed(session: Session, month: str, account_ids: Sequence[str] | None = None) -> set[str]:
    """Accounts already reviewed for `month` (among `account_ids` when given: a review's chunk
    checks its own lines, not every line reviewed so far)."""
    query = select(LimitChange.account_id).where(LimitChange.kind == "review", LimitChange.review_month == month)
    if account_ids is None:
        return set(session.scalars(query))
    query = query.where(LimitChange.account_id.in_(batch_param()))
    return {account for (account,) in each_batch(session, query, account_ids)}


def history(engine: Engine, account_id: str) -> list[dict[str, Any]]:
    with session_scope(engine) as session:
        rows = session.scalars(select(LimitChange).where(LimitChange.account_id == account_id).order_by(LimitChange.id))
        return [
            {
                "kind": r.kind,
                "review_month": r.review_month or "",
                "on": r.on.isoformat(),
                "action": r.action,
                "old_limit_fen": r.old_limit_fen,
                "target_limit_fen": r.target_limit_fen,
                "new_limit_fen": r.new_limit_fen,
                "frozen": r.frozen,
                "model_version": r.model_version,
                "band": r.band,
                "pd": r.pd,
                "reasons": wording.as_read(r.reasons),
            }
            for r in rows
        ]


class ReviewRun(BankBase):
    """One run of the monthly review: when, by whom, with which model, and what it did."""

    __tablename__ = "bank_review_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    review_month: Mapped[str] = mapped_column(String(7), index=True)
    on: Mapped[date] = mapped_column(Date)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    model_version: Mapped[str] = mapped_column(String(32))
    counts: Mapped[dict[str, Any]] = mapped_column(JSON)
    seconds: Mapped[float] = mapped_column(Float)
