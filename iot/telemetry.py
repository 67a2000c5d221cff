"""yinqi's canonical telemetry reading, and the checks every reading passes whatever its format.

A device's message is first mapped onto these fields by a telemetry format (`iot.formats`);
the values are then checked here: the right JSON types, finite and plausible numbers, a
timestamp with a timezone that is neither in the future (beyond a skew) nor absurdly old. A
message that does not pass is rejected with a one-line reason; the monitor dead-letters it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

TOPIC_FILTER = "device/+/data"

MAX_DEVICE_ID = 128
MAX_WORKING_HOURS = 1_000_000.0  # an hour meter beyond ~114 years of non-stop work is broken
MAX_FUEL_L = 1_000_000_000.0  # a fuel counter beyond a billion litres is broken


class Telemetry(NamedTuple):
    """One reading of a leased machine, in yinqi's units (UTC time, degrees, hours, litres).

    `working_hours` and `fuel_l` are cumulative meters (engine hour meter, litres burned since
    commissioning), so a lost message loses no usage: the next reading carries it. Readings
    from the network are built by `iot.formats.TelemetryReader`, which checks every field.
    (A named tuple: immutable and the cheapest object to build on the per-message path.)
    """

    device_id: str
    ts: datetime
    lat: float
    lon: float
    working_hours: float
    fuel_l: float

    def to_payload(self) -> bytes:
        """The JSON a device publishes in yinqi's own format."""
        data = {
            "device_id": self.device_id,
            "ts": self.ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "lat": self.lat,
            "lon": self.lon,
            "working_hours": self.working_hours,
            "fuel_l": self.fuel_l,
        }
        return json.dumps(data, separators=(",", ":")).encode()


class Rejected(Exception):
    """A message the monitor cannot accept; `reason` says why in one line."""

    def __init__(self, reason: str, device_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.device_id = device_id


def shown(text: str, limit: int = 200) -> str:
    """A device-supplied string fit for a one-line reason: cut, control characters escaped."""
    cut = text[:limit]
    if cut.isprintable():
        return cut
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in cut)


def topic_device(topic: str) -> str | None:
    """The device id in `device/<id>/data`, or None for any other topic."""
    parts = topic.split("/")
    if len(parts) == 3 and parts[0] == "device" and parts[2] == "data" and parts[1]:
        return parts[1]
    return None


@dataclass(frozen=True)
class TimeBounds:
    """How far a device's clock may be trusted: at most `max_ahead` past the monitor's wall
    clock, and not before `not_before` (a clock reset to 1970, a year-9999 typo)."""

    max_ahead: timedelta = timedelta(minutes=5)
    not_before: datetime = datetime(2000, 1, 1, tzinfo=UTC)

    def check(self, ts: datetime, now: datetime, field: str) -> None:
        if ts > now + self.max_ahead:
            minutes = self.max_ahead.total_seconds() / 60
            raise ValueError(
                f"field '{field}': {ts.isoformat()} is more than {minutes:g} min ahead of the monitor's clock"
            )
        if ts < self.not_before:
            raise ValueError(f"field '{field}': {ts.isoformat()} is before {self.not_before.date().isoformat()}")


def number(value: object, field: str, low: float, high: float) -> float:
    """A finite JSON number within [low, high] (a bool or a string is a wrong type, not coerced)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"field '{field}': expected a number, got {json_type(value)}")
    try:
        as_float = float(value)
    except OverflowError:  # an integer with hundreds of digits
        raise ValueError(f"field '{field}': expected {low:g} to {high:g}, got an integer too large") from None
    if not math.isfinite(as_float):
        raise ValueError(f"field '{field}': expected a finite number, got {as_float!r}")
    if not low <= as_float <= high:
        raise ValueError(f"field '{field}': expected {low:g} to {high:g}, got {as_float:g}")
    return as_float


def iso_time(value: object, field: str) -> datetime:
    """An ISO 8601 string with a timezone, as UTC."""
    if not isinstance(value, str):
        raise ValueError(f"field '{field}': expected an ISO 8601 time string, got {json_type(value)}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"field '{field}': expected an ISO 8601 time, e.g. 2026-01-01T00:00:00Z") from None
    if parsed.tzinfo is UTC:
        return parsed
    if parsed.tzinfo is None:
        raise ValueError(f"field '{field}': timestamp must carry a timezone (e.g. 2026-01-01T00:00:00Z)")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-12:00 is past year 9999 in UTC
        raise ValueError(f"field '{field}': time out of range") from None


def epoch_time(value: object, field: str, per_second: float) -> datetime:
    """A Unix time counted in 1/`per_second` seconds (1: seconds, 1000: milliseconds), as UTC."""
    seconds = number(value, field, -math.inf, math.inf) / per_second
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"field '{field}': time out of range") from None


def json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "a number"
