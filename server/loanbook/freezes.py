"""Frozen credit lines: no new draws, repayments as usual.

A line is frozen when a review cuts its limit (kind `cut`: lifted by a later review that keeps
or raises it) or when its application was referred to a credit officer (kind `referred`: lifted
only by an operator, `yinqi bank credit unfreeze`). One row per frozen line; lifting deletes it
and the line's ledger keeps both events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, String, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from federation.storage import UtcDateTime, batch_param, each_batch, in_batches, insert_rows
from server.db import BankBase

KINDS = ("cut", "referred")


class LineFreeze(BankBase):
    """Why a line's new draws are frozen, since when."""

    __tablename__ = "bank_line_freezes"

    account_id: Mapped[str] = mapped_column(ForeignKey("bank_credit_accounts.id"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(512))
    since: Mapped[date] = mapped_column(Date)
    at: Mapped[datetime] = mapped_column(UtcDateTime)


def frozen(session: Session, account_ids: Sequence[str]) -> dict[str, LineFreeze]:
    """account id -> its freeze, for the frozen ones among `account_ids`."""
    query = select(LineFreeze).where(LineFreeze.account_id.in_(batch_param()))
    return {f.account_id: f for (f,) in each_batch(session, query, dict.fromkeys(account_ids))}


def all_frozen(session: Session) -> dict[str, LineFreeze]:
    return {f.account_id: f for f in session.scalars(select(LineFreeze))}


def freeze(session: Session, account_id: str, kind: str, reason: str, since: date, at: datetime) -> None:
    """Freeze one line, in the caller's transaction; a line frozen already for the same kind
    keeps the day it was first frozen and takes the new reason."""
    existing = session.get(LineFreeze, account_id)
    if existing is None:
        session.add(LineFreeze(account_id=account_id, kind=kind, reason=reason[:512], since=since, at=at))
    else:
        if existing.kind != kind:
            existing.kind, existing.since = kind, since
        existing.reason, existing.at = reason[:512], at


def freeze_many(
    session: Session,
    kind: str,
    reasons: Mapping[str, str],
    since: date,
    at: datetime,
    existing: Mapping[str, LineFreeze],
) -> int:
    """`freeze` for many lines at once (a bulk insert, `insert_rows`: a review that cuts tens of
    thousands of lines writes them in its turn to write), in the caller's transaction.
    `existing`: the freezes of these lines, as `frozen` read them in the same transaction.
    Returns how many lines were not frozen before."""
    fresh = []
    for account_id, reason in reasons.items():
        found = existing.get(account_id)
        if found is None:
            fresh.append({"account_id": account_id, "kind": kind, "reason": reason[:512], "since": since, "at": at})
            continue
        if found.kind != kind:
            found.kind, found.since = kind, since
        found.reason, found.at = reason[:512], at
    insert_rows(session, LineFreeze, fresh)
    return len(fresh)


def lift(session: Session, account_ids: Sequence[str]) -> None:
    for batch in in_batches(list(account_ids)):
        session.execute(delete(LineFreeze).where(LineFreeze.account_id.in_(batch)))


def describe(f: LineFreeze | None) -> str:
    return "" if f is None else f"{f.kind} since {f.since.isoformat()}: {f.reason}"
