"""`yinqi iot ...`: simulate a fleet, run the monitor, list alerts and dead letters, rent,
run a broker. Heavy imports (paho, grpc) stay inside the commands.

The bank's side of alerts is the bank's own gRPC server (`yinqi bank serve`, or `bank up`):
the monitor delivers to it with an `iot-monitor` certificate, and `iot alerts --bank` reads
from it with an operator's or auditor's. There is no separate alert intake to run.

Numbers and choices are parsed here, not by click, so that a bad one is one line naming the
option and what was expected (exit code 2), like every other user mistake.
"""

from __future__ import annotations

import json
import math
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from iot.errors import IotError

# piped output keeps whole table rows (rich would fold them to 80 columns)
console = Console(width=None if sys.stdout.isatty() else 200)

iot_app = typer.Typer(help="IoT equipment leasing: telemetry monitor, alerts, usage-based rent.", no_args_is_help=True)

DB_HELP = "Database of the monitor (default: YINQI_DB_URL, else iot.db in the data dir)."
JSON_HELP = "Print the result as JSON for machines."
BANK_TLS = "the bank's AlertService (mutual TLS)"


def register(root: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    root.add_typer(iot_app, name="iot")


# ----- parsing ----------------------------------------------------------------------------------


def number(text: str | None, option: str, *, low: float, high: float = math.inf, strict_low: bool = False) -> float:
    """A finite number in range from an option's text; one-line `IotError` otherwise."""
    if text is None:
        raise IotError(f"{option}: a number is required")
    bound = f"greater than {low:g}" if strict_low else f"at least {low:g}"
    expected = f"a number {bound}" + (f" and at most {high:g}" if math.isfinite(high) else "")
    try:
        value = float(text)
    except ValueError:
        raise IotError(f"{option} {text!r}: expected {expected}") from None
    if not math.isfinite(value) or value < low or (strict_low and value == low) or value > high:
        raise IotError(f"{option} {text!r}: expected {expected}")
    return value


def whole(text: str | None, option: str, *, low: int, high: int | None = None) -> int:
    """An integer in range from an option's text; one-line `IotError` otherwise."""
    expected = f"a whole number from {low}" + (f" to {high}" if high is not None else " up")
    try:
        value = int(str(text).strip())
    except ValueError:
        raise IotError(f"{option} {text!r}: expected {expected}") from None
    if value < low or (high is not None and value > high):
        raise IotError(f"{option} {text!r}: expected {expected}")
    return value


def choice(text: str, option: str, allowed: tuple[str, ...]) -> str:
    if text not in allowed:
        raise IotError(f"{option} {text!r}: expected one of {', '.join(allowed)}")
    return text


def duration_of(text: str | None) -> float | None:
    return None if text is None else number(text, "--duration", low=0)


def _store(db: str | None) -> Any:
    from federation.config import db_url
    from iot.store import IotStore

    return IotStore(db or db_url("iot"))


def _bank_tls(ca: Path | None, cert: Path | None, key: Path | None, insecure: bool) -> Any:
    """The bank's CA and this party's client certificate (mutual TLS), or None with --insecure."""
    from proto.channel import ClientTls

    if insecure:
        if ca or cert or key:
            raise IotError("--insecure and --ca/--cert/--key exclude each other")
        return None
    if ca is None or cert is None or key is None:
        raise IotError(
            "the bank's services require mutual TLS: give --ca (the bank's ca.crt), --cert and --key "
            "(a certificate from `yinqi bank certs issue`), or --insecure for a plaintext loopback bank"
        )
    return ClientTls(ca, cert, key)


@contextmanager
def stop_signals() -> Iterator[threading.Event]:
    """An event set by SIGTERM or SIGINT, so a command stops through its clean-up path."""
    stop = threading.Event()
    handlers = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        handlers[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        yield stop
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def wait_for_stop(stop: threading.Event, duration: float | None, *also: threading.Event) -> None:
    """Until a signal, `duration` seconds, or one of `also` is set."""
    waited = 0.0
    while not stop.is_set() and not any(e.is_set() for e in also):
        if duration is not None and waited >= duration:
            return
        stop.wait(0.1 if duration is None else min(0.1, duration - waited))
        waited += 0.1


# ----- commands ----------------------------------------------------------------------------------


@iot_app.command("simulate")
def simulate(
    devices: str = typer.Option("10", "--devices", metavar="N", help="Number of simulated machines."),
    rate: str = typer.Option("50", "--rate", metavar="MSG/S", help="Messages per second, whole fleet."),
    broker: str = typer.Option("mqtt://127.0.0.1:1883", "--broker", help="Broker URL, mqtt://host:port or mqtts://."),
    anomalies: str = typer.Option(
        "idle,geofence,fuel",
        "--anomalies",
        help="Comma-separated anomalies to inject (idle, geofence, fuel); '' for none.",
    ),
    duration: str | None = typer.Option(None, "--duration", metavar="SECONDS", help="Stop after this many seconds."),
    ticks: str | None = typer.Option(
        None, "--ticks", metavar="N", help="Stop after this many readings per machine (default 100 without --duration)."
    ),
    step_minutes: str = typer.Option(
        "30", "--step-minutes", metavar="MINUTES", help="Device time between two readings of a machine."
    ),
    start: str = typer.Option(
        "2026-03-01T00:00:00+00:00", "--start", help="Device time of the first reading (ISO 8601, UTC)."
    ),
    seed: str = typer.Option("7", "--seed", metavar="N", help="Random seed (same seed, same fleet)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Publish realistic telemetry (QoS 1) with injected idle, geofence and fuel anomalies."""
    from datetime import datetime, timedelta

    from iot.simulate import Fleet, publish

    n_devices = whole(devices, "--devices", low=1, high=100_000)
    msg_rate = number(rate, "--rate", low=0, high=1e6, strict_low=True)
    step = number(step_minutes, "--step-minutes", low=0, high=60 * 24 * 31, strict_low=True)
    n_ticks = None if ticks is None else whole(ticks, "--ticks", low=1)
    seconds = duration_of(duration)
    try:
        start_ts = datetime.fromisoformat(start)
    except ValueError:
        raise IotError(f"--start '{start}': expected ISO 8601, e.g. 2026-03-01T00:00:00+00:00") from None
    if start_ts.tzinfo is None:
        raise IotError(f"--start '{start}': give a timezone, e.g. +00:00")
    chosen = tuple(a.strip() for a in anomalies.split(",") if a.strip())
    fleet = Fleet(
        devices=n_devices,
        anomalies=chosen,
        start=start_ts,
        step=timedelta(minutes=step),
        seed=whole(seed, "--seed", low=0),
    )
    if n_ticks is None and seconds is None:
        n_ticks = 100
    with console.status("publishing telemetry") as status:
        acked = publish(
            fleet,
            broker,
            rate=msg_rate,
            ticks=n_ticks,
            duration=seconds,
            on_progress=lambda t, n: status.update(f"tick {t}: {n} messages published"),
        )
    injected = {m.device_id: m.anomaly for m in fleet.machines if m.anomaly}
    if as_json:
        print(json.dumps({"acknowledged": acked, "devices": n_devices, "broker": broker, "anomalies": injected}))
        return
    console.print(f"published {acked} messages from {n_devices} machines to {broker}; anomalies: {injected or 'none'}")


@iot_app.command("monitor")
def monitor(
    broker: str = typer.Option(
        "mqtt://127.0.0.1:1883", "--broker", help="Broker URL (mqtt:// or mqtts://, user:pass@ allowed)."
    ),
    bank: str | None = typer.Option(
        None, "--bank", help="The bank's AlertService, HOST:PORT; without it alerts stay queued."
    ),
    ca: Path | None = typer.Option(None, "--ca", help=f"CA certificate of {BANK_TLS}."),
    cert: Path | None = typer.Option(
        None, "--cert", help=f"This monitor's client certificate (role iot-monitor) for {BANK_TLS}."
    ),
    key: Path | None = typer.Option(None, "--key", help=f"This monitor's client key for {BANK_TLS}."),
    insecure: bool = typer.Option(
        False, "--insecure", help="Deliver to the bank in plaintext (a loopback `bank serve --insecure` only)."
    ),
    rules: Path | None = typer.Option(None, "--rules", help="Rules TOML (default: the shipped iot/rules.toml)."),
    formats: Path | None = typer.Option(
        None, "--formats", help="telemetry.toml mapping other vendors' messages (yinqi's and the seed's are built in)."
    ),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    client_id: str = typer.Option("yinqi-iot-monitor", "--client-id", help="Fixed MQTT client id (keeps the session)."),
    protocol: str = typer.Option("3.1.1", "--protocol", help="MQTT protocol: 3.1.1 or 5."),
    ca_certs: Path | None = typer.Option(None, "--ca-certs", help="CA bundle for the broker's TLS."),
    certfile: Path | None = typer.Option(None, "--certfile", help="Client certificate for the broker's TLS."),
    keyfile: Path | None = typer.Option(None, "--keyfile", help="Client key for the broker's TLS."),
    username: str | None = typer.Option(None, "--username", help="Broker user name."),
    password: str | None = typer.Option(
        None, "--password", envvar="YINQI_MQTT_PASSWORD", help="Broker password (or YINQI_MQTT_PASSWORD)."
    ),
    clock: str = typer.Option(
        "wall",
        "--clock",
        help="'wall' (real time) or 'event' (the fleet's median telemetry time: replays, simulations).",
    ),
    sweep: str = typer.Option("1", "--sweep", metavar="SECONDS", help="Seconds between idle sweeps."),
    connect_timeout: str = typer.Option(
        "10", "--connect-timeout", metavar="SECONDS", help="Give up when the broker does not answer in this time."
    ),
    duration: str | None = typer.Option(
        None, "--duration", metavar="SECONDS", help="Stop after this many seconds (default: until Ctrl-C or SIGTERM)."
    ),
    ready_file: Path | None = typer.Option(
        None,
        "--ready-file",
        help="Write this file (JSON: pid, broker, client id) once subscribed, so telemetry published from then on "
        "is taken; removed when the monitor stops. Scripts wait for it instead of sleeping.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the closing summary as JSON."),
) -> None:
    """Subscribe to device/+/data, apply the rules, raise and clear alerts, deliver them to the bank.

    SIGTERM or Ctrl-C drains: what was read is judged, stored and acknowledged, pending alerts get a few seconds to reach the bank, then the summary is printed.
    """
    from iot.formats import load_formats
    from iot.lease import MonitorLease
    from iot.monitor import EventClock, Monitor, utc_now
    from iot.mqtt import MqttMonitor, parse_broker
    from iot.outbox import Deliverer
    from iot.rules import load_rules

    choice(clock, "--clock", ("wall", "event"))
    choice(protocol, "--protocol", ("3.1.1", "5"))
    sweep_s = number(sweep, "--sweep", low=0, high=3600, strict_low=True)
    wait_s = number(connect_timeout, "--connect-timeout", low=0, high=3600, strict_low=True)
    seconds = duration_of(duration)
    address = parse_broker(broker)
    rule_set = load_rules(rules)
    vendor_formats = load_formats(formats)
    if bank is None and (ca or cert or key or insecure):
        raise IotError("--ca, --cert, --key and --insecure are for --bank; give --bank HOST:PORT too")
    tls = _bank_tls(ca, cert, key, insecure) if bank else None
    store = _store(db)
    deliverer = Deliverer(store, bank, tls=tls, insecure=insecure) if bank else None
    core = Monitor(
        store,
        rule_set,
        clock=EventClock() if clock == "event" else utc_now,
        on_events=deliverer.wake if deliverer else None,
        formats=vendor_formats,
    )
    client = MqttMonitor(
        core,
        broker,
        client_id=client_id,
        protocol=protocol,
        ca_certs=str(ca_certs) if ca_certs else None,
        certfile=str(certfile) if certfile else None,
        keyfile=str(keyfile) if keyfile else None,
        username=username,
        password=password,
        sweep_interval=sweep_s,
        lease=MonitorLease(store.engine, f"{client_id}@{address.host}:{address.port}"),
    )
    with stop_signals() as stop:
        client.start()
        try:
            if deliverer is not None:
                deliverer.start()
            client.wait_connected(wait_s)
            if ready_file is not None:
                _write_ready(ready_file, client.address.url, client_id, bank)
            if not as_json:
                console.print(
                    f"monitoring device/+/data on {client.address.url} as '{client_id}'"
                    f"{'; delivering to ' + bank if bank else '; no --bank: alerts stay in the outbox'}"
                )
            wait_for_stop(stop, seconds, client.stopped)
        finally:
            if ready_file is not None:
                ready_file.unlink(missing_ok=True)
            client.stop()  # drains: handled messages acknowledged, state flushed, lease released
            if deliverer is not None:
                deliverer.drain(5.0)
                deliverer.stop()
    if client.failure:
        raise IotError(client.failure)
    summary = _summary(core.stats, store.outbox_counts(), deliverer)
    if as_json:
        print(json.dumps(summary, sort_keys=True))
        return
    console.print(
        f"received {summary['received']}, processed {summary['processed']}, duplicates {summary['duplicates']}, "
        f"late {summary['late']}, dead letters {summary['dead_letters']}, alerts raised {summary['alerts_raised']}, "
        f"cleared {summary['alerts_cleared']}; outbox {summary['outbox']}"
        + (f"; last delivery error: {summary['last_error']}" if summary.get("last_error") else "")
        + (
            f"; {summary['outbox']['refused']} alert event(s) refused by the bank: see `yinqi iot deadletters`"
            if summary["outbox"]["refused"]
            else ""
        )
    )


def _write_ready(path: Path, broker: str, client_id: str, bank: str | None) -> None:
    """Whole or absent: a waiting script never reads half of it."""
    import os

    state = {"pid": os.getpid(), "broker": broker, "client_id": client_id, "subscribed": "device/+/data", "bank": bank}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(state, sort_keys=True) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        raise IotError(f"--ready-file {path}: cannot write it ({exc.strerror})") from None


def _summary(stats: Any, outbox: dict[str, int], deliverer: Any) -> dict[str, Any]:
    keys = ("received", "processed", "duplicates", "late", "dead_letters", "alerts_raised", "alerts_cleared")
    summary: dict[str, Any] = {k: int(stats[k]) for k in keys}
    summary["outbox"] = outbox
    if deliverer is not None:
        summary["delivered"] = deliverer.delivered
        summary["refused"] = deliverer.refused
        summary["last_error"] = deliverer.last_error if outbox["pending"] else None
    return summary


@iot_app.command("alerts")
def alerts(
    bank: str | None = typer.Option(
        None, "--bank", help="Ask the bank's AlertService at HOST:PORT instead of the local store."
    ),
    ca: Path | None = typer.Option(None, "--ca", help=f"CA certificate of {BANK_TLS}."),
    cert: Path | None = typer.Option(
        None, "--cert", help=f"Client certificate (role operator or auditor) for {BANK_TLS}."
    ),
    key: Path | None = typer.Option(None, "--key", help=f"Client key for {BANK_TLS}."),
    insecure: bool = typer.Option(
        False, "--insecure", help="Ask the bank in plaintext (a loopback `bank serve --insecure` only)."
    ),
    device: str = typer.Option("", "--device", help="Only this device."),
    state: str = typer.Option("", "--state", help="Only raised or cleared alerts."),
    limit: str = typer.Option("0", "--limit", metavar="N", help="At most this many (0: all)."),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON lines instead of a table."),
    map_png: Path | None = typer.Option(
        None, "--map", help="Also write a PNG map: the local store's devices over the geofence, these alerts in red."
    ),
    rules: Path | None = typer.Option(
        None, "--rules", help="Rules TOML whose geofence --map draws (default: shipped)."
    ),
) -> None:
    """List alerts, from the bank (--bank) or from the monitor's local store."""
    if state:
        choice(state, "--state", ("raised", "cleared"))
    most = whole(limit, "--limit", low=0)
    if not bank and (ca or cert or key or insecure):
        raise IotError("--ca, --cert, --key and --insecure are for --bank; give --bank HOST:PORT too")
    if bank:
        from proto import alerts_pb2, alerts_pb2_grpc
        from proto.channel import call, connect

        found: list[Any] = []
        with connect(bank, _bank_tls(ca, cert, key, insecure), insecure=insecure) as channel:
            stub, after = alerts_pb2_grpc.AlertServiceStub(channel), ""
            while True:  # a page at a time, until the bank has no more or --limit is reached
                wanted = most - len(found) if most else 0
                request = alerts_pb2.ListRequest(device_id=device, state=state, limit=wanted, after=after)
                page = call(stub.List, request, timeout=30)
                found.extend(page.alerts)
                after = page.next
                if not after or (most and len(found) >= most):
                    break
        rows = [
            {
                "id": a.id,
                "device_id": a.device_id,
                "rule": a.rule,
                "severity": a.severity,
                "state": a.state,
                "raised_at": a.raised_at,
                "cleared_at": a.cleared_at or None,
                "evidence": json.loads(a.evidence_json or "{}"),
                "lease_id": a.lease_id or None,
            }
            for a in found
        ]
    else:
        rows = [a.to_dict() for a in _store(db).alerts(device or None, state or None, most)]
    if map_png is not None:
        written = _alert_map(rows, db, rules, map_png)
        (Console(stderr=True) if as_json else console).print(f"map {written}", soft_wrap=True)
    if as_json:
        for row in rows:
            print(json.dumps(row, sort_keys=True))
        return
    from yinqi.tables import readable_table

    table = readable_table(
        f"alerts ({'bank ' + bank if bank else 'local store'}): {len(rows)}",
        ("id", "device", "rule", "severity", "state", "raised at", "cleared at", "evidence"),
    )
    for r in rows:
        table.add_row(
            r["id"][:12],
            r["device_id"],
            r["rule"],
            r["severity"],
            r["state"],
            r["raised_at"],
            r["cleared_at"] or "",
            json.dumps(r["evidence"], sort_keys=True),
        )
    console.print(table)


def _alert_map(rows: list[dict[str, Any]], db: str | None, rules: Path | None, out: Path) -> Path:
    """The devices of the local store at their last position, red where one of `rows` is raised."""
    from federation.plots import device_map_png
    from iot.rules import load_rules

    raised = {r["device_id"] for r in rows if r["state"] == "raised"}
    fence = load_rules(rules).geofence
    devices = [
        {"device_id": d, "lat": row.lat, "lon": row.lon, "alert": "raised" if d in raised else "clear"}
        for d, row in sorted(_store(db).devices().items())
    ]
    box = [fence.default.lat_min, fence.default.lat_max, fence.default.lon_min, fence.default.lon_max]
    zones = [{"name": z.name, "polygon": z.polygon} for z in fence.zones]
    return device_map_png(devices, box, zones, out)


@iot_app.command("rent")
def rent(
    device: str = typer.Option(..., "--device", help="Device id."),
    month: str = typer.Option(..., "--month", help="Calendar month, YYYY-MM (UTC)."),
    schedule: Path | None = typer.Option(
        None, "--schedule", help="Rent schedule TOML (default: the shipped iot/rent.toml)."
    ),
    hours: str | None = typer.Option(
        None, "--hours", metavar="HOURS", help="Price these working hours instead of reading telemetry."
    ),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the statement as JSON."),
) -> None:
    """A month's usage-based rent statement for one device, from its telemetry."""
    from iot.pricing import check_month, load_schedule, statement
    from iot.telemetry import MAX_WORKING_HOURS

    check_month(month)
    plan = load_schedule(schedule)
    fuel = None
    if hours is None:
        usage = _store(db).monthly_usage(device, month)
        if usage is None:
            raise IotError(f"--device {device} --month {month}: no telemetry stored for that device and month")
        worked, fuel, _ = usage
    else:
        worked = number(hours, "--hours", low=0, high=MAX_WORKING_HOURS)
    st = statement(plan, device, month, worked, fuel)
    if as_json:
        print(json.dumps(st.to_dict(), sort_keys=True))
        return
    console.print(render_statement(st))


def render_statement(st: Any) -> Table:
    """A rent statement as a table; amounts are integer minor units, shown by `federation.money`."""
    from federation.money import yuan as money

    table = Table(title=f"rent {st.device_id} {st.month} ({st.currency}): {st.hours} working hours")
    for col in ("item", "hours", "rate / h", "amount"):
        table.add_column(col, justify="right" if col != "item" else "left")
    table.add_row("base fee", "", "", money(st.base_fee))
    for ln in st.lines:
        upper = f"{ln.to_hours}" if ln.to_hours is not None else "..."
        table.add_row(f"hours {ln.from_hours}-{upper}", str(ln.hours), money(ln.rate_per_hour), money(ln.amount))
    table.add_row("[bold]total[/]", str(st.hours), money(st.effective_rate) + " eff.", f"[bold]{money(st.total)}[/]")
    return table


@iot_app.command("deadletters")
def deadletters(
    limit: str = typer.Option("20", "--limit", metavar="N", help="Show the newest this many messages."),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    requeue: bool = typer.Option(
        False,
        "--requeue",
        help="Put the alert events the bank refused back into the delivery outbox (after fixing the cause, e.g. "
        "the monitor's certificate); a running monitor delivers them.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (counts by reason and the newest messages)."),
) -> None:
    """Messages the monitor refused and alert events the bank refused, counted by reason, newest first."""
    store = _store(db)
    if requeue:
        moved = store.requeue_refused()
        if as_json:
            print(json.dumps({"requeued": moved}))
        else:
            console.print(f"requeued {moved} alert event(s) the bank had refused")
        return
    counts = store.dead_letter_counts()
    rows = store.dead_letters(whole(limit, "--limit", low=0))
    if as_json:
        print(
            json.dumps(
                {
                    "counts": counts,
                    "messages": [
                        {
                            "received_at": r.received_at.isoformat(),
                            "topic": r.topic,
                            "device_id": r.device_id,
                            "reason": r.reason,
                            "payload": r.payload.decode("utf-8", "replace"),
                        }
                        for r in rows
                    ],
                },
                sort_keys=True,
            )
        )
        return
    summary = Table(title=f"dead letters: {sum(counts.values())}")
    summary.add_column("reason")
    summary.add_column("count", justify="right")
    for reason, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        summary.add_row(reason, str(n))
    console.print(summary)
    recent = Table(title="newest")
    for col in ("received", "topic", "reason", "payload"):
        recent.add_column(col)
    for r in rows:
        recent.add_row(
            r.received_at.isoformat(timespec="seconds"), r.topic, r.reason, r.payload[:60].decode("utf-8", "replace")
        )
    console.print(recent)


@iot_app.command("broker")
def broker(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: str = typer.Option("1883", "--port", metavar="PORT", help="TCP port (0: any free port, printed)."),
    mosquitto: bool = typer.Option(
        False, "--mosquitto", help="Run a real Mosquitto (persistent) instead of the embedded broker."
    ),
    workdir: Path | None = typer.Option(None, "--workdir", help="Mosquitto's config and persistence directory."),
    duration: str | None = typer.Option(
        None, "--duration", metavar="SECONDS", help="Stop after this many seconds (default: until Ctrl-C or SIGTERM)."
    ),
) -> None:
    """Run an MQTT broker for trying things out: the embedded MQTT 3.1.1 broker (for the demo and
    one machine; in memory, no authentication), or a real Mosquitto with --mosquitto."""
    from iot.broker import Mosquitto
    from iot.mqtt_broker import EmbeddedBroker

    tcp_port = whole(port, "--port", low=0 if not mosquitto else 1, high=65535)
    seconds = duration_of(duration)
    server: Mosquitto | EmbeddedBroker = (
        Mosquitto(tcp_port, workdir, host=host) if mosquitto else EmbeddedBroker(host, tcp_port)
    )
    with stop_signals() as stop:
        server.start()
        try:
            name = f"mosquitto (pid {server.proc.pid})" if isinstance(server, Mosquitto) and server.proc else "embedded"
            console.print(f"{name} broker on {server.url}; Ctrl-C or SIGTERM stops it")
            wait_for_stop(stop, seconds)
        finally:
            server.stop()
