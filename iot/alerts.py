"""Alert lifecycle: raised once when a rule starts failing for a device, cleared on recovery.

An alert episode has a stable id derived from (device, rule, raised_at): replaying the same
telemetry gives the same ids, so the bank's idempotent intake stores each episode once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

State = Literal["raised", "cleared"]


def alert_id(device_id: str, rule: str, raised_at: datetime) -> str:
    key = f"{device_id}|{rule}|{raised_at.isoformat()}".encode()
    return hashlib.sha256(key).hexdigest()[:32]


@dataclass(frozen=True)
class Alert:
    """One alert event (the raising or the clearing of an episode)."""

    id: str
    device_id: str
    rule: str
    severity: str
    state: State
    raised_at: datetime
    evidence: dict[str, Any] = field(default_factory=dict)
    cleared_at: datetime | None = None
    lease_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "device_id": self.device_id,
            "rule": self.rule,
            "severity": self.severity,
            "state": self.state,
            "raised_at": self.raised_at.isoformat(),
            "cleared_at": self.cleared_at.isoformat() if self.cleared_at else None,
            "evidence": self.evidence,
            "lease_id": self.lease_id,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alert:
        return cls(
            id=data["id"],
            device_id=data["device_id"],
            rule=data["rule"],
            severity=data["severity"],
            state=data["state"],
            raised_at=datetime.fromisoformat(data["raised_at"]),
            cleared_at=datetime.fromisoformat(data["cleared_at"]) if data.get("cleared_at") else None,
            evidence=dict(data.get("evidence") or {}),
            lease_id=data.get("lease_id"),
        )


class AlertBook:
    """The open alerts, one per (device, rule); `observe` turns verdicts into events."""

    def __init__(self, active: list[Alert] | None = None) -> None:
        self.active: dict[tuple[str, str], Alert] = {(a.device_id, a.rule): a for a in active or []}

    def is_active(self, device_id: str, rule: str) -> bool:
        return (device_id, rule) in self.active

    def observe(
        self,
        device_id: str,
        rule: str,
        failing: bool,
        *,
        at: datetime,
        evidence: dict[str, Any],
        severity: str,
        lease_id: str | None = None,
    ) -> Alert | None:
        """The event this verdict causes: a raising, a clearing, or None (no change)."""
        key = (device_id, rule)
        open_alert = self.active.get(key)
        if failing and open_alert is None:
            alert = Alert(
                id=alert_id(device_id, rule, at),
                device_id=device_id,
                rule=rule,
                severity=severity,
                state="raised",
                raised_at=at,
                evidence=evidence,
                lease_id=lease_id,
            )
            self.active[key] = alert
            return alert
        if not failing and open_alert is not None:
            del self.active[key]
            return replace(open_alert, state="cleared", cleared_at=at)
        return None
