"""Draws on a credit line: each with a term and a due date, days past due, and its tier.

A draw's principal is due in one payment `term_days` after the day it was drawn. Repayments
pay the line's interest first (`server.credit.accounts`), then principal, which goes to the
draws by due date, oldest first. A draw still owing principal after its due date is past due:
`days past due = business date - due date`. Its tier follows the five-tier classification
(`server.credit.rules.Classification`), so a draw left unpaid moves 正常 → 关注 → 次级 → 可疑 → 损失
as the bank's clock passes each threshold; it is settled (and leaves the balances) when its
principal is paid.

Everything here is a function of (due date, settled date, business date), so the tier of any
draw on any day can be computed; the end-of-day run (`server.loanbook.eod`) stores each draw's
tier and a `TierChange` for every step with the day it happened, for the record.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, Date, ForeignKey, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from federation.clock import utcnow
from federation.storage import UtcDateTime, batch_param, each_batch
from server.credit.rules import TIERS, Classification
from server.db import BankBase


class Draw(BankBase):
    """One draw on a credit line."""

    __tablename__ = "bank_draws"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("bank_credit_accounts.id"), index=True)
    merchant_id: Mapped[str] = mapped_column(String(128), index=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    principal_fen: Mapped[int] = mapped_column(BigInteger)  # still owed
    drawn_on: Mapped[date] = mapped_column(Date)
    term_days: Mapped[int] = mapped_column(Integer)
    due_on: Mapped[date] = mapped_column(Date, index=True)
    settled_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    tier: Mapped[str] = mapped_column(String(16), default="normal")  # as of `classified_on`
    days_past_due: Mapped[int] = mapped_column(Integer, default=0)
    classified_on: Mapped[date] = mapped_column(Date)


class TierChange(BankBase):
    """A draw moved from one tier to the next on `on` (the day its days past due crossed the
    threshold), recorded by the end-of-day run."""

    __tablename__ = "bank_tier_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    draw_id: Mapped[str] = mapped_column(ForeignKey("bank_draws.id"), index=True)
    account_id: Mapped[str] = mapped_column(String(32), index=True)
    merchant_id: Mapped[str] = mapped_column(String(128), index=True)
    on: Mapped[date] = mapped_column(Date, index=True)
    from_tier: Mapped[str] = mapped_column(String(16))
    to_tier: Mapped[str] = mapped_column(String(16))
    days_past_due: Mapped[int] = mapped_column(Integer)
    principal_fen: Mapped[int] = mapped_column(BigInteger)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)


@dataclass(frozen=True)
class DrawView:
    """A draw as a caller sees it on a business date."""

    draw_id: str
    amount_fen: int
    principal_fen: int
    drawn_on: str
    term_days: int
    due_on: str
    settled_on: str
    days_past_due: int
    tier: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- the arithmetic: pure functions of dates ------------------------------------------------
def days_past_due(due_on: date, settled_on: date | None, today: date) -> int:
    """Days past due at the end of `today`: 0 when not yet due or already settled."""
    if settled_on is not None and settled_on <= today:
        return 0
    return max((today - due_on).days, 0)


def tier_on(due_on: date, settled_on: date | None, today: date, rules: Classification) -> str:
    """The tier of a draw at the end of `today`; a settled draw keeps the tier it settled in."""
    if settled_on is not None and settled_on <= today:
        today = settled_on - timedelta(days=1)  # its last day owing
    return rules.tier_for(max((today - due_on).days, 0))


def steps_between(
    due_on: date, settled_on: date | None, after: date, through: date, rules: Classification
) -> list[tuple[date, str, str, int]]:
    """Tier steps a draw takes on days in (`after`, `through`]: (day, from, to, days past due)."""
    steps = []
    previous = "normal"
    for tier, first in rules.thresholds():
        day = due_on + timedelta(days=first)
        owing = settled_on is None or settled_on > day
        if owing and after < day <= through:
            steps.append((day, previous, tier, first))
        previous = tier
    return steps


def reached(due_on: date, settled_on: date | None, tier: str, rules: Classification) -> date | None:
    """The day the draw reached `tier` (or worse), or None if it never did (so far or ever)."""
    first = dict(rules.thresholds())[tier]
    day = due_on + timedelta(days=first)
    return day if settled_on is None or settled_on > day else None


def view(draw: Draw, today: date, rules: Classification) -> DrawView:
    return DrawView(
        draw_id=draw.id,
        amount_fen=draw.amount_fen,
        principal_fen=draw.principal_fen,
        drawn_on=draw.drawn_on.isoformat(),
        term_days=draw.term_days,
        due_on=draw.due_on.isoformat(),
        settled_on=draw.settled_on.isoformat() if draw.settled_on else "",
        days_past_due=days_past_due(draw.due_on, draw.settled_on, today),
        tier=tier_on(draw.due_on, draw.settled_on, today, rules),
    )


def worst(tiers: Iterable[str]) -> str:
    return max(tiers, key=TIERS.index, default="normal")


# -- the records -----------------------------------------------------------------------------
def add(session: Session, account_id: str, merchant_id: str, amount_fen: int, term_days: int, on: date) -> Draw:
    """A new draw of `amount_fen` due `term_days` after `on` (in the caller's transaction)."""
    draw = Draw(
        id="D-" + uuid.uuid4().hex[:12],
        account_id=account_id,
        merchant_id=merchant_id,
        amount_fen=amount_fen,
        principal_fen=amount_fen,
        drawn_on=on,
        term_days=term_days,
        due_on=on + timedelta(days=term_days),
        settled_on=None,
        tier="normal",
        days_past_due=0,
        classified_on=on,
    )
    session.add(draw)
    return draw


def owing(session: Session, account_ids: Sequence[str] | None = None) -> list[Draw]:
    """Draws still owing principal (of the given accounts), oldest due first."""
    query = select(Draw).where(Draw.settled_on.is_(None))
    if account_ids is None:
        return list(session.scalars(query.order_by(Draw.due_on, Draw.drawn_on, Draw.id)))
    query = query.where(Draw.account_id.in_(batch_param()))
    found = [draw for (draw,) in each_batch(session, query, account_ids)]
    return sorted(found, key=lambda d: (d.due_on, d.drawn_on, d.id))


def allocate(session: Session, account_id: str, principal_fen: int, on: date) -> list[tuple[str, int]]:
    """Pay `principal_fen` of principal to the line's draws, oldest due first; a draw paid in
    full is settled on `on`. Returns (draw id, amount paid) per draw touched."""
    paid = []
    left = principal_fen
    for draw in owing(session, [account_id]):
        if left <= 0:
            break
        part = min(left, draw.principal_fen)
        draw.principal_fen -= part
        left -= part
        if draw.principal_fen == 0:
            draw.settled_on = on
        paid.append((draw.id, part))
    return paid


def classify(session: Session, after: date, through: date, rules: Classification) -> list[TierChange]:
    """The end-of-day run's classification for the days (`after`, `through`]: every owing draw's
    tier and days past due as of `through`, and a `TierChange` for each step it took."""
    changes = []
    now = utcnow()
    for draw in owing(session):
        for day, old, new, dpd in steps_between(draw.due_on, draw.settled_on, after, through, rules):
            change = TierChange(
                draw_id=draw.id,
                account_id=draw.account_id,
                merchant_id=draw.merchant_id,
                on=day,
                from_tier=old,
                to_tier=new,
                days_past_due=dpd,
                principal_fen=draw.principal_fen,
                recorded_at=now,
            )
            session.add(change)
            changes.append(change)
        draw.days_past_due = days_past_due(draw.due_on, draw.settled_on, through)
        draw.tier = tier_on(draw.due_on, draw.settled_on, through, rules)
        draw.classified_on = through
    return changes
