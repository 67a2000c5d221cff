"""Fixtures for the IoT tests: a real Mosquitto per test, a store per test, a QoS 1 publisher."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from iot.broker import Mosquitto
from iot.store import IotStore
from iot.telemetry import Telemetry
from tests.conftest import free_port, require_binary

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def reading(
    device: str = "exc-1",
    minutes: float = 0,
    *,
    lat: float = 35.0,
    lon: float = 115.0,
    hours: float = 100.0,
    fuel: float = 600.0,
) -> Telemetry:
    """A valid reading `minutes` after T0."""
    return Telemetry(
        device_id=device, ts=T0 + timedelta(minutes=minutes), lat=lat, lon=lon, working_hours=hours, fuel_l=fuel
    )


def wait_for(condition: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    """Poll until `condition()` holds; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def store(tmp_path: Path) -> IotStore:
    return IotStore(f"sqlite:///{tmp_path / 'iot.db'}")


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    binary = require_binary("mosquitto")
    broker = Mosquitto(free_port(), tmp_path / "mosquitto", binary=binary)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


class Publisher:
    """A paho QoS 1 publisher with a persistent session (resends across broker restarts)."""

    def __init__(self, url: str) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        from iot.mqtt import parse_broker

        address = parse_broker(url)
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"test-pub-{address.port}", clean_session=False
        )
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(0.1, 1)  # type: ignore[arg-type]
        self.acked: set[int] = set()
        self.client.on_publish = lambda c, u, mid, rc, props: self.acked.add(mid)
        self.client.connect(address.host, address.port)
        self.client.loop_start()
        self.infos: list = []

    def send(self, topic: str, payload: bytes) -> None:
        self.infos.append(self.client.publish(topic, payload, qos=1))

    def reading(self, r: Telemetry) -> None:
        self.send(f"device/{r.device_id}/data", r.to_payload())

    def all_acked(self) -> bool:
        # (a publish made while disconnected is queued by paho and sent on reconnect, but its
        # MQTTMessageInfo keeps the NO_CONN code: count the broker's PUBACKs instead)
        return {i.mid for i in self.infos} <= self.acked

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def publisher(mosquitto: Mosquitto) -> Iterator[Publisher]:
    pub = Publisher(mosquitto.url)
    try:
        yield pub
    finally:
        pub.close()


class FakeClock:
    """An injectable clock the test moves by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def start_monitor(store: IotStore, mosquitto: Mosquitto):
    """Factory: a running MQTT monitor on the test's Mosquitto (stopped at teardown)."""
    from iot.monitor import Monitor
    from iot.mqtt import MqttMonitor
    from iot.outbox import Deliverer
    from iot.rules import Rules

    running: list = []

    def start(
        rules: Rules | None = None,
        clock: Callable[[], datetime] | None = None,
        bank: str | None = None,
        client_id: str = "test-monitor",
    ):
        deliverer = Deliverer(store, bank, insecure=True, min_backoff=0.05, max_backoff=0.5).start() if bank else None
        monitor = Monitor(
            store, rules or Rules(), clock=clock or FakeClock(), on_events=deliverer.wake if deliverer else None
        )
        client = MqttMonitor(
            monitor, mosquitto.url, client_id=client_id, sweep_interval=0.05, min_reconnect=0.1, max_reconnect=1.0
        )
        client.start()
        running.append((client, deliverer))
        wait_for(client.subscribed.is_set, 10, "the monitor to subscribe")
        return monitor, client, deliverer

    yield start
    for client, deliverer in running:
        client.stop()
        if deliverer is not None:
            deliverer.stop()
