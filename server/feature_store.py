"""The features the bank scores on: each merchant's latest rows, as its own platform reported them.

A platform sends its consented merchants' recent feature rows over
`PlatformService.ReportFeatures` with its platform certificate; the bank checks every value
(`server.scoring.canonical_rows`: finite, plausible, bounded), claims the merchants for that
platform (`server.merchants`), and keeps one record per merchant: the rows, their sha256, who
reported them and when. Scoring and opening a credit line read these rows; a caller never
supplies them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import JSON, Engine, String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from federation.clock import utcnow
from federation.storage import UtcDateTime, batch_param, each_batch, session_scope
from server.credit.errors import BankError
from server.db import BankBase, bank_engine
from server.merchants import claim
from server.scoring import ReadRows, Row, canonical_rows, inputs_hash

MAX_MERCHANTS = 20_000  # per report


class ReportedFeatures(BankBase):
    """A merchant's latest feature rows and the platform that reported them."""

    __tablename__ = "bank_reported_features"

    merchant_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    platform: Mapped[str] = mapped_column(String(128), index=True)
    rows: Mapped[list[Row]] = mapped_column(JSON)
    rows_sha256: Mapped[str] = mapped_column(String(64))
    reported_at: Mapped[datetime] = mapped_column(UtcDateTime)


# built once: a single application reads its merchant's rows, a review's chunk ten thousand
_ROWS = select(ReportedFeatures.merchant_id, ReportedFeatures.rows).where(
    ReportedFeatures.merchant_id.in_(batch_param())
)
_REPORTED_AT = select(ReportedFeatures.merchant_id, ReportedFeatures.reported_at).where(
    ReportedFeatures.merchant_id.in_(batch_param())
)


class FeatureStore:
    """Reported feature rows on the bank's database."""

    def __init__(self, engine: Engine | str | None = None) -> None:
        self.engine = bank_engine(engine)

    def report(self, platform: str, merchants: Mapping[str, Sequence[Row]]) -> int:
        """Store `platform`'s rows per merchant; returns how many merchants' rows changed.

        Everything is checked before anything is stored: one bad value, or one merchant another
        platform owns, refuses the whole report.
        """
        if not merchants:
            raise BankError("a feature report needs at least one merchant")
        if len(merchants) > MAX_MERCHANTS:
            raise BankError(f"a feature report of {len(merchants)} merchants; send at most {MAX_MERCHANTS} at once")
        clean = {}
        for merchant_id, rows in merchants.items():
            merchant = str(merchant_id).strip()
            rows_clean = canonical_rows(merchant, rows)
            clean[merchant] = (rows_clean, inputs_hash(merchant, rows_clean))
        for attempt in range(2):
            try:
                return self._store(platform, clean)
            except IntegrityError:  # a concurrent first report claimed one of these merchants
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _store(self, platform: str, clean: dict[str, tuple[tuple[Row, ...], str]]) -> int:
        changed = 0
        now = utcnow()
        with session_scope(self.engine) as session:
            claim(session, platform, clean)
            stored = {
                r.merchant_id: r
                for r in session.scalars(
                    select(ReportedFeatures).where(ReportedFeatures.merchant_id.in_(list(clean))).with_for_update()
                )
            }
            for merchant, (rows, digest) in clean.items():
                row = stored.get(merchant)
                if row is None:
                    session.add(
                        ReportedFeatures(
                            merchant_id=merchant,
                            platform=platform,
                            rows=list(rows),
                            rows_sha256=digest,
                            reported_at=now,
                        )
                    )
                elif row.rows_sha256 != digest:
                    row.rows, row.rows_sha256, row.reported_at = list(rows), digest, now
                else:
                    continue
                changed += 1
        return changed

    def rows(self, merchant_ids: Sequence[str], session: Session | None = None) -> dict[str, list[Row]]:
        """merchant id -> its reported rows, for the ids that have a report (read in `session`
        when given)."""
        if session is None:
            with session_scope(self.engine) as own:
                return self.rows(merchant_ids, own)
        wanted = sorted({str(m) for m in merchant_ids})
        return {merchant: list(rows) for merchant, rows in each_batch(session, _ROWS, wanted)}

    def reported(self, merchant_ids: Sequence[str]) -> dict[str, str]:
        """merchant id -> when its rows were last reported (ISO 8601 UTC)."""
        wanted = sorted({str(m) for m in merchant_ids})
        with session_scope(self.engine) as session:
            return {
                merchant: at.isoformat(timespec="seconds") for merchant, at in each_batch(session, _REPORTED_AT, wanted)
            }

    def rows_of(self, merchant_id: str, session: Session | None = None) -> list[Row]:
        """The merchant's reported rows; NOT_FOUND when its platform has not reported any."""
        rows = self.rows([merchant_id], session).get(str(merchant_id))
        if rows is None:
            raise BankError(
                f"merchant '{merchant_id}': no features reported by its platform "
                "(the platform sends them with `yinqi client consent report --features FILE`)",
                "not_found",
            )
        return rows

    def reader(self, merchant_id: str) -> ReadRows:
        """How `Scorer.score` reads the merchant's rows in its own read transaction (one
        transaction, not two, per application), or in one of this store's own when the scorer
        keeps another database."""

        def read(session: Session) -> list[Row]:
            return self.rows_of(merchant_id, session if session.get_bind() is self.engine else None)

        return read
