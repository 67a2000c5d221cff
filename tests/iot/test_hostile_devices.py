"""A device may be careless or hostile: no message of its own may stop or fool alerting for the
others (issue 11). Each test is one of the issue's reproductions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from iot.monitor import EventClock, Monitor
from iot.rules import Rules
from iot.store import IotStore
from tests.iot.conftest import T0, FakeClock, reading, wait_for

WALL = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)  # the monitor's own clock in these tests
POISON = b'{"device_id":"exc-poison","ts":"9999-12-31T23:59:59-12:00","lat":35,"lon":115,"working_hours":1,"fuel_l":1}'


def _send(monitor: Monitor, r) -> list:
    return monitor.handle(f"device/{r.device_id}/data", r.to_payload())


def _dated(device: str, ts: str, **values: float) -> bytes:
    data = {"device_id": device, "ts": ts, "lat": 35.0, "lon": 115.0, "working_hours": 100.0, "fuel_l": 600.0}
    return json.dumps({**data, **values}).encode()


@pytest.mark.mosquitto
def test_a_poison_message_is_dead_lettered_and_a_real_breach_elsewhere_still_raises(
    store, publisher, start_monitor
) -> None:
    monitor, client, _ = start_monitor()
    publisher.send("device/exc-poison/data", POISON)  # was OverflowError, then a reconnect loop
    publisher.reading(reading("exc-2", 0))
    publisher.reading(reading("exc-2", 10, lon=125.0))  # a real geofence breach on another device
    wait_for(lambda: monitor.stats["alerts_raised"] == 1, 10, f"the breach's alert (stats {dict(monitor.stats)})")
    wait_for(lambda: monitor.stats["dead_letters"] == 1, 10, "the poison message's dead letter")
    assert [(a.device_id, a.rule) for a in store.alerts()] == [("exc-2", "geofence")]
    assert store.dead_letter_counts() == {"yinqi format: field 'ts': time out of range": 1}
    assert (client.connections, client.errors) == (1, 0)  # no reconnect for a redelivery


def test_an_unexpected_error_while_judging_dead_letters_that_message_only(store, monkeypatch) -> None:
    import iot.monitor as monitor_module

    real = monitor_module.check_geofence

    def broken(rules, device_id, lat, lon):  # a bug that one device's values trigger
        if device_id == "exc-odd":
            raise ZeroDivisionError("float division by zero")
        return real(rules, device_id, lat, lon)

    monkeypatch.setattr(monitor_module, "check_geofence", broken)
    monitor = Monitor(store, Rules(), clock=FakeClock(T0), wall=lambda: WALL)
    assert _send(monitor, reading("exc-odd", 0, lon=125.0)) == []
    assert [e.rule for e in _send(monitor, reading("exc-2", 0, lon=125.0))] == ["geofence"]
    assert store.dead_letter_counts() == {"could not be judged: ZeroDivisionError: float division by zero": 1}
    assert "exc-odd" not in monitor.devices  # its half-made state was undone
    assert monitor.book.active.keys() == {("exc-2", "geofence")}


def _replay_fleet(monitor: Monitor, devices: int, hours: int) -> None:
    for h in range(hours):
        for d in range(devices):
            _send(monitor, reading(f"exc-{d:02d}", h * 60, hours=100.0 + h, fuel=600.0 + 6 * h))
        monitor.sweep()


def test_with_the_event_clock_one_reading_dated_2099_raises_no_idle_storm(store: IotStore) -> None:
    monitor = Monitor(store, Rules(), clock=EventClock(), wall=lambda: WALL)
    _replay_fleet(monitor, 21, 3)
    monitor.handle("device/exc-07/data", _dated("exc-07", "2099-01-01T00:00:00Z"))
    _replay_fleet(monitor, 21, 2)
    assert monitor.stats["alerts_raised"] == 0  # was 21 idle alerts, then 921
    assert store.dead_letter_counts() == {
        "yinqi format: field 'ts': 2099-01-01T00:00:00+00:00 is more than 5 min ahead of the monitor's clock": 1
    }


def test_with_the_event_clock_a_minority_claiming_a_later_time_cannot_make_the_fleet_idle(store: IotStore) -> None:
    monitor = Monitor(store, Rules(), clock=EventClock(), wall=lambda: WALL)
    _replay_fleet(monitor, 21, 3)  # device time 2026-03-02 08:00-10:00
    for d in range(10):  # ten of 21 devices claim the wall clock's time, 18 days later
        monitor.handle(f"device/exc-{d:02d}/data", _dated(f"exc-{d:02d}", WALL.isoformat()))
    assert monitor.sweep() == []
    assert monitor.clock() == T0 + timedelta(hours=2)  # the fleet's median did not move


def test_the_event_clock_still_sees_a_device_go_silent_in_a_replay(store: IotStore) -> None:
    monitor = Monitor(store, Rules(), clock=EventClock(), wall=lambda: WALL)
    for h in range(30):
        for d in range(5):
            if d == 0 and h > 2:
                continue  # exc-00 falls silent
            _send(monitor, reading(f"exc-{d:02d}", h * 60, hours=100.0 + h, fuel=600.0 + 6 * h))
        monitor.sweep()
    assert [(a.device_id, a.rule, a.state) for a in store.alerts()] == [("exc-00", "idle", "raised")]


def test_with_the_wall_clock_a_reading_dated_2099_does_not_silence_the_devices_rules(store: IotStore) -> None:
    monitor = Monitor(store, Rules(), clock=lambda: WALL, wall=lambda: WALL)
    _send(monitor, reading("exc-1", 0, hours=100.0, fuel=600.0))
    monitor.handle("device/exc-1/data", _dated("exc-1", "2099-01-01T00:00:00Z", working_hours=101.0))
    breach = _send(monitor, reading("exc-1", 60, lon=125.0, hours=101.0, fuel=620.0))  # 20 L/h, outside
    assert sorted(e.rule for e in breach) == ["fuel", "geofence"]  # was: judged "late", silenced
    assert monitor.devices["exc-1"].last_ts == T0 + timedelta(minutes=60)


@pytest.mark.parametrize("value", [b"Infinity", b"NaN", b"1e309"])
def test_non_finite_meters_are_refused_and_rent_still_works_for_that_device(tmp_path, value: bytes) -> None:
    from iot.pricing import load_schedule, statement

    store = IotStore(f"sqlite:///{tmp_path / 'iot.db'}")
    monitor = Monitor(store, Rules(), clock=FakeClock(T0), wall=lambda: WALL)
    _send(monitor, reading("exc-1", 0, hours=1000.0, fuel=6000.0))
    bad = reading("exc-1", 30, hours=1.0).to_payload().replace(b'"working_hours":1.0', b'"working_hours":' + value)
    assert value in bad
    monitor.handle("device/exc-1/data", bad)
    _send(monitor, reading("exc-1", 24 * 60, hours=1150.0, fuel=6900.0))
    monitor.flush()
    assert monitor.stats["dead_letters"] == 1
    hours, fuel, _ = store.monthly_usage("exc-1", "2026-03")  # type: ignore[misc]
    assert statement(load_schedule(), "exc-1", "2026-03", hours, fuel).total == 1_900_000  # 150 h


def test_rent_of_a_non_finite_or_absurd_usage_is_a_one_line_error() -> None:
    from iot.errors import IotError
    from iot.pricing import load_schedule, rent

    for hours in (float("inf"), float("nan"), -1.0, 1e12):
        with pytest.raises(IotError, match="working hours"):
            rent(load_schedule(), hours)
