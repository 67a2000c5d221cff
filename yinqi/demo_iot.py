"""Demo part `iot`: an embedded broker, a simulated fleet with anomalies, alerts raised and
delivered to an in-process bank AlertService, and one month's usage-based rent statement."""

from __future__ import annotations

import socket
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

DEVICES = 12
MONTH = "2026-03"
STEP = timedelta(hours=2)
TICKS = 31 * 12  # every machine reports every 2 h for the whole of March
RATE = 1500.0  # messages per second


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _publish_bad_messages(url: str) -> int:
    """A few messages a broken device might send: they must be dead-lettered, not crash anything."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from iot.mqtt import parse_broker

    address = parse_broker(url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="demo-broken-device")
    client.connect(address.host, address.port)
    client.loop_start()
    bad = [
        ("device/exc-0005/data", b'{"device_id": "exc-0005", "ts": '),
        ("device/exc-0005/data", b'{"device_id": "exc-0005", "ts": "2026-03-31T23:00:00Z"}'),
        (
            "device/exc-0006/data",
            b'{"device_id": "exc-0007", "ts": "2026-03-31T23:00:00Z", "lat": 35.0,'
            b' "lon": 115.0, "working_hours": 1.0, "fuel_l": 1.0}',
        ),
    ]
    infos = [client.publish(topic, payload, qos=1) for topic, payload in bad]
    for info in infos:
        info.wait_for_publish(10)
    client.disconnect()
    client.loop_stop()
    return len(bad)


def run(workdir: Path, console: Console) -> None:
    from federation.errors import YinqiError
    from iot.mqtt_broker import EmbeddedBroker
    from iot.monitor import EventClock, Monitor
    from iot.mqtt import MqttMonitor
    from iot.outbox import Deliverer
    from iot.pricing import load_schedule, statement
    from iot.rules import load_rules
    from iot.simulate import Fleet, publish
    from iot.store import IotStore
    from server.alerts import serve
    from yinqi.cli_iot import render_statement

    workdir.mkdir(parents=True, exist_ok=True)
    for name in ("iot.db", "bank.db"):
        for suffix in ("", "-wal", "-shm"):
            (workdir / f"{name}{suffix}").unlink(missing_ok=True)
    started = time.perf_counter()
    broker = EmbeddedBroker(port=_free_port()).start()
    bank_address = f"127.0.0.1:{_free_port()}"
    bank = serve(bank_address, f"sqlite:///{workdir / 'bank.db'}")
    store = IotStore(f"sqlite:///{workdir / 'iot.db'}")
    deliverer = Deliverer(store, bank_address, insecure=True).start()  # an in-process loopback intake
    monitor = Monitor(store, load_rules(), clock=EventClock(), on_events=deliverer.wake)
    client = MqttMonitor(monitor, broker.url, client_id="demo-monitor", sweep_interval=0.05).start()
    try:
        if not _wait(client.subscribed.is_set, 10):
            raise YinqiError(f"demo iot: the monitor could not subscribe on {broker.url}")
        fleet = Fleet(devices=DEVICES, start=datetime(2026, 3, 1, tzinfo=UTC), step=STEP)
        with console.status(f"{DEVICES} machines publishing a month of telemetry to {broker.url}") as status:
            acked = publish(
                fleet,
                broker.url,
                rate=RATE,
                ticks=TICKS,
                client_id="demo-fleet",
                on_progress=lambda t, n: status.update(f"device day {t // 12 + 1} of 31: {n} messages"),
            )
            bad = _publish_bad_messages(broker.url)
            expected = acked + bad
            if not _wait(lambda: monitor.stats["received"] >= expected, 30):
                raise YinqiError(f"demo iot: the monitor received {monitor.stats['received']} of {expected} messages")
            monitor.sweep()
            if not _wait(lambda: store.outbox_counts()["pending"] == 0, 15):
                raise YinqiError(f"demo iot: alerts not delivered to the bank: {store.outbox_counts()}")
        monitor.flush()
        bank_rows = bank.alert_service.store.list()
        anchored = len(bank.alert_service.anchored)
    finally:
        client.stop()
        deliverer.stop()
        bank.stop(0)
        broker.stop()

    injected = {m.anomaly: m.device_id for m in fleet.machines if m.anomaly}
    events = Counter((a.rule, a.state) for a in store.alerts())
    table = Table(title="IoT leasing: what the demo showed")
    table.add_column("what")
    table.add_column("result", justify="right")
    table.add_row("telemetry published (QoS 1, embedded amqtt broker)", str(acked))
    table.add_row("processed by the monitor", str(monitor.stats["processed"]))
    table.add_row("dead-lettered with a reason", f"{monitor.stats['dead_letters']} of {bad} broken messages")
    for rule in ("idle", "geofence", "fuel"):
        raised = events[(rule, "raised")] + events[(rule, "cleared")]
        table.add_row(
            f"{rule} alerts (injected on {injected.get(rule, '-')})",
            f"{raised} raised, {events[(rule, 'cleared')]} cleared",
        )
    table.add_row(
        "alert events delivered to the bank over gRPC", f"{deliverer.delivered} ({deliverer.duplicates} duplicates)"
    )
    table.add_row("alerts stored at the bank (one row per id)", str(len(bank_rows)))
    table.add_row("alert records handed to the anchoring outbox", str(anchored))
    console.print(table)

    device = next(m.device_id for m in fleet.machines if m.anomaly is None)
    usage = store.monthly_usage(device, MONTH)
    if usage is None:
        raise YinqiError(f"demo iot: no usage stored for {device} in {MONTH}")
    console.print(render_statement(statement(load_schedule(), device, MONTH, usage[0], usage[1])))
    console.print(f"[dim]iot: {time.perf_counter() - started:.1f} s; state in {workdir}[/]")
