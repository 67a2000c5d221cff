"""Moving the bank's clock: the end-of-day run for every day it passes.

`advance(book, days)` (and `set_date` to a later day) moves the business date from D to D'.
The days D .. D'-1 end on the way, and for them the run:

1. accrues interest through D'-1 (`CreditBook.accrue`, exact, as daily runs would);
2. closes every month whose last day it passes: the book's stocks as of that day
   (`server.loanbook.metrics.close_months`);
3. classifies every draw still owed as of D' (days past due, tier) and records each tier step
   with the day it happened (`server.loanbook.draws.classify`);
4. stores D' as the business date.

Nothing else happens on the days passed, so stocks and tiers on any of them follow from the
records. A crash part-way leaves the clock at D; the next run repeats only what is missing
(accrual is idempotent; month snapshots and the classification are rewritten). `set_date` to an
earlier day is allowed only back to the last recorded activity: the books never hold an entry
dated after the business date.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from federation.clock import utcnow
from federation.storage import write_transaction
from server.credit.accounts import CreditBook, Entry
from server.credit.errors import BankError
from server.loanbook import clock, draws
from server.loanbook.applications import Application
from server.loanbook.metrics import close_months

MAX_DAYS = 3660  # one move of the clock: at most about ten years
EARLIEST, LATEST = date(2000, 1, 1), date(2999, 12, 31)  # business dates the bank accepts


def latest_activity(session: Session) -> date | None:
    """The latest business date any record of the loan book is dated on."""
    days = [
        session.scalar(select(func.max(Entry.at))),
        session.scalar(select(func.max(Application.applied_at))),
    ]
    dates = [d.date() if isinstance(d, datetime) else d for d in days if d is not None]
    drawn = session.scalar(select(func.max(draws.Draw.drawn_on)))
    if drawn is not None:
        dates.append(drawn)
    return max(dates) if dates else None


def advance(book: CreditBook, days: int, who: str) -> dict[str, Any]:
    """Move the business date `days` forward, running the end of each day passed."""
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise BankError(f"--days {days!r}: expected a whole number of days from 1 to {MAX_DAYS}")
    today = book.clock.today()
    if today + timedelta(days=days) > LATEST:
        raise BankError(f"--days {days}: the business date would pass {LATEST.isoformat()}")
    return _move(book, today + timedelta(days=days), who)


def set_date(book: CreditBook, day: date, who: str) -> dict[str, Any]:
    """Set the business date: later runs the end of each day passed; earlier only back to the
    last recorded activity."""
    return _move(book, day, who)


def _move(book: CreditBook, to: date, who: str) -> dict[str, Any]:
    if not EARLIEST <= to <= LATEST:
        raise BankError(
            f"business date {to.isoformat()}: expected a day from {EARLIEST.isoformat()} to {LATEST.isoformat()}"
        )
    state = book.clock.state()
    today = state.today
    if (to - today).days > MAX_DAYS:
        raise BankError(f"{to.isoformat()} is more than {MAX_DAYS} days after the business date {today.isoformat()}")
    report: dict[str, Any] = {"from": today.isoformat(), "to": to.isoformat(), "interest_fen": 0, "accounts": 0}
    if to <= today:
        with write_transaction(book.engine) as session:
            last = latest_activity(session)
            if last is not None and to < last:
                raise BankError(
                    f"the books hold records dated {last.isoformat()}; the business date cannot go back to "
                    f"{to.isoformat()} before them",
                    "refused",
                )
            clock.write(session, to, who)
        return {**report, "tier_changes": 0, "months_closed": [], **book.clock.state().to_dict()}
    at = datetime.combine(to, utcnow().time(), UTC)
    accrued = book.accrue(to - timedelta(days=1), now=at)
    report["interest_fen"], report["accounts"] = accrued["interest_fen"], accrued["accounts"]
    rules = book.policy.classification
    with write_transaction(book.engine) as session:
        closed = close_months(session, today, to - timedelta(days=1), rules)
        changes = draws.classify(session, today, to, rules)
        clock.write(session, to, who)
        steps = [
            {
                "draw_id": c.draw_id,
                "account_id": c.account_id,
                "on": c.on.isoformat(),
                "from": c.from_tier,
                "to": c.to_tier,
            }
            for c in changes
        ]
    return {
        **report,
        "tier_changes": len(steps),
        "steps": steps,
        "months_closed": closed,
        **book.clock.state().to_dict(),
    }
