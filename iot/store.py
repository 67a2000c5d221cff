"""The monitor's durable state: alerts, the delivery outbox, dead letters, devices, usage.

All tables live on `iot.db.MonitorBase`, the monitor's own metadata (SQLite by default,
PostgreSQL by URL). An alert event is written together with its outbox row in one transaction
before the MQTT message that caused it is acknowledged. Dead letters hold what the monitor could
not pass on: telemetry it refused, and alert events the bank refused for good (topic
`REFUSED_BY_BANK`), which move there from the outbox in one transaction and can be re-queued.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Float, Integer, LargeBinary, String, Text, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, mapped_column

from federation.canonical import canonical_json
from federation.clock import utcnow
from federation.storage import UtcDateTime, session_scope
from iot.alerts import Alert
from iot.db import MonitorBase, monitor_engine


class AlertRow(MonitorBase):
    """Every alert episode the monitor raised, with its current state."""

    __tablename__ = "iot_alerts"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(128), index=True)
    rule: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), index=True)
    raised_at: Mapped[datetime] = mapped_column(UtcDateTime)
    cleared_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    evidence: Mapped[str] = mapped_column(Text)
    lease_id: Mapped[str | None] = mapped_column(String(128), nullable=True)

    def to_alert(self) -> Alert:
        return Alert(
            id=self.id,
            device_id=self.device_id,
            rule=self.rule,
            severity=self.severity,
            state=self.state,  # type: ignore[arg-type]
            raised_at=self.raised_at,
            cleared_at=self.cleared_at,
            evidence=json.loads(self.evidence),
            lease_id=self.lease_id,
        )


class OutboxRow(MonitorBase):
    """An alert event waiting for (or done with) delivery to the bank."""

    __tablename__ = "iot_outbox"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(16))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True, index=True)
    duplicate: Mapped[int] = mapped_column(Integer, default=0)


REFUSED_BY_BANK = "bank:AlertService/Deliver"  # the dead-letter topic of an alert event the bank refused


class DeadLetterRow(MonitorBase):
    """A telemetry message the monitor could not accept, or an alert event the bank refused
    (topic `REFUSED_BY_BANK`, payload the event's JSON), kept with its reason."""

    __tablename__ = "iot_dead_letters"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    topic: Mapped[str] = mapped_column(String(256))
    device_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    reason: Mapped[str] = mapped_column(String(512), index=True)
    payload: Mapped[bytes] = mapped_column(LargeBinary)


class DeviceRow(MonitorBase):
    """Last known reading of each device (restores idle detection after a monitor restart)."""

    __tablename__ = "iot_devices"
    device_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    last_ts: Mapped[datetime] = mapped_column(UtcDateTime)
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    working_hours: Mapped[float] = mapped_column(Float)
    fuel_l: Mapped[float] = mapped_column(Float)


class UsageRow(MonitorBase):
    """First and last meter readings of a device in a calendar month (UTC)."""

    __tablename__ = "iot_usage"
    device_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)  # YYYY-MM
    first_ts: Mapped[datetime] = mapped_column(UtcDateTime)
    first_hours: Mapped[float] = mapped_column(Float)
    last_ts: Mapped[datetime] = mapped_column(UtcDateTime)
    last_hours: Mapped[float] = mapped_column(Float)
    first_fuel: Mapped[float] = mapped_column(Float)
    last_fuel: Mapped[float] = mapped_column(Float)
    readings: Mapped[int] = mapped_column(Integer)


@dataclass
class Usage:
    """Meter readings of one device-month, merged in memory before a flush."""

    first_ts: datetime
    first_hours: float
    first_fuel: float
    last_ts: datetime
    last_hours: float
    last_fuel: float
    readings: int = 1

    def add(self, ts: datetime, hours: float, fuel: float) -> None:
        if ts < self.first_ts:
            self.first_ts, self.first_hours, self.first_fuel = ts, hours, fuel
        if ts >= self.last_ts:
            self.last_ts, self.last_hours, self.last_fuel = ts, hours, fuel
        self.readings += 1

    def merge(self, later: Usage) -> Usage:
        """This aggregate combined with one gathered after it (a failed flush is retried)."""
        first = self if self.first_ts <= later.first_ts else later
        last = later if later.last_ts >= self.last_ts else self
        return Usage(
            first.first_ts,
            first.first_hours,
            first.first_fuel,
            last.last_ts,
            last.last_hours,
            last.last_fuel,
            self.readings + later.readings,
        )


class IotStore:
    """Typed access to the monitor's tables on one engine."""

    def __init__(self, db_url: str | None = None, engine: Engine | None = None) -> None:
        self.engine = monitor_engine(engine or db_url)

    # alerts + outbox -------------------------------------------------------------------
    def record_alerts(self, events: list[Alert]) -> None:
        """Store alert events and queue them for delivery, in one transaction."""
        with session_scope(self.engine) as s:
            for event in events:
                row = s.get(AlertRow, event.id)
                if row is None:
                    row = AlertRow(
                        id=event.id,
                        device_id=event.device_id,
                        rule=event.rule,
                        severity=event.severity,
                        raised_at=event.raised_at,
                        evidence=canonical_json(event.evidence),
                        lease_id=event.lease_id,
                    )
                    s.add(row)
                row.state = event.state
                row.cleared_at = event.cleared_at
                s.add(
                    OutboxRow(
                        alert_id=event.id,
                        state=event.state,
                        payload=canonical_json(event.to_dict()),
                        attempts=0,
                        duplicate=0,
                    )
                )

    def active_alerts(self) -> list[Alert]:
        with session_scope(self.engine) as s:
            rows = s.scalars(select(AlertRow).where(AlertRow.state == "raised")).all()
            return [r.to_alert() for r in rows]

    def alerts(self, device_id: str | None = None, state: str | None = None, limit: int = 0) -> list[Alert]:
        with session_scope(self.engine) as s:
            q = select(AlertRow).order_by(AlertRow.raised_at, AlertRow.id)
            if device_id:
                q = q.where(AlertRow.device_id == device_id)
            if state:
                q = q.where(AlertRow.state == state)
            if limit:
                q = q.limit(limit)
            return [r.to_alert() for r in s.scalars(q).all()]

    def pending(self, limit: int = 100) -> list[tuple[int, Alert]]:
        with session_scope(self.engine) as s:
            q = select(OutboxRow).where(OutboxRow.delivered_at.is_(None)).order_by(OutboxRow.seq).limit(limit)
            return [(r.seq, Alert.from_dict(json.loads(r.payload))) for r in s.scalars(q).all()]

    def mark_delivered(self, seq: int, duplicate: bool) -> None:
        with session_scope(self.engine) as s:
            row = s.get(OutboxRow, seq)
            if row is None:
                return  # gone (a database reset meanwhile): nothing to mark
            row.delivered_at = utcnow()
            row.attempts += 1
            row.duplicate = int(duplicate)

    def mark_failed(self, seq: int, error: str) -> None:
        with session_scope(self.engine) as s:
            row = s.get(OutboxRow, seq)
            if row is None:
                return
            row.attempts += 1
            row.last_error = error[:500]

    def refuse(self, seq: int, reason: str) -> bool:
        """Move an event the bank refused for good from the outbox to the dead letters, in one
        transaction; False when it is no longer pending (delivered or moved meanwhile)."""
        with session_scope(self.engine) as s:
            row = s.get(OutboxRow, seq)
            if row is None or row.delivered_at is not None:
                return False
            device = json.loads(row.payload).get("device_id")
            s.add(
                DeadLetterRow(
                    topic=REFUSED_BY_BANK,
                    payload=row.payload.encode(),
                    reason=reason[:512],
                    device_id=str(device)[:128] if device is not None else None,
                )
            )
            s.delete(row)
            return True

    def requeue_refused(self) -> int:
        """Put every alert event the bank refused back into the outbox (once the cause is fixed,
        e.g. the monitor's certificate); returns how many."""
        with session_scope(self.engine) as s:
            rows = s.scalars(select(DeadLetterRow).where(DeadLetterRow.topic == REFUSED_BY_BANK)).all()
            for dead in sorted(rows, key=lambda r: r.id):
                event = json.loads(dead.payload)
                s.add(OutboxRow(alert_id=event["id"], state=event["state"], payload=dead.payload.decode(), attempts=0))
                s.delete(dead)
            return len(rows)

    def outbox_counts(self) -> dict[str, int]:
        """Alert events ever queued (`total`): `pending`, `delivered`, or `refused` by the bank."""
        with session_scope(self.engine) as s:
            queued = s.scalar(select(func.count()).select_from(OutboxRow)) or 0
            pending = s.scalar(select(func.count()).select_from(OutboxRow).where(OutboxRow.delivered_at.is_(None))) or 0
            refused = (
                s.scalar(select(func.count()).select_from(DeadLetterRow).where(DeadLetterRow.topic == REFUSED_BY_BANK))
                or 0
            )
            return {"total": queued + refused, "pending": pending, "delivered": queued - pending, "refused": refused}

    # dead letters ------------------------------------------------------------------------
    def dead_letter(self, topic: str, payload: bytes, reason: str, device_id: str | None) -> None:
        with session_scope(self.engine) as s:
            s.add(DeadLetterRow(topic=topic[:256], payload=payload, reason=reason[:512], device_id=device_id))

    def dead_letters(self, limit: int = 50) -> list[DeadLetterRow]:
        with session_scope(self.engine) as s:
            return list(s.scalars(select(DeadLetterRow).order_by(DeadLetterRow.id.desc()).limit(limit)).all())

    def dead_letter_counts(self) -> dict[str, int]:
        with session_scope(self.engine) as s:
            rows = s.execute(select(DeadLetterRow.reason, func.count()).group_by(DeadLetterRow.reason)).all()
            return {reason: n for reason, n in rows}

    # devices and usage ---------------------------------------------------------------------
    def save_devices(
        self, devices: dict[str, tuple[datetime, float, float, float, float]], usage: dict[tuple[str, str], Usage]
    ) -> None:
        """Persist device snapshots and merge usage aggregates (one transaction)."""
        with session_scope(self.engine) as s:
            for device_id, (ts, lat, lon, hours, fuel) in devices.items():
                row = s.get(DeviceRow, device_id)
                if row is None:
                    s.add(
                        DeviceRow(device_id=device_id, last_ts=ts, lat=lat, lon=lon, working_hours=hours, fuel_l=fuel)
                    )
                elif row.last_ts <= ts:
                    row.last_ts, row.lat, row.lon, row.working_hours, row.fuel_l = ts, lat, lon, hours, fuel
            for (device_id, month), u in usage.items():
                month_row = s.get(UsageRow, (device_id, month))
                if month_row is None:
                    s.add(
                        UsageRow(
                            device_id=device_id,
                            month=month,
                            first_ts=u.first_ts,
                            first_hours=u.first_hours,
                            first_fuel=u.first_fuel,
                            last_ts=u.last_ts,
                            last_hours=u.last_hours,
                            last_fuel=u.last_fuel,
                            readings=u.readings,
                        )
                    )
                    continue
                if u.first_ts < month_row.first_ts:
                    month_row.first_ts, month_row.first_hours, month_row.first_fuel = (
                        u.first_ts,
                        u.first_hours,
                        u.first_fuel,
                    )
                if u.last_ts >= month_row.last_ts:
                    month_row.last_ts, month_row.last_hours, month_row.last_fuel = u.last_ts, u.last_hours, u.last_fuel
                month_row.readings += u.readings

    def devices(self) -> dict[str, DeviceRow]:
        with session_scope(self.engine) as s:
            return {r.device_id: r for r in s.scalars(select(DeviceRow)).all()}

    def monthly_usage(self, device_id: str, month: str) -> tuple[float, float, int] | None:
        """(working hours, litres, readings) of a device in a month, from its cumulative meters.

        Usage runs from the last reading of the latest earlier month (or the month's first
        reading) to the month's last reading. None when the device sent nothing that month.
        """
        with session_scope(self.engine) as s:
            row = s.get(UsageRow, (device_id, month))
            if row is None:
                return None
            before = s.scalars(
                select(UsageRow)
                .where(UsageRow.device_id == device_id, UsageRow.month < month)
                .order_by(UsageRow.month.desc())
                .limit(1)
            ).first()
            base_hours = before.last_hours if before else row.first_hours
            base_fuel = before.last_fuel if before else row.first_fuel
            return (max(0.0, row.last_hours - base_hours), max(0.0, row.last_fuel - base_fuel), row.readings)

    def usage_months(self, device_id: str) -> list[str]:
        with session_scope(self.engine) as s:
            return list(
                s.scalars(select(UsageRow.month).where(UsageRow.device_id == device_id).order_by(UsageRow.month))
            )
