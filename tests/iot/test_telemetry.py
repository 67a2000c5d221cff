"""Telemetry validation: every rejection says why."""

from __future__ import annotations

import json

import pytest

from iot.telemetry import Rejected, parse

GOOD = {
    "device_id": "exc-1",
    "ts": "2026-03-02T08:00:00Z",
    "lat": 35.0,
    "lon": 115.0,
    "working_hours": 100.5,
    "fuel_l": 600.0,
}


def _payload(**changes: object) -> bytes:
    data = {**GOOD, **changes}
    return json.dumps({k: v for k, v in data.items() if v is not ...}).encode()


def test_valid_reading_parses_to_utc() -> None:
    r = parse("device/exc-1/data", _payload(ts="2026-03-02T16:00:00+08:00"))
    assert r.ts.isoformat() == "2026-03-02T08:00:00+00:00"
    assert r.working_hours == 100.5


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("device/exc-1/data", b"{not json", "malformed JSON"),
        ("device/exc-1/data", b"[1, 2]", "payload is not a JSON object"),
        ("device/exc-1/data", _payload(fuel_l=...), "missing field 'fuel_l'"),
        ("device/exc-1/data", _payload(lat="35.0"), "field 'lat': Input should be a valid number"),
        (
            "device/exc-1/data",
            _payload(working_hours=-1),
            "field 'working_hours': Input should be greater than or equal to 0",
        ),
        (
            "device/exc-1/data",
            _payload(ts="2026-03-02T08:00:00"),
            "field 'ts': Value error, timestamp must carry a timezone",
        ),
        ("device/exc-2/data", _payload(), "topic device 'exc-2' does not match payload device_id 'exc-1'"),
        ("device/exc-1/status", _payload(), "topic 'device/exc-1/status' is not device/<id>/data"),
    ],
)
def test_rejections_carry_reasons(topic: str, payload: bytes, reason: str) -> None:
    with pytest.raises(Rejected) as info:
        parse(topic, payload)
    assert info.value.reason.startswith(reason)
