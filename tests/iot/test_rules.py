"""Rules are pure functions: hand-computed inputs and verdicts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from iot.errors import IotError
from iot.rules import Rules, check_fuel, check_geofence, check_idle, load_rules, point_in_polygon

SQUARE = [(34.0, 113.0), (34.0, 114.0), (35.0, 114.0), (35.0, 113.0)]
# an L shape: the notch (34.6..35.0, 113.6..114.0) is outside
L_SHAPE = [(34.0, 113.0), (34.0, 114.0), (34.5, 114.0), (34.5, 113.5), (35.0, 113.5), (35.0, 113.0)]


def test_defaults_match_the_issue() -> None:
    rules = load_rules()
    assert rules.idle.threshold_hours == 24.0
    assert rules.fuel.max_litres_per_hour == 10.0
    box = rules.geofence.default
    assert (box.lat_min, box.lat_max, box.lon_min, box.lon_max) == (30.0, 40.0, 110.0, 120.0)


@pytest.mark.parametrize(
    ("lat", "lon", "failing"),
    [
        (35.0, 115.0, False),
        (30.0, 110.0, False),
        (40.0, 120.0, False),
        (29.99, 115.0, True),
        (35.0, 120.01, True),
        (41.0, 121.0, True),
    ],
)
def test_default_box(lat: float, lon: float, failing: bool) -> None:
    assert check_geofence(Rules(), "any", lat, lon)[0] is failing


@pytest.mark.parametrize(
    ("lat", "lon", "inside"),
    [
        (34.5, 113.5, True),
        (34.2, 113.9, True),
        (34.8, 113.2, True),
        (34.8, 113.8, False),
        (35.5, 113.2, False),
        (34.0, 113.5, True),
        (33.9, 113.5, False),
    ],
)
def test_point_in_concave_polygon(lat: float, lon: float, inside: bool) -> None:
    assert point_in_polygon(lat, lon, L_SHAPE) is inside


def _zoned() -> Rules:
    return Rules.model_validate(
        {
            "geofence": {
                "zones": [
                    {"name": "yard", "polygon": SQUARE, "devices": ["exc-1"]},
                    {"name": "quarry", "polygon": L_SHAPE, "leases": ["L-7"]},
                ]
            },
            "leases": {"L-7": ["exc-2", "exc-3"]},
        }
    )


def test_device_zone_replaces_default_box() -> None:
    rules = _zoned()
    # inside the default box but outside its own yard: failing
    failing, evidence = check_geofence(rules, "exc-1", 36.0, 115.0)
    assert failing is True
    assert evidence["zones"] == ["yard"]
    assert check_geofence(rules, "exc-1", 34.5, 113.5)[0] is False


def test_lease_zone_applies_to_every_device_of_the_lease() -> None:
    rules = _zoned()
    assert rules.lease_of("exc-3") == "L-7"
    assert check_geofence(rules, "exc-3", 34.8, 113.8)[0] is True  # in the L's notch
    assert check_geofence(rules, "exc-3", 34.8, 113.2)[0] is False
    # a device with no zone of its own or by lease keeps the default box
    assert check_geofence(rules, "exc-9", 34.8, 113.8)[0] is False


def test_fuel_rate_is_litres_per_working_hour() -> None:
    rules = Rules()
    failing, evidence = check_fuel(rules, 2.0, 25.0)
    assert failing is True
    assert evidence["litres_per_hour"] == 12.5
    assert check_fuel(rules, 2.0, 20.0)[0] is False  # exactly 10 L/h is allowed
    assert check_fuel(rules, 0.1, 50.0) is None  # shorter than the 0.25 h window: no verdict


def test_idle_after_threshold() -> None:
    rules = Rules()
    last = datetime(2026, 3, 1, tzinfo=UTC)
    assert check_idle(rules, last, last + timedelta(hours=24))[0] is False
    failing, evidence = check_idle(rules, last, last + timedelta(hours=25, minutes=30))
    assert failing is True
    assert evidence["silent_hours"] == 25.5


def test_rules_file_errors_name_the_field(tmp_path) -> None:
    bad = tmp_path / "rules.toml"
    bad.write_text("[fuel]\nmax_litres_per_hour = -1\n")
    with pytest.raises(IotError, match=r"rules.toml: field 'fuel.max_litres_per_hour'"):
        load_rules(bad)
    bad.write_text("[geofence]\nzones = [{name='z', polygon=[[1,2],[3,4]]}]\n")
    with pytest.raises(IotError, match=r"geofence.zones.0.polygon"):
        load_rules(bad)
    with pytest.raises(IotError, match="not found"):
        load_rules(tmp_path / "missing.toml")
