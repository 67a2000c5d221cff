"""The bank's business date: a clock the bank owns and stores, not the wall clock.

Banks run on a business date that moves when the end-of-day run says so. yinqi's loan book
does the same: due dates, days past due, interest days and month ends all follow the date stored
here (`bank_clock`, one row). Until an operator sets it (`yinqi bank clock set DATE` or
`advance --days N`, `server.loanbook.eod`), the clock follows the wall clock (UTC), so a bank
that never touches it behaves as before. A time of day comes from the wall clock, so records
made on one business date keep their order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import Date, Engine, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from federation.clock import utcnow
from federation.storage import UtcDateTime, session_scope
from server.db import BankBase

CLOCK_ROW = 1


class BankClockRow(BankBase):
    """The bank's business date, once an operator set it."""

    __tablename__ = "bank_clock"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    today: Mapped[date] = mapped_column(Date)
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime)  # wall clock
    changed_by: Mapped[str] = mapped_column(String(160))


@dataclass(frozen=True)
class ClockState:
    """What the clock says: the business date and whether it is the bank's own or the wall's."""

    today: date
    stored: bool
    changed_at: datetime | None = None
    changed_by: str = ""

    def to_dict(self) -> dict[str, str | bool]:
        return {
            "today": self.today.isoformat(),
            "month": self.today.strftime("%Y-%m"),
            "source": "bank" if self.stored else "wall clock",
            "changed_at": self.changed_at.isoformat(timespec="seconds") if self.changed_at else "",
            "changed_by": self.changed_by,
        }


# built once: every application reads the clock
_READ = select(BankClockRow.today, BankClockRow.changed_at, BankClockRow.changed_by).where(BankClockRow.id == CLOCK_ROW)


def read(session: Session) -> ClockState:
    row = session.connection().execute(_READ).first()  # a plain row: no mapped object to load
    if row is None:
        return ClockState(utcnow().date(), False)
    return ClockState(row.today, True, row.changed_at, row.changed_by)


def write(session: Session, today: date, who: str) -> ClockState:
    """Store `today` as the business date (in the caller's transaction)."""
    row = session.get(BankClockRow, CLOCK_ROW, with_for_update=True)
    now = utcnow()
    if row is None:
        session.add(BankClockRow(id=CLOCK_ROW, today=today, changed_at=now, changed_by=who))
    else:
        row.today, row.changed_at, row.changed_by = today, now, who
    session.flush()
    return ClockState(today, True, now, who)


class Clock:
    """Reads the bank's business date (`today`) and a timestamp on it (`now`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def state(self, session: Session | None = None) -> ClockState:
        if session is not None:
            return read(session)
        with session_scope(self.engine) as own:
            return read(own)

    def today(self) -> date:
        return self.state().today

    def now(self, session: Session | None = None) -> datetime:
        """The business date with the wall clock's time of day (UTC); read in `session` when given."""
        state = self.state(session)
        wall = utcnow()
        if not state.stored:
            return wall
        return datetime.combine(state.today, wall.time(), UTC)


def month_of(day: date) -> str:
    return day.strftime("%Y-%m")
