"""Monitoring rules (idle, geofence, fuel per working hour), configured in TOML.

Every check is a pure function of the configuration and the facts handed in: the monitor owns
the state and the clock; these functions only say pass or fail and why (the evidence).
"""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from iot.errors import IotError
from iot.telemetry import TimeBounds

Severity = Literal["info", "warning", "critical"]
RULES = ("idle", "geofence", "fuel")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IdleRule(_Strict):
    threshold_hours: float = Field(default=24.0, gt=0, le=24 * 366, allow_inf_nan=False)
    severity: Severity = "warning"


class FuelRule(_Strict):
    max_litres_per_hour: float = Field(default=10.0, gt=0, allow_inf_nan=False)
    window_hours: float = Field(default=0.25, gt=0, allow_inf_nan=False)
    severity: Severity = "warning"


class TimestampRule(_Strict):
    """How far device clocks are trusted (see `iot.telemetry.TimeBounds`)."""

    max_ahead_minutes: float = Field(default=5.0, gt=0, le=24 * 60, allow_inf_nan=False)
    not_before: datetime = datetime(2000, 1, 1, tzinfo=UTC)

    @field_validator("not_before")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("give a timezone, e.g. 2000-01-01T00:00:00Z")
        return value.astimezone(UTC)

    def bounds(self) -> TimeBounds:
        return TimeBounds(timedelta(minutes=self.max_ahead_minutes), self.not_before)


class Box(_Strict):
    lat_min: float = Field(default=30.0, ge=-90, le=90)
    lat_max: float = Field(default=40.0, ge=-90, le=90)
    lon_min: float = Field(default=110.0, ge=-180, le=180)
    lon_max: float = Field(default=120.0, ge=-180, le=180)

    def contains(self, lat: float, lon: float) -> bool:
        return self.lat_min <= lat <= self.lat_max and self.lon_min <= lon <= self.lon_max


class Zone(_Strict):
    name: str
    polygon: list[tuple[Annotated[float, Field(ge=-90, le=90)], Annotated[float, Field(ge=-180, le=180)]]] = Field(
        min_length=3
    )
    devices: list[str] = []
    leases: list[str] = []

    def contains(self, lat: float, lon: float) -> bool:
        return point_in_polygon(lat, lon, self.polygon)


class GeofenceRule(_Strict):
    severity: Severity = "critical"
    default: Box = Box()
    zones: list[Zone] = []


class Rules(_Strict):
    """The whole rule set; `Rules()` is the shipped default."""

    idle: IdleRule = IdleRule()
    fuel: FuelRule = FuelRule()
    timestamps: TimestampRule = TimestampRule()
    geofence: GeofenceRule = GeofenceRule()
    leases: dict[str, list[str]] = {}
    _lease_of: dict[str, str] = PrivateAttr(default_factory=dict)
    _zones_cache: dict[str, list[Zone]] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _index(self) -> Rules:
        self._lease_of = {d: lease for lease, devices in self.leases.items() for d in devices}
        self._zones_cache: dict[str, list[Zone]] = {}
        return self

    def lease_of(self, device_id: str) -> str | None:
        return self._lease_of.get(device_id)

    def zones_for(self, device_id: str) -> list[Zone]:
        """The zones a device must stay in: its own and its lease's (empty: the default box)."""
        cached = self._zones_cache.get(device_id)
        if cached is None:
            lease = self.lease_of(device_id)
            cached = [z for z in self.geofence.zones if device_id in z.devices or (lease and lease in z.leases)]
            self._zones_cache[device_id] = cached
        return cached

    def severity(self, rule: str) -> str:
        return str(getattr(self, rule).severity)


def load_rules(path: str | Path | None = None) -> Rules:
    """Rules from a TOML file; None: the defaults shipped as `iot/rules.toml`."""
    if path is None:
        text = (Path(__file__).with_name("rules.toml")).read_text(encoding="utf-8")
        where = "iot/rules.toml"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise IotError(f"{path}: rules file not found") from None
        where = str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise IotError(f"{where}: not valid TOML: {exc}") from None
    try:
        return Rules.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in err["loc"])
        raise IotError(f"{where}: field '{field}': {err['msg']}") from None


def point_in_polygon(lat: float, lon: float, polygon: list[tuple[float, float]]) -> bool:
    """Ray casting (even-odd rule) on (lat, lon) vertices; points on an edge count as inside."""
    inside = False
    n = len(polygon)
    for i in range(n):
        y1, x1 = polygon[i]
        y2, x2 = polygon[(i + 1) % n]
        # on the edge: collinear and within the segment's bounding box
        cross = (x2 - x1) * (lat - y1) - (y2 - y1) * (lon - x1)
        if abs(cross) < 1e-12 and min(x1, x2) <= lon <= max(x1, x2) and min(y1, y2) <= lat <= max(y1, y2):
            return True
        if (y1 > lat) != (y2 > lat):
            x_at = x1 + (lat - y1) * (x2 - x1) / (y2 - y1)
            if lon < x_at:
                inside = not inside
    return inside


Check = tuple[bool, dict[str, Any]]
"""(failing, evidence): evidence is the facts a reader needs to see why."""


def inside_geofence(zones: list[Zone], box: Box, lat: float, lon: float) -> bool:
    """The geofence verdict alone, without evidence: inside one of the device's zones, or inside
    the default box when it has none. The monitor calls this on every reading and builds the
    evidence (`check_geofence`) only when the verdict can cause an event."""
    if zones:
        return any(z.contains(lat, lon) for z in zones)
    return box.lat_min <= lat <= box.lat_max and box.lon_min <= lon <= box.lon_max


def check_geofence(rules: Rules, device_id: str, lat: float, lon: float) -> Check:
    zones = rules.zones_for(device_id)
    box = rules.geofence.default
    inside = inside_geofence(zones, box, lat, lon)
    if zones:
        evidence: dict[str, Any] = {"lat": lat, "lon": lon, "zones": [z.name for z in zones]}
    else:
        evidence = {"lat": lat, "lon": lon, "box": [box.lat_min, box.lat_max, box.lon_min, box.lon_max]}
    return (not inside, evidence)


def check_fuel(rules: Rules, hours: float, litres: float) -> Check | None:
    """Fuel burned per working hour between two readings `hours` working hours apart.

    None while the readings are closer than the window (no verdict yet).
    """
    if hours < rules.fuel.window_hours:
        return None
    rate = litres / hours
    limit = rules.fuel.max_litres_per_hour
    evidence = {"litres": round(litres, 3), "hours": round(hours, 3), "litres_per_hour": round(rate, 3), "limit": limit}
    return (rate > limit, evidence)


def check_idle(rules: Rules, last_ts: datetime, now: datetime) -> Check:
    silent_h = (now - last_ts).total_seconds() / 3600
    evidence = {
        "last_seen": last_ts.isoformat(),
        "silent_hours": round(silent_h, 3),
        "threshold_hours": rules.idle.threshold_hours,
    }
    return (silent_h > rules.idle.threshold_hours, evidence)
