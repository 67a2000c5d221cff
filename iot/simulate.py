"""A simulated fleet of leased machines publishing realistic telemetry, with injected anomalies.

Device time runs on a simulated clock (`step` per tick, default 30 minutes) so a day of
operation takes seconds; pair it with the monitor's `EventClock`. Machines work day shifts
(06:00-18:00 UTC) burning about 6 L/h, drift slowly around a base site inside the default
geofence, and meters are cumulative. Anomalies go to the first devices, one each:

- idle: device goes silent for `idle_ticks` ticks (longer than a day), then reports again;
- geofence: device moves outside the default box for a stretch, then returns;
- fuel: device burns ~16 L per working hour for a stretch, then returns to normal.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from iot.errors import IotError
from iot.telemetry import Telemetry

ANOMALIES = ("idle", "geofence", "fuel")


@dataclass
class SimDevice:
    device_id: str
    base_lat: float
    base_lon: float
    fuel_rate: float
    anomaly: str | None = None
    hours: float = 0.0
    fuel: float = 0.0
    lat: float = 0.0
    lon: float = 0.0


@dataclass
class Fleet:
    """Parameters
    ----------
    devices : number of machines.
    anomalies : which anomalies to inject (subset of idle, geofence, fuel).
    start : device time of the first tick (UTC).
    step : device time between two readings of a machine.
    anomaly_start, anomaly_ticks : when the geofence and fuel anomalies begin and how long they last.
    idle_ticks : how long the idle machine stays silent (default: 30 hours of device time).
    seed : makes the fleet reproducible.
    """

    devices: int = 10
    anomalies: tuple[str, ...] = ANOMALIES
    start: datetime = datetime(2026, 3, 1, tzinfo=UTC)
    step: timedelta = timedelta(minutes=30)
    anomaly_start: int = 8
    anomaly_ticks: int = 12
    idle_ticks: int | None = None
    seed: int = 7
    prefix: str = "exc"
    tick: int = 0
    machines: list[SimDevice] = field(default_factory=list)

    def __post_init__(self) -> None:
        unknown = set(self.anomalies) - set(ANOMALIES)
        if unknown:
            raise IotError(f"--anomalies: unknown {sorted(unknown)}; expected some of {list(ANOMALIES)}")
        if self.devices < 1:
            raise IotError("--devices must be at least 1")
        rng = random.Random(self.seed)
        self._rng = rng
        if self.idle_ticks is None:
            self.idle_ticks = int(timedelta(hours=30) / self.step) + 1
        for i in range(self.devices):
            anomaly = self.anomalies[i] if i < len(self.anomalies) else None
            lat, lon = rng.uniform(32, 38), rng.uniform(112, 118)
            self.machines.append(
                SimDevice(
                    f"{self.prefix}-{i:04d}",
                    lat,
                    lon,
                    rng.uniform(5.0, 7.0),
                    anomaly,
                    hours=rng.uniform(100, 2000) // 1,
                    lat=lat,
                    lon=lon,
                    fuel=0.0,
                )
            )
            self.machines[-1].fuel = round(self.machines[-1].hours * self.machines[-1].fuel_rate, 1)

    def now(self) -> datetime:
        return self.start + self.tick * self.step

    def _in_window(self, start: int, length: int) -> bool:
        return start <= self.tick < start + length

    def readings(self) -> list[Telemetry]:
        """One reading per reporting machine for the current tick, then advance the clock."""
        ts = self.now()
        step_h = self.step / timedelta(hours=1)
        working = 6 <= ts.hour < 18
        out = []
        for m in self.machines:
            active = self._in_window(self.anomaly_start, self.anomaly_ticks)
            if working:
                worked = step_h * self._rng.uniform(0.8, 1.0)
                m.hours += worked
                rate = 16.0 if (m.anomaly == "fuel" and active) else m.fuel_rate
                m.fuel += worked * rate * self._rng.uniform(0.95, 1.05)
            m.lat = m.base_lat + self._rng.uniform(-0.01, 0.01)
            m.lon = m.base_lon + self._rng.uniform(-0.01, 0.01)
            if m.anomaly == "geofence" and active:
                m.lon = 121.5 + self._rng.uniform(0, 0.05)
            if m.anomaly == "idle" and self._in_window(self.anomaly_start, self.idle_ticks or 0):
                continue  # silent: no message at all
            out.append(
                Telemetry(
                    device_id=m.device_id,
                    ts=ts,
                    lat=round(m.lat, 6),
                    lon=round(m.lon, 6),
                    working_hours=round(m.hours, 4),
                    fuel_l=round(m.fuel, 3),
                )
            )
        self.tick += 1
        return out

    def stream(self, ticks: int) -> Iterator[Telemetry]:
        for _ in range(ticks):
            yield from self.readings()


def publish(
    fleet: Fleet,
    broker: str,
    *,
    rate: float = 100.0,
    ticks: int | None = None,
    duration: float | None = None,
    client_id: str = "yinqi-iot-simulator",
    on_progress: Callable[[int, int], object] | None = None,
) -> int:
    """Publish the fleet's telemetry at `rate` messages/s (QoS 1) until `ticks` ticks or
    `duration` seconds have passed; returns the number of messages the broker acknowledged."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from iot.mqtt import parse_broker

    if rate <= 0:
        raise IotError("--rate must be positive (messages per second)")
    address = parse_broker(broker)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    client.max_inflight_messages_set(100)
    client.max_queued_messages_set(0)
    if address.username:
        client.username_pw_set(address.username, address.password)
    if address.tls:
        client.tls_set()
    connected = threading.Event()
    acked: set[int] = set()
    client.on_connect = lambda c, u, flags, rc, props: connected.set() if not rc.is_failure else None
    client.on_publish = lambda c, u, mid, rc, props: acked.add(mid)
    client.reconnect_delay_set(1, 10)
    client.connect_async(address.host, address.port)
    client.loop_start()
    try:
        if not connected.wait(15):
            raise IotError(f"broker {address.url}: no connection within 15 s")
        mids: list[int] = []
        started = time.monotonic()
        tick = 0
        while ticks is None or tick < ticks:
            if duration is not None and time.monotonic() - started >= duration:
                break
            for reading in fleet.readings():
                delay = started + len(mids) / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)  # pacing the publisher, not synchronisation
                mids.append(client.publish(f"device/{reading.device_id}/data", reading.to_payload(), qos=1).mid)
            tick += 1
            if on_progress is not None:
                on_progress(tick, len(mids))
        deadline = time.monotonic() + 30
        while not set(mids) <= acked and time.monotonic() < deadline:
            time.sleep(0.02)  # waiting for the broker's PUBACKs (queued ones go out on reconnect)
        return len(set(mids) & acked)
    finally:
        client.disconnect()
        client.loop_stop()
