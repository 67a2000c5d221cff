"""The seed project's own devices, through a real Mosquitto, with no configuration (issue 9).

The seed's devices publish `{"device_id", "timestamp" (Unix seconds), "location": {"lat", "lon"},
"working_hours", "fuel_consumption"}`; its rules are the box lat 30-40, lon 110-120 and 10 L of
fuel per working hour, as shipped in `iot/rules.toml`. This payload used to be dead-lettered with
"missing field 'ts' (+3 more)".
"""

from __future__ import annotations

import json
import time

import pytest

from iot.rules import load_rules
from tests.iot.conftest import FakeClock, wait_for

pytestmark = pytest.mark.mosquitto


def seed_message(device: str, *, lat: float, lon: float, hours: float, fuel: float) -> bytes:
    return json.dumps(
        {
            "device_id": device,
            "timestamp": int(time.time()) - 60,
            "location": {"lat": lat, "lon": lon},
            "working_hours": hours,
            "fuel_consumption": fuel,
        }
    ).encode()


def test_the_seed_payload_raises_geofence_and_fuel_alerts_and_nothing_for_a_normal_machine(
    store, publisher, start_monitor
) -> None:
    rules = load_rules()  # the shipped rules: the seed's box and fuel limit
    assert (rules.geofence.default.lon_max, rules.fuel.max_litres_per_hour) == (120.0, 10.0)
    monitor, _, _ = start_monitor(rules=rules, clock=FakeClock())
    publisher.send("device/seed-ok/data", seed_message("seed-ok", lat=35.0, lon=115.0, hours=1200.0, fuel=7200.0))
    publisher.send("device/seed-out/data", seed_message("seed-out", lat=35.0, lon=121.5, hours=800.0, fuel=4800.0))
    publisher.send("device/seed-fuel/data", seed_message("seed-fuel", lat=35.0, lon=115.0, hours=1000.0, fuel=15000))
    wait_for(lambda: monitor.stats["processed"] + monitor.stats["dead_letters"] == 3, what="the three seed messages")
    assert store.dead_letter_counts() == {}
    assert monitor.stats["processed"] == 3
    raised = {(a.device_id, a.rule, a.state) for a in store.alerts()}
    assert raised == {("seed-out", "geofence", "raised"), ("seed-fuel", "fuel", "raised")}
    fuel = next(a for a in store.alerts() if a.rule == "fuel")
    assert fuel.evidence["litres_per_hour"] == 15.0 and fuel.evidence["limit"] == 10.0
    out = next(a for a in store.alerts() if a.rule == "geofence")
    assert out.evidence["box"] == [30.0, 40.0, 110.0, 120.0]
