"""Telemetry formats and validation: yinqi's and the seed's formats with no configuration, any
vendor's through telemetry.toml, and a one-line reason for every message that does not fit."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from iot.errors import IotError
from iot.formats import TelemetryReader, load_formats
from iot.telemetry import Rejected

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # the monitor's wall clock in these tests

GOOD = {
    "device_id": "exc-1",
    "ts": "2026-03-02T08:00:00Z",
    "lat": 35.0,
    "lon": 115.0,
    "working_hours": 100.5,
    "fuel_l": 600.0,
}
SEED = {  # what the seed project's devices publish
    "device_id": "exc-1",
    "timestamp": 1772438400,  # 2026-03-02T08:00:00Z in Unix seconds
    "location": {"lat": 35.0, "lon": 115.0},
    "working_hours": 100.5,
    "fuel_consumption": 600.0,
}


def reader(formats=()) -> TelemetryReader:
    return TelemetryReader(formats, wall=lambda: NOW)


def _payload(base: dict = GOOD, **changes: object) -> bytes:
    data = {**base, **changes}
    return json.dumps({k: v for k, v in data.items() if v is not ...}).encode()


def test_yinqi_format_parses_to_utc() -> None:
    r = reader().read("device/exc-1/data", _payload(ts="2026-03-02T16:00:00+08:00"))
    assert r.ts.isoformat() == "2026-03-02T08:00:00+00:00"
    assert r.working_hours == 100.5


def test_the_seed_payload_is_understood_without_configuration() -> None:
    r = reader().read("device/exc-1/data", _payload(SEED))
    assert (r.device_id, r.ts, r.lat, r.lon, r.working_hours, r.fuel_l) == (
        "exc-1",
        datetime(2026, 3, 2, 8, 0, tzinfo=UTC),
        35.0,
        115.0,
        100.5,
        600.0,
    )


def test_a_vendor_mapping_reads_ms_timestamps_millilitres_minutes_and_nested_gps(tmp_path: Path) -> None:
    toml = tmp_path / "telemetry.toml"
    toml.write_text(
        '[[formats]]\nname = "acme"\ndevice_id = "serial"\nts = { path = "time", unit = "ms" }\n'
        'lat = "gps.lat"\nlon = "gps.lng"\nworking_hours = { path = "engine.minutes", unit = "min" }\n'
        'fuel_l = { path = "fuel_ml", unit = "ml" }\n'
    )
    message = {
        "serial": "exc-9",
        "time": 1772438400250,
        "gps": {"lat": 34.5, "lng": 113.25},
        "engine": {"minutes": 6030},
        "fuel_ml": 604500,
    }
    r = reader(load_formats(toml)).read("device/exc-9/data", json.dumps(message).encode())
    assert r.ts == datetime(2026, 3, 2, 8, 0, 0, 250000, tzinfo=UTC)
    assert (r.lat, r.lon, r.working_hours, r.fuel_l) == (34.5, 113.25, 100.5, 604.5)


def test_the_shipped_vendor_example_maps_iso_strings_and_gallons() -> None:
    formats = load_formats(ROOT / "iot" / "telemetry.example.toml")
    message = {
        "id": "exc-3",
        "recorded": "2026-03-02T10:00:00+02:00",
        "pos": {"latitude": 35.5, "longitude": 114.0},
        "hours": 12.0,
        "fuel_gal": 10.0,
    }
    r = reader(formats).read("device/exc-3/data", json.dumps(message).encode())
    assert r.ts == datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    assert r.fuel_l == pytest.approx(37.85411784)


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("device/exc-1/data", b"{not json", "malformed JSON"),
        ("device/exc-1/data", b"\xff\xfe\x00garbage", "malformed JSON"),
        ("device/exc-1/data", b"[" * 100_000 + b"]" * 100_000, "malformed JSON"),
        ("device/exc-1/data", b"[1, 2]", "payload is not a JSON object"),
        (
            "device/exc-1/data",
            _payload(fuel_l=...),
            "fits no telemetry format: yinqi lacks fuel_l; "
            "seed lacks timestamp, location.lat, location.lon, fuel_consumption",
        ),
        ("device/exc-1/data", _payload(lat="35.0"), "yinqi format: field 'lat': expected a number, got a string"),
        ("device/exc-1/data", _payload(lat=True), "yinqi format: field 'lat': expected a number, got a boolean"),
        ("device/exc-1/data", _payload(lat=95.0), "yinqi format: field 'lat': expected -90 to 90, got 95"),
        (
            "device/exc-1/data",
            _payload(working_hours=-1),
            "yinqi format: field 'working_hours': expected 0 to 1e+06, got -1",
        ),
        (
            "device/exc-1/data",
            _payload(ts="2026-03-02T08:00:00"),
            "yinqi format: field 'ts': timestamp must carry a timezone",
        ),
        ("device/exc-1/data", _payload(ts=1772438400), "yinqi format: field 'ts': expected an ISO 8601 time string"),
        ("device/exc-2/data", _payload(), "topic device 'exc-2' does not match payload device_id 'exc-1'"),
        ("device/exc-1/status", _payload(), "topic 'device/exc-1/status' is not device/<id>/data"),
        ("device/exc-1/data", _payload(device_id="x" * 129), "yinqi format: field 'device_id': expected 1 to 128"),
    ],
)
def test_rejections_carry_reasons(topic: str, payload: bytes, reason: str) -> None:
    with pytest.raises(Rejected) as info:
        reader().read(topic, payload)
    assert info.value.reason.startswith(reason)


@pytest.mark.parametrize(
    "raw",
    [b'"working_hours": Infinity', b'"working_hours": NaN', b'"working_hours": 1e309', b'"working_hours": -Infinity'],
)
def test_non_finite_numbers_are_refused(raw: bytes) -> None:
    payload = _payload().replace(b'"working_hours": 100.5', raw)
    assert raw in payload
    with pytest.raises(Rejected) as info:
        reader().read("device/exc-1/data", payload)
    assert "field 'working_hours': expected a finite number" in info.value.reason


def test_a_huge_integer_is_out_of_range_not_a_crash() -> None:
    payload = _payload().replace(b'"fuel_l": 600.0', b'"fuel_l": ' + b"9" * 400)
    with pytest.raises(Rejected) as info:
        reader().read("device/exc-1/data", payload)
    assert info.value.reason == "yinqi format: field 'fuel_l': expected 0 to 1e+09, got an integer too large"


@pytest.mark.parametrize(
    ("ts", "reason"),
    [
        # the poison message: past year 9999 once converted to UTC (was an OverflowError)
        ("9999-12-31T23:59:59-12:00", "yinqi format: field 'ts': time out of range"),
        ("2099-01-01T00:00:00Z", "yinqi format: field 'ts': 2099-01-01T00:00:00+00:00 is more than 5 min ahead"),
        ("1970-01-01T00:00:00Z", "yinqi format: field 'ts': 1970-01-01T00:00:00+00:00 is before 2000-01-01"),
    ],
)
def test_timestamps_are_bounded_by_the_monitors_clock(ts: str, reason: str) -> None:
    with pytest.raises(Rejected) as info:
        reader().read("device/exc-1/data", _payload(ts=ts))
    assert info.value.reason.startswith(reason)


def test_a_small_clock_skew_is_accepted() -> None:
    ahead = (NOW + timedelta(minutes=4)).isoformat()
    assert reader().read("device/exc-1/data", _payload(ts=ahead)).ts == NOW + timedelta(minutes=4)


@pytest.mark.parametrize("timestamp", [1e300, -1e300, 2**70, 253402300800])
def test_epoch_timestamps_out_of_range_are_refused(timestamp: float) -> None:
    with pytest.raises(Rejected) as info:
        reader().read("device/exc-1/data", _payload(SEED, timestamp=timestamp))
    assert info.value.reason.startswith("seed format: field 'timestamp':")


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("", "expected one or more [[formats]] tables"),
        ("[[formats]]\nname = 'a'\n", "formats[0] 'a': no mapping for device_id, ts, lat, lon, working_hours, fuel_l"),
        (
            "[[formats]]\nname='a'\ndevice_id='d'\nts='t'\nlat='a'\nlon='o'\nworking_hours='h'\nfuel_l='f'\nfuel='x'\n",
            "formats[0] 'a': unknown field 'fuel' (did you mean 'fuel_l'?)",
        ),
        (
            "[[formats]]\nname='a'\ndevice_id='d'\nts={path='t', unit='sec'}\nlat='a'\nlon='o'\nworking_hours='h'\nfuel_l='f'\n",
            "formats[0] 'a': field 'ts': unit 'sec' unknown; expected one of iso, s, ms, us",
        ),
        (
            "[[formats]]\nname='seed'\ndevice_id='d'\nts='t'\nlat='a'\nlon='o'\nworking_hours='h'\nfuel_l='f'\n",
            "name 'seed' is used twice (or by a built-in format)",
        ),
        (
            "[[formats]]\nname='a'\ndevice_id='d'\nts='t..x'\nlat='a'\nlon='o'\nworking_hours='h'\nfuel_l='f'\n",
            "field 'ts': path must be a field name or a dotted path",
        ),
        ("[[formats]\n", "not valid TOML"),
    ],
)
def test_a_bad_mapping_file_is_one_line_naming_the_entry(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "telemetry.toml"
    path.write_text(toml)
    with pytest.raises(IotError) as info:
        load_formats(path)
    assert message in str(info.value)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_mapping_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.toml"
    path.write_bytes(b"[[formats]]\nname = '\xff'\n")
    with pytest.raises(IotError, match="not UTF-8 text"):
        load_formats(path)
