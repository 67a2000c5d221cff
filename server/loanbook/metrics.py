"""Operating metrics by month, in one place: the three numbers the bank watches first —
application volume (申请量), approval rate (通过率), non-performing loan ratio (不良率) — then
average approved limit, utilisation, balances by tier, reviews, draws, repayments and the
model-monitoring alerts.

Flows (applications, reviews, draws, repayments) are counted from their records by the business
date's month. Stocks (lines, limits, balances by tier, NPL) are as of a day: the month's last
day for a month the bank's clock has passed (a snapshot the end-of-day run takes when it crosses
the month end, `close_months`), the business date for the current month. A month the clock
passed without an end-of-day run (a bank on the wall clock) has no stocks.
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, Engine, Integer, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from federation.clock import utcnow
from federation.storage import UtcDateTime, session_scope
from server.credit.errors import BankError
from server.credit.rules import NPL_TIERS, TIERS, Classification
from server.db import BankBase
from server.loanbook import draws as draw_book
from server.loanbook.applications import Application
from server.loanbook.changes import LimitChange
from server.loanbook.clock import month_of, read


class MonthPortfolio(BankBase):
    """The book's stocks at a month's end, as the end-of-day run saw them."""

    __tablename__ = "bank_month_portfolio"

    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    as_of: Mapped[date] = mapped_column(Date)
    lines: Mapped[int] = mapped_column(Integer)
    total_limit_fen: Mapped[int] = mapped_column(BigInteger)
    drawn_fen: Mapped[int] = mapped_column(BigInteger)
    balances: Mapped[dict[str, int]] = mapped_column(JSON)  # tier -> principal owed
    draws_by_tier: Mapped[dict[str, int]] = mapped_column(JSON)  # tier -> draws owing
    taken_at: Mapped[datetime] = mapped_column(UtcDateTime)


def month_end(month: str) -> date:
    year, number = int(month[:4]), int(month[5:7])
    return date(year, number, calendar.monthrange(year, number)[1])


def month_start(month: str) -> date:
    return date(int(month[:4]), int(month[5:7]), 1)


def _bounds(month: str) -> tuple[datetime, datetime]:
    start = datetime.combine(month_start(month), datetime.min.time(), UTC)
    return start, start + timedelta(days=calendar.monthrange(start.year, start.month)[1])


def portfolio(session: Session, as_of: date, rules: Classification) -> dict[str, Any]:
    """Lines, limits, principal drawn and balances by tier on `as_of` (the current records)."""
    from server.credit.accounts import Account

    lines, limits, drawn = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(Account.limit_fen), 0),
            func.coalesce(func.sum(Account.principal_fen), 0),
        ).where(Account.status == "open")
    ).one()
    balances = dict.fromkeys(TIERS, 0)
    counts = dict.fromkeys(TIERS, 0)
    for draw in draw_book.owing(session):
        tier = draw_book.tier_on(draw.due_on, draw.settled_on, as_of, rules)
        balances[tier] += draw.principal_fen
        counts[tier] += 1
    return {
        "as_of": as_of.isoformat(),
        "lines": int(lines),
        "total_limit_fen": int(limits),
        "drawn_fen": int(drawn),
        "balances": balances,
        "draws_by_tier": counts,
    }


def close_months(session: Session, first_day: date, last_day: date, rules: Classification) -> list[str]:
    """Snapshot every month whose last day lies in [`first_day`, `last_day`] (the days the
    end-of-day run is passing; nothing happens on them but the calendar)."""
    closed = []
    day = first_day
    while day <= last_day:
        end = month_end(month_of(day))
        if end <= last_day:
            stocks = portfolio(session, end, rules)
            month = month_of(end)
            existing = session.get(MonthPortfolio, month)
            if existing is not None:
                session.delete(existing)
                session.flush()
            session.add(
                MonthPortfolio(
                    month=month,
                    as_of=end,
                    lines=stocks["lines"],
                    total_limit_fen=stocks["total_limit_fen"],
                    drawn_fen=stocks["drawn_fen"],
                    balances=stocks["balances"],
                    draws_by_tier=stocks["draws_by_tier"],
                    taken_at=utcnow(),
                )
            )
            closed.append(month)
        day = end + timedelta(days=1)
    return closed


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def month_metrics(session: Session, month: str, today: date, rules: Classification) -> dict[str, Any]:
    """Every metric of one month (see the module docstring); integers exact, ratios as floats."""
    from server.credit.accounts import Entry
    from server.monitoring import stored_in

    start, end = _bounds(month)
    outcomes = dict(
        session.execute(
            select(Application.outcome, func.count()).where(Application.month == month).group_by(Application.outcome)
        ).all()
    )
    applications = sum(outcomes.values())
    approved = int(outcomes.get("approved", 0))
    approved_limits = session.execute(
        select(func.count(), func.coalesce(func.sum(Application.limit_fen), 0)).where(
            Application.month == month, Application.outcome == "approved"
        )
    ).one()
    if month == month_of(today):
        stocks: dict[str, Any] | None = portfolio(session, today, rules)
        final = False
    else:
        snapshot = session.get(MonthPortfolio, month)
        stocks = None
        if snapshot is not None:
            stocks = {
                "as_of": snapshot.as_of.isoformat(),
                "lines": snapshot.lines,
                "total_limit_fen": snapshot.total_limit_fen,
                "drawn_fen": snapshot.drawn_fen,
                "balances": {t: int(snapshot.balances.get(t, 0)) for t in TIERS},
                "draws_by_tier": {t: int(snapshot.draws_by_tier.get(t, 0)) for t in TIERS},
            }
        final = snapshot is not None
    balances = stocks["balances"] if stocks else None
    owed = sum(balances.values()) if balances else 0
    npl = sum(balances[t] for t in NPL_TIERS) if balances else 0
    reviews = dict(
        session.execute(
            select(LimitChange.action, func.count())
            .where(LimitChange.kind == "review", LimitChange.on >= start.date(), LimitChange.on < end.date())
            .group_by(LimitChange.action)
        ).all()
    )
    drawn = session.execute(
        select(func.count(), func.coalesce(func.sum(draw_book.Draw.amount_fen), 0)).where(
            draw_book.Draw.drawn_on >= start.date(), draw_book.Draw.drawn_on < end.date()
        )
    ).one()
    repaid = session.scalar(
        select(func.coalesce(func.sum(Entry.amount_fen), 0)).where(
            Entry.kind == "repay", Entry.at >= start, Entry.at < end
        )
    )
    return {
        "month": month,
        "applications": applications,
        "approval_rate": _ratio(approved, applications),
        "npl_ratio": _ratio(npl, owed) if stocks else None,
        "approved": approved,
        "declined": int(outcomes.get("declined", 0)),
        "referred": int(outcomes.get("referred", 0)),
        "average_approved_limit_fen": int(approved_limits[1]) // int(approved_limits[0])
        if approved_limits[0]
        else None,
        "utilisation": _ratio(stocks["drawn_fen"], stocks["total_limit_fen"]) if stocks else None,
        "lines": stocks["lines"] if stocks else None,
        "total_limit_fen": stocks["total_limit_fen"] if stocks else None,
        "drawn_fen": stocks["drawn_fen"] if stocks else None,
        "balances_by_tier_fen": balances,
        "draws_by_tier": stocks["draws_by_tier"] if stocks else None,
        "npl_fen": npl if stocks else None,
        "stocks_as_of": stocks["as_of"] if stocks else None,
        "stocks_final": final,
        "reviews": {action: int(reviews.get(action, 0)) for action in ("raise", "cut", "keep")},
        "new_draws": int(drawn[0]),
        "new_draws_fen": int(drawn[1]),
        "repaid_fen": int(repaid or 0),
        "alerts": [a.to_dict() for a in stored_in(session, month, alerts_only=True)],
    }


def first_month(session: Session) -> str | None:
    """The earliest month with an application, a draw or a review."""
    candidates = [
        session.scalar(select(func.min(Application.month))),
        session.scalar(select(func.min(draw_book.Draw.drawn_on))),
        session.scalar(select(func.min(LimitChange.on)).where(LimitChange.kind == "review")),
    ]
    months = [c if isinstance(c, str) else month_of(c) for c in candidates if c is not None]
    return min(months) if months else None


def months_between(first: str, last: str) -> list[str]:
    out = []
    year, number = int(first[:4]), int(first[5:7])
    while f"{year:04d}-{number:02d}" <= last:
        out.append(f"{year:04d}-{number:02d}")
        year, number = (year + 1, 1) if number == 12 else (year, number + 1)
    return out


def metrics(engine: Engine, rules: Classification, month: str | None = None, months: int = 12) -> dict[str, Any]:
    """The metrics of `month` (default: the clock's), and the trend of the `months` before it."""
    with session_scope(engine) as session:
        clock = read(session)
        today = clock.today
        current = month or month_of(today)
        if current > month_of(today):
            raise BankError(f"month {current} is after the business date {today.isoformat()}", "refused")
        first = first_month(session) or current
        span = months_between(min(first, current), current)[-max(months, 1) :]
        trend = [month_metrics(session, m, today, rules) for m in span]
    return {
        "today": today.isoformat(),
        "clock": "bank" if clock.stored else "wall clock",
        "month": current,
        "months": trend,
    }
