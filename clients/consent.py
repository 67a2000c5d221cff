"""Merchant consent on the platform side: grants and withdrawals with their time, history kept.

Consent is an append-only log of events per merchant; the latest event decides. A merchant
with no event has not consented. Training and scoring call `filter_consented` / `consented` so
a merchant who has not consented, or has withdrawn, is left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Boolean, Engine, Integer, String, func, select
from sqlalchemy.orm import Mapped, mapped_column

from clients.db import PlatformBase, platform_engine
from federation.clock import as_utc, utcnow
from federation.errors import YinqiError
from federation.storage import UtcDateTime, in_batches, session_scope

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


class ConsentError(YinqiError):
    """A consent request that cannot be recorded or checked (empty id, no id column)."""


class ConsentEvent(PlatformBase):
    """One change of a merchant's consent; never updated or deleted."""

    __tablename__ = "consent_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    merchant_id: Mapped[str] = mapped_column(String(128), index=True)
    granted: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    note: Mapped[str] = mapped_column(String(256), default="")


@dataclass(frozen=True)
class ConsentRecord:
    merchant_id: str
    granted: bool
    at: datetime
    note: str = ""

    def to_dict(self) -> dict[str, object]:
        return {"merchant_id": self.merchant_id, "granted": self.granted, "at": self.at.isoformat(), "note": self.note}


class ConsentBook:
    """A platform's consent records on one database (default: the configured one)."""

    def __init__(self, db_url: str | Engine | None = None) -> None:
        self.engine = platform_engine(db_url)

    def _record(
        self, merchant_ids: Sequence[str], granted: bool, at: datetime | None, note: str
    ) -> list[ConsentRecord]:
        ids = [str(m).strip() for m in merchant_ids]
        if not ids or any(not m for m in ids):
            raise ConsentError("a merchant id is empty; give at least one non-empty merchant id")
        when = as_utc(at) if at else utcnow()
        with session_scope(self.engine) as session:
            session.add_all(ConsentEvent(merchant_id=m, granted=granted, at=when, note=note) for m in ids)
        return [ConsentRecord(m, granted, when, note) for m in ids]

    def grant(self, merchant_ids: Sequence[str], at: datetime | None = None, note: str = "") -> list[ConsentRecord]:
        """Record that these merchants consent (from `at`, default now)."""
        return self._record(merchant_ids, True, at, note)

    def withdraw(self, merchant_ids: Sequence[str], at: datetime | None = None, note: str = "") -> list[ConsentRecord]:
        """Record that these merchants withdraw consent."""
        return self._record(merchant_ids, False, at, note)

    def current(self, merchant_ids: Sequence[str] | None = None) -> dict[str, ConsentRecord]:
        """Each merchant's latest event (all merchants with an event, or only `merchant_ids`)."""
        wanted = None if merchant_ids is None else sorted({str(m) for m in merchant_ids})
        out: dict[str, ConsentRecord] = {}
        chunks: list[Sequence[str] | None] = [None] if wanted is None else list(in_batches(wanted))
        with session_scope(self.engine) as session:
            for chunk in chunks:
                latest = select(ConsentEvent.merchant_id, func.max(ConsentEvent.id).label("last"))
                if chunk is not None:
                    latest = latest.where(ConsentEvent.merchant_id.in_(chunk))
                last_ids = latest.group_by(ConsentEvent.merchant_id).subquery()
                query = select(ConsentEvent).join(last_ids, ConsentEvent.id == last_ids.c.last)
                for event in session.scalars(query):
                    out[event.merchant_id] = ConsentRecord(
                        event.merchant_id, event.granted, as_utc(event.at), event.note
                    )
        return out

    def consented(self, merchant_ids: Sequence[str]) -> np.ndarray:
        """Boolean mask: True where the merchant's latest event is a grant."""
        current = self.current(merchant_ids)
        return np.array([current.get(str(m)) is not None and current[str(m)].granted for m in merchant_ids], dtype=bool)

    def events(self) -> list[tuple[int, ConsentRecord]]:
        """Every event with its id, oldest first (what the bank is told)."""
        with session_scope(self.engine) as session:
            return [
                (e.id, ConsentRecord(e.merchant_id, e.granted, as_utc(e.at), e.note))
                for e in session.scalars(select(ConsentEvent).order_by(ConsentEvent.id))
            ]

    def history(self, merchant_id: str | None = None) -> list[ConsentRecord]:
        """Every event, oldest first (of one merchant, or all)."""
        query = select(ConsentEvent).order_by(ConsentEvent.id)
        if merchant_id is not None:
            query = query.where(ConsentEvent.merchant_id == str(merchant_id))
        with session_scope(self.engine) as session:
            return [ConsentRecord(e.merchant_id, e.granted, as_utc(e.at), e.note) for e in session.scalars(query)]


def consented(merchant_ids: Sequence[str], db_url: str | None = None) -> np.ndarray:
    """Boolean mask of merchants whose consent is in force."""
    return ConsentBook(db_url).consented(list(merchant_ids))


def filter_consented(
    frame: pd.DataFrame, ids: pd.Series | None, db_url: str | None
) -> tuple[pd.DataFrame, pd.Series, np.ndarray]:
    """Keep only the rows of consenting merchants: (frame, ids, mask) — filter labels with `mask`.

    Called by the data loader when a node has a consent database; a table without merchant ids
    cannot be checked and is refused rather than used whole.
    """
    if ids is None:
        raise ConsentError("the data has no merchant id column; consent cannot be checked (add a merchant_id column)")
    keys = ids.astype(str).tolist()
    unique = list(dict.fromkeys(keys))
    allowed = dict(zip(unique, ConsentBook(db_url).consented(unique), strict=True))
    mask = np.array([allowed[k] for k in keys], dtype=bool)
    return frame[mask].reset_index(drop=True), ids[mask].reset_index(drop=True), mask


def consented_table(table: Any, db_url: str | None) -> Any:
    """A `federation.preprocess.LabeledTable` with only consenting merchants' rows (labels too).

    Raises ConsentError when no merchant of the table has consented: training on nothing is a
    refusal the bank should see, not an empty update.
    """
    from federation.preprocess import LabeledTable

    frame, ids, mask = filter_consented(table.frame, table.ids, db_url)
    if not mask.any():
        raise ConsentError(
            f"{table.source}: no merchant in this file has consent in force; nothing to train or score on"
        )
    unit_ids = table.unit_ids[mask].reset_index(drop=True) if table.unit_ids is not None else None  # unit kept
    return LabeledTable(
        frame=frame, y=table.y[mask], ids=ids, source=table.source, unit_ids=unit_ids, unit_column=table.unit_column
    )
