"""The bank's alert store: one row per alert id, idempotent under redelivery."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from federation.clock import utcnow
from federation.storage import UtcDateTime, ensure_tables, session_scope
from server.db import BankBase


class BankAlertRow(BankBase):
    """An equipment alert as the bank received it."""

    __tablename__ = "bank_alerts"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(128), index=True)
    rule: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), index=True)
    raised_at: Mapped[str] = mapped_column(String(40))
    cleared_at: Mapped[str] = mapped_column(String(40), default="")
    evidence_json: Mapped[str] = mapped_column(Text)
    lease_id: Mapped[str] = mapped_column(String(128), default="")
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    deliveries: Mapped[int] = mapped_column(Integer, default=1)


FIELDS = ("id", "device_id", "rule", "severity", "state", "raised_at", "cleared_at", "evidence_json", "lease_id")


class AlertStore:
    """Intake and listing over one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        ensure_tables(engine, BankBase.metadata)

    def intake(self, alert: dict[str, str]) -> tuple[bool, bool]:
        """Store an alert event; returns (changed, duplicate).

        A raising creates the row; a clearing of a known id moves it to `cleared`; anything
        already recorded (same id, same or earlier state) is a duplicate and changes nothing.
        """
        for attempt in range(2):
            try:
                with session_scope(self.engine) as s:
                    row = s.get(BankAlertRow, alert["id"], with_for_update=True)
                    if row is None:
                        s.add(BankAlertRow(**{k: alert[k] for k in FIELDS}, deliveries=1))
                        return True, False
                    row.deliveries += 1
                    if alert["state"] == "cleared" and row.state != "cleared":
                        row.state, row.cleared_at = "cleared", alert["cleared_at"]
                        return True, False
                    return False, True
            except IntegrityError:
                if attempt:
                    raise  # two first deliveries raced: the second retry sees the row
        raise AssertionError("unreachable")

    def list(self, device_id: str = "", state: str = "", limit: int = 0) -> list[BankAlertRow]:
        with session_scope(self.engine) as s:
            q = select(BankAlertRow).order_by(BankAlertRow.raised_at, BankAlertRow.id)
            if device_id:
                q = q.where(BankAlertRow.device_id == device_id)
            if state:
                q = q.where(BankAlertRow.state == state)
            if limit:
                q = q.limit(limit)
            return list(s.scalars(q).all())
