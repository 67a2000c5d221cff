"""Demo part `iot`: an embedded broker, a simulated fleet with anomalies, devices speaking the
seed's telemetry format, broken and hostile messages, alerts raised and delivered to an
in-process bank AlertService, and one month's usage-based rent statement. Every figure shown is
read back from the monitor, its store or the bank."""

from __future__ import annotations

import json
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


def _broken_messages() -> list[tuple[str, bytes]]:
    """What a broken or hostile device might send: each must be dead-lettered with its reason,
    and none may stop or fool the monitor."""
    good = {"lat": 35.0, "lon": 115.0, "working_hours": 1.0, "fuel_l": 1.0}
    return [
        ("device/exc-0005/data", b'{"device_id": "exc-0005", "ts": '),
        ("device/exc-0005/data", b'{"device_id": "exc-0005", "ts": "2026-03-31T23:00:00Z"}'),
        (
            "device/exc-0006/data",
            json.dumps({"device_id": "exc-0007", "ts": "2026-03-31T23:00:00Z", **good}).encode(),
        ),
        (  # past year 9999 in UTC: once an OverflowError that stopped the monitor
            "device/exc-0008/data",
            json.dumps({"device_id": "exc-0008", "ts": "9999-12-31T23:59:59-12:00", **good}).encode(),
        ),
        (  # dated 2099: would have become the device's newest state and silenced its rules
            "device/exc-0009/data",
            json.dumps({"device_id": "exc-0009", "ts": "2099-01-01T00:00:00Z", **good}).encode(),
        ),
        (
            "device/exc-0010/data",
            b'{"device_id": "exc-0010", "ts": "2026-03-31T23:00:00Z", "lat": 35.0, "lon": 115.0,'
            b' "working_hours": Infinity, "fuel_l": 1.0}',
        ),
    ]


def _seed_messages(end: datetime) -> list[tuple[str, bytes]]:
    """A machine of the seed project's fleet reporting hourly up to `end`, in its own payload
    (Unix seconds, nested location, fuel_consumption), understood with no configuration."""
    out = []
    for hour in range(10, 0, -1):
        message = {
            "device_id": "seed-0001",
            "timestamp": int((end - timedelta(hours=hour)).timestamp()),
            "location": {"lat": 34.7, "lon": 113.6},
            "working_hours": 5200.0 - 0.9 * hour,
            "fuel_consumption": 31200.0 - 5.4 * hour,
        }
        out.append(("device/seed-0001/data", json.dumps(message).encode()))
    return out


def _publish(url: str, messages: list[tuple[str, bytes]]) -> int:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from iot.mqtt import parse_broker

    address = parse_broker(url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="demo-other-devices")
    client.connect(address.host, address.port)
    client.loop_start()
    infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(10)
    client.disconnect()
    client.loop_stop()
    return sum(1 for info in infos if info.is_published())


def run(workdir: Path, console: Console) -> None:
    from federation.errors import YinqiError
    from federation.waiting import free_port, wait_until
    from iot.monitor import EventClock, Monitor
    from iot.mqtt import MqttMonitor
    from iot.mqtt_broker import EmbeddedBroker
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
    broker = EmbeddedBroker(port=0).start()
    bank_address = f"127.0.0.1:{free_port()}"
    bank = serve(bank_address, f"sqlite:///{workdir / 'bank.db'}")
    store = IotStore(f"sqlite:///{workdir / 'iot.db'}")
    deliverer = Deliverer(store, bank_address, insecure=True).start()  # the bank's AlertService, in process
    monitor = Monitor(store, load_rules(), clock=EventClock(), on_events=deliverer.wake)
    client = MqttMonitor(monitor, broker.url, client_id="demo-monitor", sweep_interval=0.05).start()
    try:
        client.wait_connected(10)
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
            broken, seed = _broken_messages(), _seed_messages(fleet.now())
            others = _publish(broker.url, broken + seed)
            expected = acked + others

            def judged() -> bool:
                return monitor.stats["processed"] + monitor.stats["dead_letters"] >= expected

            wait_until(
                judged,
                timeout=30,
                what=f"demo iot: the monitor judging {expected} messages (stats {dict(monitor.stats)})",
                error=YinqiError,
            )
            monitor.sweep()
            wait_until(
                lambda: store.outbox_counts()["pending"] == 0,
                timeout=15,
                what=f"demo iot: delivering every alert to the bank ({store.outbox_counts()})",
                error=YinqiError,
            )
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
    reasons = store.dead_letter_counts()
    seed_seen = store.devices().get("seed-0001")
    table = Table(title="IoT leasing: what the demo showed")
    table.add_column("what")
    table.add_column("result", justify="right")
    table.add_row(f"telemetry published by the simulated fleet (QoS 1, {broker.name})", str(acked))
    table.add_row(
        "seed-format messages understood with no configuration",
        f"{len(seed)} sent; seed-0001 last seen {seed_seen.last_ts:%Y-%m-%d %H:%M}"
        if seed_seen
        else f"0 of {len(seed)}",
    )
    table.add_row("processed by the monitor", str(monitor.stats["processed"]))
    table.add_row(
        "dead-lettered with a reason", f"{monitor.stats['dead_letters']} of {len(broken)} broken or hostile messages"
    )
    for reason, count in sorted(reasons.items()):
        table.add_row(f"  {reason[:90]}", str(count))
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
