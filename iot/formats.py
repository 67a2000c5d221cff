"""Telemetry formats by mapping: which JSON fields of a device's message are yinqi's, in which units.

Fleets mix vendors, and each names and scales its fields its own way. As a platform maps its
CSV columns with `mapping.toml`, a lessor maps its devices' messages with `telemetry.toml`:

    [[formats]]
    name = "acme-tracker"
    device_id = "serial"
    ts = { path = "time", unit = "ms" }            # iso (default), s, ms, us
    lat = "gps.lat"                                # dotted path into nested objects
    lon = "gps.lng"
    working_hours = { path = "engine_min", unit = "min" }   # h (default), min, s
    fuel_l = { path = "fuel_ml", unit = "ml" }     # l (default), ml, gal (US)

Two formats are built in and need no file: `yinqi` (yinqi's own) and `seed` (what the seed
project's devices publish). A message is read with the first format, configured ones first,
whose fields are all present; a message that fits none is rejected with the fields each format
lacked. The values are then checked by `iot.telemetry` whatever the format.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import AliasPath, BaseModel, ConfigDict, Field, ValidationError, create_model

from federation.clock import utcnow
from iot.errors import IotError
from iot.telemetry import (
    MAX_DEVICE_ID,
    MAX_FUEL_L,
    MAX_WORKING_HOURS,
    Rejected,
    Telemetry,
    TimeBounds,
    epoch_time,
    iso_time,
    json_type,
    shown,
    topic_device,
)

FIELDS = ("device_id", "ts", "lat", "lon", "working_hours", "fuel_l")
# unit -> factor to yinqi's unit (for `ts`: divisor to seconds; None: an ISO 8601 string)
UNITS: dict[str, dict[str, float | None]] = {
    "device_id": {"text": None},
    "ts": {"iso": None, "s": 1.0, "ms": 1e3, "us": 1e6},
    "lat": {"deg": 1.0},
    "lon": {"deg": 1.0},
    "working_hours": {"h": 1.0, "min": 1 / 60, "s": 1 / 3600},
    "fuel_l": {"l": 1.0, "ml": 1e-3, "gal": 3.785411784},
}
DEFAULT_UNITS = {"device_id": "text", "ts": "iso", "lat": "deg", "lon": "deg", "working_hours": "h", "fuel_l": "l"}
MAX_PATH_DEPTH = 8


@dataclass(frozen=True)
class FieldMap:
    """Where one of yinqi's fields sits in a message (`path` into nested objects), in `unit`."""

    path: tuple[str, ...]
    unit: str

    @property
    def name(self) -> str:
        return ".".join(self.path)


class Format:
    """A named mapping of every field of `Telemetry` onto a device's JSON message.

    Each format compiles to a strict pydantic model whose aliases are the message's paths, so a
    message is parsed and type-checked in one pass of pydantic's JSON parser; units and time
    bounds are applied after."""

    def __init__(self, name: str, fields: dict[str, FieldMap]) -> None:
        self.name, self.fields = name, fields
        self.factor = {k: UNITS[k][fields[k].unit] or 1.0 for k in ("working_hours", "fuel_l")}
        self.ts_per_second = UNITS["ts"][fields["ts"].unit]  # None: an ISO 8601 string
        self.limits = {  # message field name -> (low, high) of its raw value
            fields["lat"].name: (-90.0, 90.0),
            fields["lon"].name: (-180.0, 180.0),
            fields["working_hours"].name: (0.0, MAX_WORKING_HOURS / self.factor["working_hours"]),
            fields["fuel_l"].name: (0.0, MAX_FUEL_L / self.factor["fuel_l"]),
        }
        self.model = self._model()
        self._ts_name = fields["ts"].name
        self._hours_factor = self.factor["working_hours"]
        self._fuel_factor = self.factor["fuel_l"]

    def _model(self) -> type[BaseModel]:
        def alias(key: str) -> Any:
            path = self.fields[key].path
            return path[0] if len(path) == 1 else AliasPath(*path)

        def bounded(key: str) -> Any:
            low, high = self.limits[self.fields[key].name]
            return (float, Field(validation_alias=alias(key), ge=low, le=high))

        return create_model(
            f"Telemetry_{self.name}",
            __config__=ConfigDict(strict=True, extra="ignore", allow_inf_nan=False),
            device_id=(str, Field(validation_alias=alias("device_id"), min_length=1, max_length=MAX_DEVICE_ID)),
            ts=(str if self.ts_per_second is None else float, Field(validation_alias=alias("ts"))),
            lat=bounded("lat"),
            lon=bounded("lon"),
            working_hours=bounded("working_hours"),
            fuel_l=bounded("fuel_l"),
        )

    def read(self, payload: bytes, reader: TelemetryReader) -> Telemetry | list[str]:
        """The reading in yinqi's units, or the message's names of the fields it lacks.

        Raises `NotJson` for a payload that is not a JSON object and `ValueError` naming the
        message's field whose value is wrong."""
        try:
            m: Any = self.model.model_validate_json(payload)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            kinds = {e["type"] for e in errors}
            if "json_invalid" in kinds:
                raise NotJson("malformed JSON") from None
            if "model_type" in kinds:
                raise NotJson("payload is not a JSON object") from None
            lacks = [shown(".".join(map(str, e["loc"]))) for e in errors if e["type"] == "missing"]
            if lacks:
                return lacks
            raise ValueError(self._explain(errors[0])) from None
        ts_name, per_second = self._ts_name, self.ts_per_second
        ts = iso_time(m.ts, ts_name) if per_second is None else epoch_time(m.ts, ts_name, per_second)
        if ts > reader.latest_allowed or ts < reader.bounds.not_before:
            reader.check_time(ts, ts_name)
        return Telemetry(
            m.device_id, ts, m.lat, m.lon, m.working_hours * self._hours_factor, m.fuel_l * self._fuel_factor
        )

    def _explain(self, error: Any) -> str:
        """One pydantic error in yinqi's words, naming the message's field."""
        name = shown(".".join(map(str, error["loc"])))
        kind, value = error["type"], error.get("input")
        low, high = self.limits.get(name, (0.0, 0.0))
        if kind in ("float_type", "string_type", "int_type"):
            wanted = "a string" if kind == "string_type" else "a number"
            if name == self.fields["ts"].name and self.ts_per_second is None:
                wanted = "an ISO 8601 time string"
            return f"field '{name}': expected {wanted}, got {json_type(value)}"
        if kind == "finite_number":
            if isinstance(value, int):
                return f"field '{name}': expected {low:g} to {high:g}, got an integer too large"
            return f"field '{name}': expected a finite number, got {value!r}"
        if kind in ("greater_than_equal", "less_than_equal"):
            return f"field '{name}': expected {low:g} to {high:g}, got {value:g}"
        if kind in ("string_too_short", "string_too_long"):
            return f"field '{name}': expected 1 to {MAX_DEVICE_ID} characters, got {len(value)}"
        return f"field '{name}': {shown(str(error['msg']))}"


class NotJson(ValueError):
    """The payload is not JSON, or not a JSON object."""


def _plain(**paths: str) -> Format:
    return Format(paths.pop("name"), {k: FieldMap(tuple(v.split(".")), DEFAULT_UNITS[k]) for k, v in paths.items()})


YINQI = _plain(
    name="yinqi", device_id="device_id", ts="ts", lat="lat", lon="lon", working_hours="working_hours", fuel_l="fuel_l"
)
SEED = Format(
    "seed",
    {
        "device_id": FieldMap(("device_id",), "text"),
        "ts": FieldMap(("timestamp",), "s"),
        "lat": FieldMap(("location", "lat"), "deg"),
        "lon": FieldMap(("location", "lon"), "deg"),
        "working_hours": FieldMap(("working_hours",), "h"),
        "fuel_l": FieldMap(("fuel_consumption",), "l"),
    },
)
BUILT_IN = (YINQI, SEED)


class TelemetryReader:
    """Turns one MQTT message into a checked `Telemetry`, or raises `Rejected` with the reason.

    Parameters
    ----------
    formats : configured formats (`load_formats`), tried before the built-in `yinqi` and `seed`.
    bounds : how far device clocks are trusted (see `iot.telemetry.TimeBounds`).
    wall : the monitor's own clock, which device timestamps are checked against.
    """

    def __init__(
        self,
        formats: Iterable[Format] = (),
        bounds: TimeBounds | None = None,
        wall: Callable[[], datetime] = utcnow,
    ) -> None:
        self.formats = (*formats, *BUILT_IN)
        self.bounds = bounds or TimeBounds()
        self.wall = wall
        self.latest_allowed = datetime.min.replace(tzinfo=UTC)

    def read(self, topic: str, payload: bytes) -> Telemetry:
        device = topic_device(topic)
        if device is None:
            raise Rejected(f"topic '{shown(topic)}' is not device/<id>/data")
        tried: list[tuple[list[str], str]] | None = None  # allocated only when a format does not fit
        for fmt in self.formats:
            try:
                reading = fmt.read(payload, self)
            except NotJson as exc:
                raise Rejected(str(exc), device) from None
            except ValueError as exc:
                raise Rejected(f"{fmt.name} format: {exc}", device) from None
            if isinstance(reading, list):
                tried = [] if tried is None else tried
                tried.append((reading, fmt.name))
                continue
            if reading.device_id != device:
                raise Rejected(
                    f"topic device '{shown(device)}' does not match payload device_id '{shown(reading.device_id)}'",
                    device,
                )
            return reading
        assert tried is not None  # BUILT_IN is never empty
        tried.sort(key=lambda t: len(t[0]))
        listed = "; ".join(f"{name} lacks {', '.join(lacks)}" for lacks, name in tried[:4])
        more = f" (+{len(tried) - 4} more formats)" if len(tried) > 4 else ""
        raise Rejected(f"fits no telemetry format: {listed}{more}", device)

    def check_time(self, ts: datetime, field: str) -> None:
        """`ValueError` unless `ts` is within the time bounds of the monitor's wall clock.

        The wall clock only moves forward: a timestamp within the last limit read is within the
        current one too, so `Format.read` calls this only for one that looks too new or too old."""
        if ts > self.latest_allowed:
            now = self.wall()
            self.latest_allowed = now + self.bounds.max_ahead
            self.bounds.check(ts, now, field)
        elif ts < self.bounds.not_before:
            self.bounds.check(ts, self.latest_allowed, field)


# ----- telemetry.toml ---------------------------------------------------------------------------


def load_formats(path: str | Path | None) -> list[Format]:
    """The formats of a `telemetry.toml` (None: none, the built-in ones still apply)."""
    if path is None:
        return []
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise IotError(f"{where}: telemetry formats file not found") from None
    except UnicodeDecodeError:
        raise IotError(f"{where}: not UTF-8 text; save the file as UTF-8") from None
    except OSError as exc:
        raise IotError(f"{where}: cannot read ({exc.strerror})") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise IotError(f"{where}: not valid TOML: {exc}") from None
    unknown = sorted(set(doc) - {"formats"})
    if unknown:
        raise IotError(f"{where}: unknown table or key '{unknown[0]}'; expected [[formats]] tables")
    entries = doc.get("formats", [])
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise IotError(f"{where}: expected one or more [[formats]] tables")
    formats: list[Format] = []
    for i, entry in enumerate(entries):
        fmt = _format(entry, f"{where}: formats[{i}]")
        if fmt.name in {f.name for f in (*formats, *BUILT_IN)}:
            raise IotError(f"{where}: formats[{i}]: name '{fmt.name}' is used twice (or by a built-in format)")
        formats.append(fmt)
    return formats


def _format(entry: dict[str, Any], where: str) -> Format:
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise IotError(f"{where}: 'name' must be a non-empty string")
    where = f"{where} '{name}'"
    for key in entry:
        if key != "name" and key not in FIELDS:
            close = difflib.get_close_matches(key, FIELDS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise IotError(f"{where}: unknown field '{key}'{hint}; expected some of {', '.join(FIELDS)}")
    missing = [f for f in FIELDS if f not in entry]
    if missing:
        raise IotError(f"{where}: no mapping for {', '.join(missing)}; every one of {', '.join(FIELDS)} is needed")
    return Format(name, {field: _field(entry[field], field, where) for field in FIELDS})


def _field(spec: Any, field: str, where: str) -> FieldMap:
    if isinstance(spec, str):
        spec = {"path": spec}
    if not isinstance(spec, dict):
        raise IotError(f'{where}: field \'{field}\': expected "path" or {{ path = "...", unit = "..." }}')
    extra = sorted(set(spec) - {"path", "unit"})
    if extra:
        raise IotError(f"{where}: field '{field}': unknown key '{extra[0]}'; expected path and unit")
    path = spec.get("path")
    if not isinstance(path, str) or not path or any(not part for part in path.split(".")):
        raise IotError(f"{where}: field '{field}': path must be a field name or a dotted path like gps.lat")
    parts = tuple(path.split("."))
    if len(parts) > MAX_PATH_DEPTH:
        raise IotError(f"{where}: field '{field}': path deeper than {MAX_PATH_DEPTH} levels")
    unit = spec.get("unit", DEFAULT_UNITS[field])
    if unit not in UNITS[field]:
        raise IotError(f"{where}: field '{field}': unit {unit!r} unknown; expected one of {', '.join(UNITS[field])}")
    return FieldMap(parts, unit)
