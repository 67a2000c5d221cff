"""Telemetry schema and validation: one MQTT message on `device/<id>/data` -> `Telemetry`.

A message that does not fit is rejected with a one-line reason; the monitor dead-letters it
and keeps going.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

TOPIC_FILTER = "device/+/data"


class Telemetry(BaseModel):
    """One reading of a leased machine.

    `working_hours` and `fuel_l` are cumulative meters (engine hour meter, litres burned since
    commissioning), so a lost message loses no usage: the next reading carries it.
    """

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    device_id: str = Field(min_length=1, max_length=128)
    ts: datetime
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    working_hours: float = Field(ge=0)
    fuel_l: float = Field(ge=0)

    @field_validator("ts")
    @classmethod
    def _aware_utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("timestamp must carry a timezone (e.g. 2026-01-01T00:00:00Z)")
        return value.astimezone(UTC)

    def to_payload(self) -> bytes:
        """The JSON a device publishes."""
        data = self.model_dump(mode="json")
        data["ts"] = self.ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return json.dumps(data, separators=(",", ":")).encode()


class Rejected(Exception):
    """A message the monitor cannot accept; `reason` says why in one line."""

    def __init__(self, reason: str, device_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.device_id = device_id


def topic_device(topic: str) -> str | None:
    """The device id in `device/<id>/data`, or None for any other topic."""
    parts = topic.split("/")
    if len(parts) == 3 and parts[0] == "device" and parts[2] == "data" and parts[1]:
        return parts[1]
    return None


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    first = errors[0]
    field = ".".join(str(p) for p in first.get("loc", ())) or "payload"
    if first.get("type") == "missing":
        reason = f"missing field '{field}'"
    else:
        reason = f"field '{field}': {first.get('msg', 'invalid')}"
    if len(errors) > 1:
        reason += f" (+{len(errors) - 1} more)"
    return reason


def parse(topic: str, payload: bytes) -> Telemetry:
    """Validate one message; raises `Rejected` with the reason when it does not fit."""
    device = topic_device(topic)
    if device is None:
        raise Rejected(f"topic '{topic}' is not device/<id>/data")
    try:
        reading = Telemetry.model_validate_json(payload)
    except ValidationError as exc:
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            raise Rejected("malformed JSON", device) from None
        if any(e.get("type") == "model_type" for e in exc.errors()):
            raise Rejected("payload is not a JSON object", device) from None
        raise Rejected(_first_error(exc), device) from None
    if reading.device_id != device:
        raise Rejected(f"topic device '{device}' does not match payload device_id '{reading.device_id}'", device)
    return reading
