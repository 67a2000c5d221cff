"""IoT monitor benchmark against a real Mosquitto started here.

1. Throughput: the same number of QoS 1 messages is queued for four persistent sessions, then
   drained by raw `mosquitto_sub` (baseline), by stock paho doing nothing (reference), by the
   monitor's MQTT client doing nothing, and by the monitor with every rule on (schema
   validation, device state, idle/geofence with polygons/fuel, alert storage). This repeats
   for `--rounds` rounds and the medians are reported. Goal: the monitor drains at >= 0.5x
   the baseline.
2. Latency: at a steady telemetry load, a probe machine crosses its geofence back and forth;
   each crossing is one alert event. Latency runs from `publish()` to the bank's AlertService
   having stored the event (MQTT -> monitor -> outbox -> gRPC -> bank store).

Usage: python bench/iot.py [--quick] [--messages N] [--rounds K] [--rate R] [--seconds S]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from federation.waiting import free_port, wait_until  # noqa: E402
from iot.alerts import alert_id  # noqa: E402
from iot.broker import Mosquitto  # noqa: E402
from iot.monitor import EventClock, Monitor  # noqa: E402
from iot.mqtt import MqttMonitor  # noqa: E402
from iot.outbox import Deliverer  # noqa: E402
from iot.rules import Rules  # noqa: E402
from iot.simulate import Fleet  # noqa: E402
from iot.store import IotStore  # noqa: E402
from iot.telemetry import Telemetry  # noqa: E402

console = Console(width=None if sys.stdout.isatty() else 140)  # piped: whole rows


def wait(condition, timeout: float, what: str) -> None:
    wait_until(condition, timeout=timeout, interval=0.005, what=f"bench: {what}", error=RuntimeError)


def bench_rules() -> Rules:
    """Every rule on, with polygons for some machines so point-in-polygon runs too."""
    zone = [[31.0, 111.0], [31.0, 119.0], [39.0, 119.0], [39.0, 111.0], [35.0, 110.5]]
    return Rules.model_validate(
        {
            "geofence": {"zones": [{"name": "north-china", "polygon": zone, "leases": ["L-1"]}]},
            "leases": {"L-1": [f"exc-{i:04d}" for i in range(0, 50, 2)]},
        }
    )


class NullMonitor:
    """Counts messages and does nothing else: the paho client's own cost (the library floor)."""

    def __init__(self) -> None:
        from collections import Counter

        self.stats: Counter[str] = Counter()

    def handle(self, topic: str, payload: bytes) -> list:
        self.stats["received"] += 1
        return []

    def sweep(self) -> list:
        return []

    def flush(self) -> None:
        pass


class Publisher:
    def __init__(self, url: str, client_id: str) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        from iot.mqtt import parse_broker

        a = parse_broker(url)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.max_inflight_messages_set(100)
        self.client.max_queued_messages_set(0)
        self.acked: set[int] = set()
        self.mids: list[int] = []
        self.client.on_publish = lambda c, u, mid, rc, p: self.acked.add(mid)
        self.client.connect(a.host, a.port)
        self.client.loop_start()

    def send(self, r: Telemetry) -> None:
        self.mids.append(self.client.publish(f"device/{r.device_id}/data", r.to_payload(), qos=1).mid)

    def wait_acked(self) -> None:
        wait(lambda: set(self.mids) <= self.acked, 120, "the broker to acknowledge every publish")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class StockPaho:
    """paho-mqtt as shipped: `loop_start()`, automatic PUBACK, a no-op `on_message` (reference)."""

    def __init__(self, url: str, client_id: str) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        from iot.mqtt import parse_broker

        self.address = parse_broker(url)
        self.received = 0
        self.subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe("device/+/data", qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.subscribed.set()
        self.client.on_message = self._on_message

    def _on_message(self, client, userdata, message) -> None:
        self.received += 1

    def start(self) -> StockPaho:
        self.client.connect(self.address.host, self.address.port)
        self.client.loop_start()
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def settle(broker: Mosquitto, timeout: float = 10.0) -> None:
    """Wait until the broker has used no CPU for 0.1 s, so that one client's leftovers (acks
    the broker is still processing) do not slow the next client's drain."""
    stat = Path(f"/proc/{broker.proc.pid}/stat") if broker.proc is not None else None
    if stat is None or not stat.exists():
        return
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        fields = stat.read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])  # utime + stime
        if ticks == last:
            return
        last = ticks
        time.sleep(0.1)


def drain_rates(broker: Mosquitto, store: IotStore, n: int) -> dict[str, float]:
    """One round: drain the n messages queued for each session; msg/s per client."""
    sub = shutil.which("mosquitto_sub")
    common = ["-h", broker.host, "-p", str(broker.port), "-q", "1", "-t", "device/+/data", "-c", "-i", "bench-raw"]
    rates: dict[str, float] = {}
    settle(broker)
    with console.status("raw mosquitto_sub draining"):
        t0 = time.perf_counter()
        subprocess.run([sub, *common, "-C", str(n)], check=True, stdout=subprocess.DEVNULL, timeout=120)
        rates["raw"] = n / (time.perf_counter() - t0)

    settle(broker)
    with console.status("stock paho client (loop_start, no-op) draining"):
        stock = StockPaho(broker.url, "bench-stock")
        t0 = time.perf_counter()
        stock.start()
        wait(lambda: stock.received >= n, 300, "the stock paho client to drain its queue")
        rates["stock"] = n / (time.perf_counter() - t0)
        stock.stop()

    settle(broker)
    with console.status("monitor's MQTT client with no processing draining"):
        null = NullMonitor()
        client = MqttMonitor(null, broker.url, client_id="bench-paho", sweep_interval=0.5)
        t0 = time.perf_counter()
        client.start()
        wait(lambda: null.stats["received"] >= n, 300, "the no-op client to drain its queue")
        rates["paho"] = n / (time.perf_counter() - t0)
        client.stop()

    settle(broker)
    with console.status("monitor (all rules) draining"):
        monitor = Monitor(store, bench_rules(), clock=EventClock())
        client = MqttMonitor(monitor, broker.url, client_id="bench-monitor", sweep_interval=0.5)
        t0 = time.perf_counter()
        client.start()
        wait(lambda: monitor.stats["received"] >= n, 300, "the monitor to drain its queue")
        rates["monitor"] = n / (time.perf_counter() - t0)
        client.stop()
    rates["processed"] = monitor.stats["processed"]
    rates["alerts"] = monitor.stats["alerts_raised"] + monitor.stats["alerts_cleared"]
    return rates


def throughput(broker: Mosquitto, workdir: Path, n: int, rounds: int) -> dict[str, float]:
    """`rounds` times: queue n messages for every session, then drain them one client after the
    other. The load of a shared box changes from second to second, so each round's ratio
    compares clients measured seconds apart, and the medians over the rounds are reported."""
    sub = shutil.which("mosquitto_sub")
    if sub is None:
        raise SystemExit("bench: mosquitto_sub is not installed (apt-get install mosquitto-clients)")
    common = ["-h", broker.host, "-p", str(broker.port), "-q", "1", "-t", "device/+/data", "-c", "-i", "bench-raw"]
    subprocess.run([sub, *common, "-E"], check=True, timeout=30)  # create the raw session
    store = IotStore(f"sqlite:///{workdir / 'throughput.db'}")
    stock = StockPaho(broker.url, "bench-stock").start()
    wait(stock.subscribed.is_set, 10, "the bench-stock session")
    stock.stop()
    for client_id, core in (
        ("bench-monitor", Monitor(store, bench_rules(), clock=EventClock())),
        ("bench-paho", NullMonitor()),
    ):
        register = MqttMonitor(core, broker.url, client_id=client_id)
        register.start()
        wait(register.subscribed.is_set, 10, f"the {client_id} session")
        register.stop()

    fleet = Fleet(devices=50, step=timedelta(minutes=10), seed=3).stream(10**9)
    load_before = os.getloadavg()[0]
    results: list[dict[str, float]] = []
    publish: list[float] = []
    for i in range(rounds):
        pub = Publisher(broker.url, "bench-publisher")
        t0 = time.perf_counter()
        with console.status(f"round {i + 1}/{rounds}: queueing {n} messages for every session"):
            for r in fleet:
                pub.send(r)
                if len(pub.mids) == n:
                    break
            pub.wait_acked()
        publish.append(n / (time.perf_counter() - t0))
        pub.close()
        results.append(drain_rates(broker, store, n))
    out = {k: statistics.median(r[k] for r in results) for k in ("raw", "stock", "paho", "monitor")}
    out["ratios"] = [r["monitor"] / r["raw"] for r in results]  # type: ignore[assignment]
    out["load"] = (load_before, os.getloadavg()[0])  # type: ignore[assignment]
    out.update(
        n=n,
        rounds=rounds,
        publish=statistics.median(publish),
        processed=sum(r["processed"] for r in results),
        alerts=sum(r["alerts"] for r in results),
    )
    return out


def latency(broker: Mosquitto, workdir: Path, rate: float, seconds: float) -> dict[str, float]:
    from server.alerts import serve

    stored: dict[tuple[str, str], float] = {}
    bank_address = f"127.0.0.1:{free_port()}"
    bank = serve(
        bank_address,
        f"sqlite:///{workdir / 'bank.db'}",
        on_intake=lambda aid, state, dup: stored.setdefault((aid, state), time.perf_counter()),
    )
    store = IotStore(f"sqlite:///{workdir / 'latency.db'}")
    deliverer = Deliverer(store, bank_address, insecure=True).start()  # the bank's AlertService, in process
    monitor = Monitor(store, bench_rules(), clock=EventClock(), on_events=deliverer.wake)
    client = MqttMonitor(monitor, broker.url, client_id="bench-latency", sweep_interval=0.5).start()
    wait(client.subscribed.is_set, 10, "the latency monitor")
    pub = Publisher(broker.url, "bench-load")
    fleet = Fleet(devices=50, anomalies=(), step=timedelta(minutes=10), seed=5)
    background = fleet.stream(10**9)
    sent: dict[tuple[str, str], float] = {}
    probe_every = 0.05  # s between geofence crossings
    start_ts = datetime(2026, 3, 1, tzinfo=UTC)
    try:
        with console.status(f"steady load {rate:.0f} msg/s for {seconds:.0f} s with a probe crossing its geofence"):
            t0 = time.perf_counter()
            i = probes = 0
            open_id: str | None = None
            while (now := time.perf_counter()) - t0 < seconds:
                if now >= t0 + probes * probe_every:
                    ts = start_ts + timedelta(seconds=probes)
                    outside = open_id is None
                    r = Telemetry(
                        device_id="probe",
                        ts=ts,
                        lat=35.0,
                        lon=125.0 if outside else 115.0,
                        working_hours=1.0,
                        fuel_l=1.0,
                    )
                    key = (alert_id("probe", "geofence", ts), "raised") if outside else (open_id, "cleared")
                    sent[key] = time.perf_counter()
                    pub.send(r)
                    open_id = key[0] if outside else None
                    probes += 1
                due = t0 + i / rate
                if now >= due:
                    pub.send(next(background))
                    i += 1
                else:
                    time.sleep(min(due - now, 0.001))
            wait(lambda: set(sent) <= set(stored), 30, "every probe alert at the bank")
    finally:
        client.stop()
        deliverer.stop()
        pub.close()
        bank.stop(0)
    lat = sorted((stored[k] - sent[k]) * 1000 for k in sent)
    return {
        "events": len(lat),
        "p50": statistics.median(lat),
        "p99": lat[min(len(lat) - 1, int(0.99 * len(lat)))],
        "max": lat[-1],
        "load": i / seconds,
        "duplicates": deliverer.duplicates,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller run (about 15 s)")
    parser.add_argument(
        "--messages", type=int, help="messages queued for the throughput drain (default 30000, quick 5000)"
    )
    parser.add_argument("--rounds", type=int, help="queue-and-drain rounds (default 5, quick 1)")
    parser.add_argument("--rate", type=float, default=500.0, help="steady load for the latency part, msg/s")
    parser.add_argument("--seconds", type=float, help="duration of the latency part (default 15, quick 5)")
    parser.add_argument("--json", action="store_true", help="print the measurements as JSON instead of a table")
    args = parser.parse_args()
    n = args.messages or (5000 if args.quick else 30000)
    seconds = args.seconds or (5.0 if args.quick else 15.0)
    rounds = args.rounds or (1 if args.quick else 5)

    with tempfile.TemporaryDirectory(prefix="yinqi-bench-iot-") as tmp:
        workdir = Path(tmp)
        with Mosquitto(free_port(), workdir / "mosquitto") as broker:
            t = throughput(broker, workdir, n, rounds)
            lat = latency(broker, workdir, args.rate, seconds)

    if args.json:
        print(json.dumps({"throughput": t, "latency": lat, "cores": os.cpu_count()}, default=list))
        return
    table = Table(
        title=f"IoT monitor vs raw mosquitto_sub (same Mosquitto, same run; {n} QoS 1 messages "
        f"x {t['rounds']} rounds, medians)"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("vs baseline", justify="right")
    table.add_row(
        "box load (1-min load average, start / end of drains)",
        f"{t['load'][0]:.1f} / {t['load'][1]:.1f}",
        f"{os.cpu_count()} cores",
    )
    table.add_row("publish, paho QoS 1 (msg/s)", f"{t['publish']:,.0f}", "")
    table.add_row("drain, raw mosquitto_sub (msg/s) [baseline]", f"{t['raw']:,.0f}", "1.00")
    table.add_row(
        "drain, stock paho client doing nothing (loop_start, msg/s)",
        f"{t['stock']:,.0f}",
        f"{t['stock'] / t['raw']:.2f}",
    )
    table.add_row(
        "drain, monitor's MQTT client doing nothing (msg/s)", f"{t['paho']:,.0f}", f"{t['paho'] / t['raw']:.2f}"
    )
    ratio = t["monitor"] / t["raw"]
    rounds = ", ".join(f"{x:.2f}" for x in t["ratios"])
    table.add_row(
        "drain, monitor with all rules (msg/s)",
        f"{t['monitor']:,.0f}",
        f"[{'green' if ratio >= 0.5 else 'red'}]{ratio:.2f}[/] (goal >= 0.5)",
    )
    table.add_row("  monitor / raw in each round", "", rounds)
    table.add_row("  monitor vs its client doing nothing", "", f"{t['monitor'] / t['paho']:.2f}")
    table.add_row("  processed / alert events stored (all rounds)", f"{t['processed']:,} / {t['alerts']}", "")
    table.add_row(f"publish -> alert stored at bank, p50 (ms) at {lat['load']:.0f} msg/s", f"{lat['p50']:.1f}", "")
    table.add_row("publish -> alert stored at bank, p99 (ms)", f"{lat['p99']:.1f}", "")
    table.add_row("publish -> alert stored at bank, max (ms)", f"{lat['max']:.1f}", "")
    table.add_row("  alert events measured / duplicate deliveries", f"{lat['events']} / {lat['duplicates']}", "")
    console.print(table)


if __name__ == "__main__":
    main()
