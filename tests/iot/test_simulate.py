"""The simulated fleet injects each anomaly once, and the monitor sees each raised and cleared."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from iot.monitor import EventClock, Monitor
from iot.rules import Rules
from iot.simulate import Fleet
from iot.store import IotStore


def test_fleet_anomalies_raise_and_clear_each_rule_once(store: IotStore) -> None:
    fleet = Fleet(devices=6, step=timedelta(hours=1), anomaly_start=10, anomaly_ticks=10)
    clock = EventClock()
    monitor = Monitor(store, Rules(), clock=clock)
    for _ in range(80):
        for r in fleet.readings():
            monitor.handle(f"device/{r.device_id}/data", r.to_payload())
        monitor.sweep()
    events = Counter((a.device_id, a.rule, a.state) for _, a in store.pending(limit=100))
    assert events == Counter(
        {
            ("exc-0000", "idle", "raised"): 1,
            ("exc-0000", "idle", "cleared"): 1,
            ("exc-0001", "geofence", "raised"): 1,
            ("exc-0001", "geofence", "cleared"): 1,
            ("exc-0002", "fuel", "raised"): 1,
            ("exc-0002", "fuel", "cleared"): 1,
        }
    )
    assert monitor.stats["dead_letters"] == 0


def test_fleet_is_reproducible_and_meters_only_grow() -> None:
    a = list(Fleet(devices=3, anomalies=()).stream(30))
    b = list(Fleet(devices=3, anomalies=()).stream(30))
    assert a == b
    by_device: dict[str, list[float]] = {}
    for r in a:
        by_device.setdefault(r.device_id, []).append(r.working_hours)
    assert all(h == sorted(h) for h in by_device.values())
    assert all(30 <= r.lat <= 40 and 110 <= r.lon <= 120 for r in a)
