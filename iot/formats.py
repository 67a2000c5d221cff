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
import json
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from federation.clock import utcnow
from iot.errors import IotError
from iot.telemetry import (
    MAX_FUEL_L,
    MAX_WORKING_HOURS,
    Rejected,
    Telemetry,
    TimeBounds,
    device_id,
    epoch_time,
    iso_time,
    number,
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

    def find(self, data: dict[str, Any]) -> tuple[bool, Any]:
        node: Any = data
        for key in self.path:
            if not isinstance(node, dict) or key not in node:
                return False, None
            node = node[key]
        return True, node


@dataclass(frozen=True)
class Format:
    """A named mapping of every field of `Telemetry` onto a device's JSON message."""

    name: str
    fields: dict[str, FieldMap]

    def lacks(self, data: dict[str, Any]) -> list[str]:
        """The message's names of the fields this format needs but the message does not have."""
        return [f.name for f in self.fields.values() if not f.find(data)[0]]

    def read(self, data: dict[str, Any], bounds: TimeBounds, now: Callable[[], datetime]) -> Telemetry:
        """The reading in yinqi's units; ValueError names the message's field that is wrong."""
        values = {k: f.find(data)[1] for k, f in self.fields.items()}
        f = self.fields
        ts_unit = UNITS["ts"][f["ts"].unit]
        ts_field = f["ts"].name
        ts = iso_time(values["ts"], ts_field) if ts_unit is None else epoch_time(values["ts"], ts_field, ts_unit)
        bounds.check(ts, now(), ts_field)
        return Telemetry(
            device_id=device_id(values["device_id"], f["device_id"].name),
            ts=ts,
            lat=number(values["lat"], f["lat"].name, -90.0, 90.0),
            lon=number(values["lon"], f["lon"].name, -180.0, 180.0),
            working_hours=self._scaled(values, "working_hours", MAX_WORKING_HOURS),
            fuel_l=self._scaled(values, "fuel_l", MAX_FUEL_L),
        )

    def _scaled(self, values: dict[str, Any], field: str, high: float) -> float:
        spec = self.fields[field]
        factor = UNITS[field][spec.unit] or 1.0
        return number(values[field], spec.name, 0.0, high / factor) * factor


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

    def read(self, topic: str, payload: bytes) -> Telemetry:
        device = topic_device(topic)
        if device is None:
            raise Rejected(f"topic '{topic[:200]}' is not device/<id>/data")
        try:
            data = json.loads(payload)
        except RecursionError:
            raise Rejected("malformed JSON (nested too deeply)", device) from None
        except ValueError:  # JSONDecodeError, UnicodeDecodeError, an integer of > 4300 digits
            raise Rejected("malformed JSON", device) from None
        if not isinstance(data, dict):
            raise Rejected("payload is not a JSON object", device)
        for fmt in self.formats:
            if fmt.lacks(data):
                continue
            try:
                reading = fmt.read(data, self.bounds, self.wall)
            except ValueError as exc:
                raise Rejected(f"{fmt.name} format: {exc}", device) from None
            if reading.device_id != device:
                raise Rejected(
                    f"topic device '{device}' does not match payload device_id '{reading.device_id}'", device
                )
            return reading
        raise Rejected(self._fits_none(data), device)

    def _fits_none(self, data: dict[str, Any]) -> str:
        tried = sorted(((fmt.lacks(data), fmt.name) for fmt in self.formats), key=lambda t: len(t[0]))
        shown = "; ".join(f"{name} lacks {', '.join(lacks)}" for lacks, name in tried[:4])
        more = f" (+{len(tried) - 4} more formats)" if len(tried) > 4 else ""
        return f"fits no telemetry format: {shown}{more}"


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
        raise IotError(f"{where}: field '{field}': expected \"path\" or {{ path = \"...\", unit = \"...\" }}")
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
