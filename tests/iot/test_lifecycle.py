"""Alert lifecycle and the monitor core, without a broker: raised once, cleared on recovery."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from iot.alerts import AlertBook, alert_id
from iot.monitor import EventClock, Monitor, StoreUnavailable
from iot.rules import Rules
from iot.store import IotStore
from tests.iot.conftest import T0, reading


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _send(monitor: Monitor, r) -> list:
    return monitor.handle(f"device/{r.device_id}/data", r.to_payload())


def test_book_raises_once_and_clears() -> None:
    book = AlertBook()
    kw = {"evidence": {}, "severity": "warning"}
    first = book.observe("d", "fuel", True, at=T0, **kw)
    assert first is not None and first.state == "raised"
    assert book.observe("d", "fuel", True, at=T0 + timedelta(hours=1), **kw) is None
    cleared = book.observe("d", "fuel", False, at=T0 + timedelta(hours=2), **kw)
    assert (cleared.id, cleared.state, cleared.cleared_at) == (first.id, "cleared", T0 + timedelta(hours=2))
    assert book.observe("d", "fuel", False, at=T0 + timedelta(hours=3), **kw) is None
    again = book.observe("d", "fuel", True, at=T0 + timedelta(hours=4), **kw)
    assert again.id != first.id  # a new episode


def test_alert_id_is_stable() -> None:
    assert alert_id("d", "idle", T0) == alert_id("d", "idle", T0)
    assert alert_id("d", "idle", T0) != alert_id("d", "geofence", T0)


def test_geofence_fires_once_and_clears(store: IotStore) -> None:
    monitor = Monitor(store, Rules(), clock=FakeClock(T0))
    assert _send(monitor, reading(minutes=0)) == []
    raised = _send(monitor, reading(minutes=10, lon=121.0))
    assert [(e.rule, e.state, e.severity) for e in raised] == [("geofence", "raised", "critical")]
    assert raised[0].evidence["lon"] == 121.0
    assert _send(monitor, reading(minutes=20, lon=121.2)) == []
    cleared = _send(monitor, reading(minutes=30))
    assert [(e.id, e.state) for e in cleared] == [(raised[0].id, "cleared")]


def test_fuel_fires_once_and_clears(store: IotStore) -> None:
    monitor = Monitor(store, Rules(), clock=FakeClock(T0))
    _send(monitor, reading(minutes=0, hours=100.0, fuel=600.0))
    # 1 h of work, 12 L: 12 L/h > 10
    raised = _send(monitor, reading(minutes=60, hours=101.0, fuel=612.0))
    assert [(e.rule, e.state) for e in raised] == [("fuel", "raised")]
    assert raised[0].evidence["litres_per_hour"] == 12.0
    assert _send(monitor, reading(minutes=120, hours=102.0, fuel=625.0)) == []  # 13 L/h: still open
    assert _send(monitor, reading(minutes=125, hours=102.1, fuel=640.0)) == []  # 0.1 h < window
    # window from 102.0 h: 1.0 h, 8 L -> 8 L/h: cleared
    cleared = _send(monitor, reading(minutes=180, hours=103.0, fuel=633.0))
    assert [(e.rule, e.state) for e in cleared] == [("fuel", "cleared")]


def test_idle_fires_only_through_the_sweep(store: IotStore) -> None:
    clock = FakeClock(T0)
    monitor = Monitor(store, Rules(), clock=clock)
    _send(monitor, reading(minutes=0))
    clock.now = T0 + timedelta(hours=23, minutes=59)
    assert monitor.sweep() == []
    clock.now = T0 + timedelta(hours=24, minutes=1)
    raised = monitor.sweep()
    assert [(e.rule, e.state, e.device_id) for e in raised] == [("idle", "raised", "exc-1")]
    assert raised[0].raised_at == T0 + timedelta(hours=24)  # the moment it became idle
    clock.now = T0 + timedelta(hours=30)
    assert monitor.sweep() == []  # raised once
    cleared = _send(monitor, reading(minutes=31 * 60))
    assert [(e.rule, e.state) for e in cleared] == [("idle", "cleared")]


def test_a_silence_no_sweep_saw_is_recorded_when_the_device_returns(store: IotStore) -> None:
    clock = FakeClock(T0)
    monitor = Monitor(store, Rules(), clock=clock)
    _send(monitor, reading(minutes=0))
    events = _send(monitor, reading(minutes=30 * 60))  # back after 30 h; no sweep ran meanwhile
    assert [(e.rule, e.state) for e in events] == [("idle", "raised"), ("idle", "cleared")]
    assert events[0].raised_at == T0 + timedelta(hours=24)
    assert events[0].id == events[1].id


def test_state_survives_a_monitor_restart(store: IotStore) -> None:
    clock = FakeClock(T0)
    first = Monitor(store, Rules(), clock=clock)
    _send(first, reading(minutes=0))
    _send(first, reading(minutes=10, lon=121.0))
    first.flush()
    second = Monitor(store, Rules(), clock=clock)
    assert _send(second, reading(minutes=20, lon=121.5)) == []  # geofence still open: not re-raised
    clock.now = T0 + timedelta(hours=25)
    assert [e.rule for e in second.sweep()] == ["idle"]  # knows the device from the store


def test_redeliveries_are_skipped_and_late_readings_count_for_usage_only(store: IotStore) -> None:
    monitor = Monitor(store, Rules(), clock=FakeClock(T0))
    _send(monitor, reading(minutes=10, hours=101.0))
    _send(monitor, reading(minutes=10, hours=101.0))  # the same reading again
    assert _send(monitor, reading(minutes=5, hours=100.0, lon=125.0)) == []  # late: no verdict
    assert (monitor.stats["processed"], monitor.stats["duplicates"], monitor.stats["late"]) == (2, 1, 1)
    assert monitor.devices["exc-1"].last_ts == T0 + timedelta(minutes=10)
    monitor.flush()
    assert store.monthly_usage("exc-1", "2026-03") == (1.0, 0.0, 2)


def test_every_event_is_stored_and_queued(store: IotStore) -> None:
    monitor = Monitor(store, Rules(), clock=EventClock())
    _send(monitor, reading(minutes=0, lon=125.0))
    _send(monitor, reading(minutes=10))
    assert [(a.rule, a.state) for a in store.alerts()] == [("geofence", "cleared")]
    assert [a.state for _, a in store.pending()] == ["raised", "cleared"]


def test_monthly_usage_from_cumulative_meters(store: IotStore) -> None:
    monitor = Monitor(store, Rules(), clock=EventClock())
    feb = datetime(2026, 2, 27, tzinfo=UTC)
    for day, hours in [(0, 90.0), (1, 100.0), (3, 104.5), (10, 150.25)]:  # 100 h at the end of Feb
        r = reading(hours=hours, fuel=hours * 6)
        r = r._replace(ts=feb + timedelta(days=day))
        _send(monitor, r)
    monitor.flush()
    # Mar: from Feb's last reading (100.0) to 150.25 -> 50.25 h; Feb: 90 -> 100 = 10 h
    assert store.monthly_usage("exc-1", "2026-03") == (50.25, 50.25 * 6, 2)
    assert store.monthly_usage("exc-1", "2026-02") == (10.0, 60.0, 2)
    assert store.monthly_usage("exc-1", "2026-04") is None


class FlakyStore(IotStore):
    """Fails the first alert write, as a full disk or a dropped database connection would."""

    failures = 1

    def record_alerts(self, events):
        if self.failures:
            self.failures -= 1
            raise OSError("disk full")
        return super().record_alerts(events)


def test_an_alert_that_could_not_be_stored_is_raised_on_redelivery(tmp_path) -> None:
    import pytest

    store = FlakyStore(f"sqlite:///{tmp_path / 'flaky.db'}")
    monitor = Monitor(store, Rules(), clock=FakeClock(T0))
    _send(monitor, reading(minutes=0))
    outside = reading(minutes=10, lon=125.0)
    with pytest.raises(StoreUnavailable, match="disk full"):
        _send(monitor, outside)  # not acknowledged: the broker will deliver it again
    again = _send(monitor, outside)
    assert [(e.rule, e.state) for e in again] == [("geofence", "raised")]
    assert [a.rule for _, a in store.pending()] == ["geofence"]
    assert monitor.stats["processed"] == 2


class FlakyFlushStore(IotStore):
    """Fails the first state flush."""

    failures = 1

    def save_devices(self, devices, usage):
        if self.failures:
            self.failures -= 1
            raise OSError("database is locked")
        return super().save_devices(devices, usage)


def test_a_state_flush_that_failed_is_written_by_the_next_one(tmp_path) -> None:
    import pytest

    store = FlakyFlushStore(f"sqlite:///{tmp_path / 'flaky.db'}")
    monitor = Monitor(store, Rules(), clock=FakeClock(T0))
    _send(monitor, reading(minutes=0, hours=100.0, fuel=600.0))
    _send(monitor, reading(minutes=10, hours=101.0, fuel=606.0))
    with pytest.raises(OSError):
        monitor.flush()
    _send(monitor, reading(minutes=20, hours=102.5, fuel=615.0))  # gathered after the failure
    monitor.flush()
    assert store.monthly_usage("exc-1", "2026-03") == (2.5, 15.0, 3)
    assert store.devices()["exc-1"].last_ts == T0 + timedelta(minutes=20)
