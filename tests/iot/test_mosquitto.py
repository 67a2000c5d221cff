"""The monitor against a real Mosquitto: rules, dead letters, broker restart, bank outage."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from iot.rules import Rules
from server.alerts import serve
from tests.conftest import free_port
from tests.iot.conftest import T0, FakeClock, reading, wait_for

pytestmark = pytest.mark.mosquitto


def _events(store) -> list[tuple[str, str, str]]:
    return sorted((a.device_id, a.rule, a.state) for _, a in store.pending(limit=1000))


def test_each_rule_fires_once_and_clears(store, publisher, start_monitor) -> None:
    clock = FakeClock(T0)
    monitor, _, _ = start_monitor(clock=clock)
    seq = [
        reading("geo", 0),
        reading("geo", 10, lon=121.0),
        reading("geo", 20, lon=121.3),
        reading("geo", 30),
        reading("fuel", 0, hours=10, fuel=60),
        reading("fuel", 60, hours=11, fuel=75),  # 15 L/h
        reading("fuel", 120, hours=12, fuel=90),
        reading("fuel", 180, hours=13, fuel=96),  # 15, then 6 L/h
        reading("idle", 0),
    ]
    for r in seq:
        publisher.reading(r)
    wait_for(lambda: monitor.stats["processed"] == len(seq), what="all readings processed")
    clock.now = T0 + timedelta(hours=24, minutes=10)  # idle silent 24 h 10 min; others < 24 h
    wait_for(lambda: monitor.stats["alerts_raised"] == 3, what="the sweep to raise idle")
    publisher.reading(reading("idle", 26 * 60))
    wait_for(lambda: monitor.stats["alerts_cleared"] == 3, what="idle to clear")
    assert _events(store) == [
        ("fuel", "fuel", "cleared"),
        ("fuel", "fuel", "raised"),
        ("geo", "geofence", "cleared"),
        ("geo", "geofence", "raised"),
        ("idle", "idle", "cleared"),
        ("idle", "idle", "raised"),
    ]


def test_geofence_polygons_per_device_and_per_lease(store, publisher, start_monitor) -> None:
    square = [[34.0, 113.0], [34.0, 114.0], [35.0, 114.0], [35.0, 113.0]]
    rules = Rules.model_validate(
        {
            "geofence": {
                "zones": [
                    {"name": "yard", "polygon": square, "devices": ["own"]},
                    {"name": "site", "polygon": square, "leases": ["L-1"]},
                ]
            },
            "leases": {"L-1": ["leased"]},
        }
    )
    monitor, _, _ = start_monitor(rules=rules)
    seq = [
        reading("own", 0, lat=34.5, lon=113.5),
        reading("own", 1, lat=36.0, lon=115.0),  # out of yard
        reading("leased", 0, lat=34.5, lon=113.5),
        reading("leased", 1, lat=34.5, lon=114.5),
        reading("free", 0, lat=36.0, lon=115.0),
    ]  # no zone: default box, inside
    for r in seq:
        publisher.reading(r)
    wait_for(lambda: monitor.stats["processed"] == len(seq), what="all readings processed")
    raised = {a.device_id: a for _, a in store.pending()}
    assert sorted(raised) == ["leased", "own"]
    assert raised["own"].evidence["zones"] == ["yard"]
    assert raised["leased"].lease_id == "L-1"


def test_bad_messages_are_dead_lettered_and_the_monitor_keeps_going(store, publisher, start_monitor) -> None:
    monitor, _, _ = start_monitor()
    good = reading("exc-1", 0)
    publisher.send("device/exc-1/data", b'{"device_id": "exc-1", ')
    publisher.send("device/exc-1/data", b'{"device_id": "exc-1", "ts": "2026-03-02T08:00:00Z"}')
    publisher.send("device/exc-1/data", good.to_payload().replace(b'"lat":35.0', b'"lat":"north"'))
    publisher.send("device/exc-2/data", good.to_payload())
    publisher.reading(good)
    wait_for(lambda: monitor.stats["received"] == 5, what="all five messages")
    assert monitor.stats["processed"] == 1
    assert store.dead_letter_counts() == {
        "malformed JSON": 1,
        "fits no telemetry format: yinqi lacks lat, lon, working_hours, fuel_l; "
        "seed lacks timestamp, location.lat, location.lon, working_hours, fuel_consumption": 1,
        "yinqi format: field 'lat': expected a number, got a string": 1,
        "topic device 'exc-2' does not match payload device_id 'exc-1'": 1,
    }


def test_broker_restart_mid_stream_loses_no_qos1_message(mosquitto, store, publisher, start_monitor) -> None:
    monitor, client, _ = start_monitor()
    total, devices = 900, 3
    published = threading.Event()

    def publish() -> None:
        for i in range(total):
            publisher.reading(reading(f"exc-{i % devices}", i))
            if i % 50 == 49:
                time.sleep(0.02)  # a steady stream rather than one burst
        published.set()

    thread = threading.Thread(target=publish)
    thread.start()
    wait_for(lambda: monitor.stats["processed"] >= total // 4, what="a quarter of the stream")
    connections_before = client.connections
    mosquitto.stop()
    processed_at_stop, published_at_stop = monitor.stats["processed"], len(publisher.infos)
    mosquitto.start()
    thread.join()
    wait_for(lambda: publisher.all_acked(), 30, "the broker to acknowledge every publish")
    wait_for(lambda: monitor.stats["processed"] == total, 30, f"all {total} messages (got {dict(monitor.stats)})")
    assert processed_at_stop < total and published_at_stop < total  # the restart was mid-stream
    assert client.connections > connections_before  # it did reconnect
    assert monitor.stats["processed"] == total
    assert monitor.stats["dead_letters"] == 0
    assert {d: s.last_ts for d, s in monitor.devices.items()} == {
        f"exc-{k}": T0 + timedelta(minutes=total - devices + k) for k in range(devices)
    }


def test_bank_down_then_up_every_alert_delivered_exactly_once(tmp_path, store, publisher, start_monitor) -> None:
    bank = f"127.0.0.1:{free_port()}"
    monitor, _, deliverer = start_monitor(bank=bank)
    devices = [f"exc-{k}" for k in range(5)]
    for d in devices:  # each device leaves the box and comes back: 10 alert events
        publisher.reading(reading(d, 0, lon=125.0))
        publisher.reading(reading(d, 10))
    wait_for(lambda: monitor.stats["processed"] == 10, what="all readings processed")
    wait_for(lambda: deliverer.failures >= 2, what="delivery attempts against the absent bank")
    assert store.outbox_counts() == {"total": 10, "pending": 10, "delivered": 0, "refused": 0}

    intakes: list[tuple[str, str, bool]] = []
    server = serve(bank, f"sqlite:///{tmp_path / 'bank.db'}", on_intake=lambda *a: intakes.append(a))
    try:
        wait_for(lambda: store.outbox_counts()["pending"] == 0, 20, "the outbox to drain")
        rows = server.alert_service.store.list()
    finally:
        server.stop(0)
    assert sorted((r.device_id, r.state) for r in rows) == [(d, "cleared") for d in devices]
    assert all(r.deliveries == 2 for r in rows)  # one raising + one clearing each
    assert sorted(s for _, s, dup in intakes if not dup) == ["cleared"] * 5 + ["raised"] * 5
    assert [dup for *_, dup in intakes] == [False] * 10


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_messages_sent_while_the_monitor_is_away_wait_in_its_session(mosquitto, store, publisher, protocol) -> None:
    from iot.monitor import Monitor
    from iot.mqtt import MqttMonitor

    def monitor_client() -> tuple[Monitor, MqttMonitor]:
        core = Monitor(store, Rules(), clock=FakeClock())
        return core, MqttMonitor(
            core, mosquitto.url, client_id=f"away-{protocol}", protocol=protocol, sweep_interval=0.05, min_reconnect=0.1
        ).start()

    first, client = monitor_client()
    wait_for(client.subscribed.is_set, 10, "the first subscription")
    client.stop()
    for i in range(50):
        publisher.reading(reading("exc-1", i))
    wait_for(publisher.all_acked, 10, "the broker to take the messages")
    second, client = monitor_client()
    try:
        wait_for(lambda: second.stats["processed"] == 50, 10, f"the queued messages (got {dict(second.stats)})")
    finally:
        client.stop()
    assert first.stats["processed"] == 0


def test_a_message_that_could_not_be_stored_is_redelivered(mosquitto, tmp_path, publisher) -> None:
    from iot.monitor import Monitor
    from iot.mqtt import MqttMonitor
    from tests.iot.test_lifecycle import FlakyStore

    store = FlakyStore(f"sqlite:///{tmp_path / 'flaky.db'}")
    monitor = Monitor(store, Rules(), clock=FakeClock())
    client = MqttMonitor(monitor, mosquitto.url, client_id="flaky", sweep_interval=0.05, min_reconnect=0.1).start()
    try:
        wait_for(client.subscribed.is_set, 10, "the subscription")
        publisher.reading(reading("exc-1", 0, lon=125.0))  # raises an alert: its write fails once
        publisher.reading(reading("exc-1", 10))
        wait_for(lambda: monitor.stats["alerts_cleared"] == 1, 10, f"the redelivery (stats {dict(monitor.stats)})")
    finally:
        client.stop()
    assert client.errors == 1
    assert client.connections >= 2
    assert [(a.rule, a.state) for _, a in store.pending()] == [("geofence", "raised"), ("geofence", "cleared")]
