"""The bank's alert store: one row per alert id, idempotent under redelivery, each stored change
and its anchor leaf written in one transaction."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Integer, String, Text, and_, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from federation.clock import utcnow
from federation.storage import UtcDateTime, ensure_tables, session_scope
from server import faults
from server.credit.errors import BankError
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
SEVERITIES = ("info", "warning", "critical")
STATES = ("raised", "cleared")
ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
RULE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
EARLIEST, LATEST = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
MAX_DEVICE_ID, MAX_LEASE_ID, MAX_EVIDENCE = 128, 128, 16_384

# (session, alert fields as stored) -> anchor leaf; called inside the intake's transaction.
Anchor = Callable[[Session, dict[str, str]], str]


def _time(alert: dict[str, str], field: str) -> datetime:
    value = alert[field]
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise BankError(f"alert {alert['id']}: {field} {value[:40]!r} is not an ISO 8601 time") from None
    if at.tzinfo is None:
        raise BankError(f"alert {alert['id']}: {field} {value!r} has no time zone; expected UTC")
    if not EARLIEST <= at < LATEST:
        raise BankError(f"alert {alert['id']}: {field} {value!r} is outside {EARLIEST.year}-{LATEST.year - 1}")
    return at


def validate(alert: dict[str, str]) -> None:
    """Refuse (INVALID_ARGUMENT, naming the field) an alert that is not well-formed."""
    if not ID.match(alert["id"]):
        raise BankError(f"alert id {alert['id'][:40]!r}: expected 1-64 letters, digits, '.', '_', ':' or '-'")
    where = f"alert {alert['id']}"
    device = alert["device_id"]
    if not device or len(device) > MAX_DEVICE_ID or not device.isprintable():
        raise BankError(f"{where}: device_id of {len(device)} characters; expected 1-{MAX_DEVICE_ID} printable ones")
    if not RULE.match(alert["rule"]):
        raise BankError(f"{where}: rule {alert['rule'][:40]!r}: expected a lower-case name like idle, geofence, fuel")
    if alert["severity"] not in SEVERITIES:
        raise BankError(f"{where}: severity {alert['severity'][:40]!r}: expected one of {', '.join(SEVERITIES)}")
    if alert["state"] not in STATES:
        raise BankError(f"{where}: state {alert['state'][:40]!r}: expected raised or cleared")
    raised = _time(alert, "raised_at")
    if alert["state"] == "cleared":
        if _time(alert, "cleared_at") < raised:
            raise BankError(f"{where}: cleared_at {alert['cleared_at']} is before raised_at {alert['raised_at']}")
    elif alert["cleared_at"]:
        raise BankError(f"{where}: a raised alert has no cleared_at (got {alert['cleared_at'][:40]!r})")
    if len(alert["evidence_json"]) > MAX_EVIDENCE:
        raise BankError(
            f"{where}: evidence_json of {len(alert['evidence_json'])} characters; expected at most {MAX_EVIDENCE}"
        )
    try:
        evidence = json.loads(alert["evidence_json"] or "{}")
    except ValueError:
        raise BankError(f"{where}: evidence_json is not JSON") from None
    if not isinstance(evidence, dict):
        raise BankError(f"{where}: evidence_json must be a JSON object")
    lease = alert["lease_id"]
    if len(lease) > MAX_LEASE_ID or (lease and not lease.isprintable()):
        raise BankError(f"{where}: lease_id of {len(lease)} characters; expected at most {MAX_LEASE_ID} printable ones")


def versions(row: BankAlertRow) -> list[dict[str, str]]:
    """The alert events a row stands for: its raising and, once cleared, its clearing."""
    stored = {k: getattr(row, k) for k in FIELDS}
    raised = {**stored, "state": "raised", "cleared_at": ""}
    return [raised, stored] if row.state == "cleared" else [raised]


class AlertStore:
    """Intake and listing over one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        ensure_tables(engine, BankBase.metadata)

    def intake(self, alert: dict[str, str], anchor: Anchor | None = None) -> tuple[bool, bool]:
        """Store an alert event; returns (changed, duplicate).

        A raising creates the row; a clearing of a known id moves it to `cleared`; anything
        already recorded (same id, same or earlier state) is a duplicate and changes nothing.
        With `anchor`, every event the row stands for gets its anchor leaf in the same
        transaction: a new one with its row, and on a redelivery any leaf missing (e.g. from
        before this was atomic) is queued then, so a retry never leaves an alert unanchored.
        """
        validate(alert)
        for attempt in range(2):
            try:
                with session_scope(self.engine) as s:
                    changed, duplicate, row = self._apply(s, alert)
                    if anchor is not None:
                        faults.point(faults.ALERT_STORED)
                        for version in versions(row):
                            anchor(s, version)
                    return changed, duplicate
            except IntegrityError:
                if attempt:
                    raise  # two first deliveries raced: the second retry sees the row
        raise AssertionError("unreachable")

    @staticmethod
    def _apply(s: Session, alert: dict[str, str]) -> tuple[bool, bool, BankAlertRow]:
        row = s.get(BankAlertRow, alert["id"], with_for_update=True)
        if row is None:
            row = BankAlertRow(**{k: alert[k] for k in FIELDS}, deliveries=1)
            s.add(row)
            s.flush()
            return True, False, row
        row.deliveries += 1
        if alert["state"] == "cleared" and row.state != "cleared":
            row.state, row.cleared_at = "cleared", alert["cleared_at"]
            return True, False, row
        return False, True, row

    def list(
        self, device_id: str = "", state: str = "", limit: int = 0, after: tuple[str, str] | None = None
    ) -> list[BankAlertRow]:
        """Alerts oldest first (raised_at, then id), after the alert `after` names (raised_at, id)."""
        with session_scope(self.engine) as s:
            q = select(BankAlertRow).order_by(BankAlertRow.raised_at, BankAlertRow.id)
            if after is not None:
                raised_at, alert_id = after
                q = q.where(
                    or_(
                        BankAlertRow.raised_at > raised_at,
                        and_(BankAlertRow.raised_at == raised_at, BankAlertRow.id > alert_id),
                    )
                )
            if device_id:
                q = q.where(BankAlertRow.device_id == device_id)
            if state:
                q = q.where(BankAlertRow.state == state)
            if limit:
                q = q.limit(limit)
            return list(s.scalars(q).all())
