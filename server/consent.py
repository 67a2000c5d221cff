"""Merchant consent as the bank knows it: what each platform reported over the wire.

A platform keeps its own consent book (`clients.consent`) and reports its events to the bank
(`PlatformService.ReportConsent`). The bank stores each event once (by platform and the
platform's event id) and never reads a platform's database. A merchant's latest reported event
decides; a merchant never reported has not consented. A platform reports only its own merchants
(`server.merchants`: the first platform to report a merchant id owns it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import BigInteger, Boolean, Engine, Integer, String, UniqueConstraint, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from federation.clock import as_utc, utcnow
from federation.storage import UtcDateTime, batch_param, each_batch, session_scope
from server.credit.errors import BankError
from server.db import BankBase, bank_engine
from server.merchants import claim


class ReportedConsent(BankBase):
    """One consent event a platform reported; never updated or deleted."""

    __tablename__ = "bank_consent_events"
    __table_args__ = (UniqueConstraint("platform", "event_id", name="uq_bank_consent_event"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String(200), index=True)
    event_id: Mapped[int] = mapped_column(BigInteger)
    merchant_id: Mapped[str] = mapped_column(String(128), index=True)
    granted: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    note: Mapped[str] = mapped_column(String(256), default="")
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


# each merchant's events, oldest first (built once: every application reads its merchant's)
_EVENTS_IN_ORDER = (
    select(ReportedConsent.merchant_id, ReportedConsent.granted)
    .where(ReportedConsent.merchant_id.in_(batch_param()))
    .order_by(ReportedConsent.at, ReportedConsent.id)
)


@dataclass(frozen=True)
class ConsentEventIn:
    """A consent event as a platform sends it."""

    event_id: int
    merchant_id: str
    granted: bool
    at: datetime
    note: str = ""


MAX_ID = 128
MAX_EVENTS = 100_000  # per report
CLOCK_SKEW = timedelta(days=1)  # how far in the future a platform's clock may be


class ConsentRegistry:
    """The consent events platforms reported, on the bank's database."""

    def __init__(self, engine: Engine | str | None = None) -> None:
        self.engine = bank_engine(engine)

    def record(self, platform: str, events: Sequence[ConsentEventIn]) -> int:
        """Store the events this bank does not have yet; returns how many were new.

        Every event is checked before any is stored: a bad one refuses the whole report.
        """
        platform = str(platform).strip()
        if not platform or len(platform) > MAX_ID:
            raise BankError(f"a consent report needs the platform's name (1..{MAX_ID} characters)")
        if len(events) > MAX_EVENTS:
            raise BankError(f"a consent report of {len(events)} events; send at most {MAX_EVENTS} at once")
        latest = utcnow() + CLOCK_SKEW
        for event in events:
            merchant = str(event.merchant_id).strip()
            if not merchant or len(merchant) > MAX_ID:
                raise BankError(f"consent event {event.event_id}: merchant id must be 1..{MAX_ID} characters")
            if not -(2**63) <= int(event.event_id) < 2**63:
                raise BankError(f"consent event {event.event_id}: id out of range; expected a 64-bit integer")
            if event.at.tzinfo is None:
                raise BankError(f"consent event {event.event_id}: time {event.at} has no time zone; expected UTC")
            if event.at > latest:
                raise BankError(
                    f"consent event {event.event_id}: time {event.at.isoformat()} is in the future; "
                    "expected when the merchant gave or withdrew consent"
                )
            if len(str(event.note)) > 256 or "\x00" in str(event.note):
                raise BankError(
                    f"consent event {event.event_id}: note of {len(str(event.note))} characters; "
                    "expected at most 256, without NUL"
                )
        stored = 0
        with session_scope(self.engine) as session:
            claim(session, platform, (str(e.merchant_id).strip() for e in events))
            # in batches: a report's 100,000 ids in one IN list pass PostgreSQL's 65,535 parameters
            reported = select(ReportedConsent.event_id).where(
                ReportedConsent.platform == platform, ReportedConsent.event_id.in_(batch_param())
            )
            known = {event_id for (event_id,) in each_batch(session, reported, [e.event_id for e in events])}
            for event in events:
                if event.event_id in known:
                    continue
                known.add(event.event_id)
                session.add(
                    ReportedConsent(
                        platform=platform,
                        event_id=int(event.event_id),
                        merchant_id=str(event.merchant_id).strip(),
                        granted=bool(event.granted),
                        at=as_utc(event.at),
                        note=str(event.note)[:256],
                    )
                )
                stored += 1
        return stored

    def record_retrying(self, platform: str, events: Sequence[ConsentEventIn]) -> int:
        """`record`, once more if a concurrent report of the same events won the race."""
        try:
            return self.record(platform, events)
        except IntegrityError:
            return self.record(platform, events)

    def consented(self, merchant_ids: Sequence[str], session: Session | None = None) -> np.ndarray:
        """Boolean mask: True where the merchant's latest reported event is a grant (read in
        `session` when given: a score reads its model, consent and date in one transaction)."""
        if session is None:
            with session_scope(self.engine) as own:
                return self.consented(merchant_ids, own)
        wanted = sorted({str(m) for m in merchant_ids})
        latest: dict[str, bool] = {}
        for merchant, granted in each_batch(session, _EVENTS_IN_ORDER, wanted):
            latest[merchant] = bool(granted)  # the newest event wins; same instant: the later report
        return np.array([latest.get(str(m), False) for m in merchant_ids], dtype=bool)
