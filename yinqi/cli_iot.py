"""`yinqi iot ...`: simulate a fleet, run the monitor, list alerts and dead letters, rent,
run a broker. Heavy imports (paho, grpc, amqtt) stay inside the commands."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

console = Console()

iot_app = typer.Typer(help="IoT equipment leasing: telemetry monitor, alerts, usage-based rent.", no_args_is_help=True)

DB_HELP = "Database of the monitor (default: YINQI_DB_URL, else iot.db in the data dir)."


def register(root: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    root.add_typer(iot_app, name="iot")


def _store(db: str | None):
    from federation.config import db_url
    from iot.store import IotStore

    return IotStore(db or db_url("iot"))


def _wait_forever_or(duration: float | None) -> None:
    deadline = None if duration is None else time.monotonic() + duration
    while deadline is None or time.monotonic() < deadline:
        time.sleep(0.2)


@iot_app.command("simulate")
def simulate(
    devices: int = typer.Option(10, "--devices", help="Number of simulated machines."),
    rate: float = typer.Option(50.0, "--rate", help="Messages per second, whole fleet."),
    broker: str = typer.Option("mqtt://127.0.0.1:1883", "--broker", help="Broker URL, mqtt://host:port or mqtts://."),
    anomalies: str = typer.Option(
        "idle,geofence,fuel",
        "--anomalies",
        help="Comma-separated anomalies to inject (idle, geofence, fuel); '' for none.",
    ),
    duration: float | None = typer.Option(None, "--duration", help="Stop after this many seconds."),
    ticks: int | None = typer.Option(
        None, "--ticks", help="Stop after this many readings per machine (default 100 without --duration)."
    ),
    step_minutes: float = typer.Option(30.0, "--step-minutes", help="Device time between two readings of a machine."),
    start: str = typer.Option(
        "2026-03-01T00:00:00+00:00", "--start", help="Device time of the first reading (ISO 8601, UTC)."
    ),
    seed: int = typer.Option(7, "--seed", help="Random seed (same seed, same fleet)."),
) -> None:
    """Publish realistic telemetry (QoS 1) with injected idle, geofence and fuel anomalies."""
    from datetime import datetime, timedelta

    from iot.errors import IotError
    from iot.simulate import Fleet, publish

    try:
        start_ts = datetime.fromisoformat(start)
    except ValueError:
        raise IotError(f"--start '{start}': expected ISO 8601, e.g. 2026-03-01T00:00:00+00:00") from None
    if start_ts.tzinfo is None:
        raise IotError(f"--start '{start}': give a timezone, e.g. +00:00")
    chosen = tuple(a.strip() for a in anomalies.split(",") if a.strip())
    fleet = Fleet(devices=devices, anomalies=chosen, start=start_ts, step=timedelta(minutes=step_minutes), seed=seed)
    if ticks is None and duration is None:
        ticks = 100
    with console.status("publishing telemetry") as status:
        acked = publish(
            fleet,
            broker,
            rate=rate,
            ticks=ticks,
            duration=duration,
            on_progress=lambda t, n: status.update(f"tick {t}: {n} messages published"),
        )
    injected = {m.device_id: m.anomaly for m in fleet.machines if m.anomaly}
    console.print(f"published {acked} messages from {devices} machines to {broker}; anomalies: {injected or 'none'}")


@iot_app.command("monitor")
def monitor(
    broker: str = typer.Option(
        "mqtt://127.0.0.1:1883", "--broker", help="Broker URL (mqtt:// or mqtts://, user:pass@ allowed)."
    ),
    bank: str | None = typer.Option(
        None, "--bank", help="The bank's AlertService, HOST:PORT; without it alerts stay queued."
    ),
    rules: Path | None = typer.Option(None, "--rules", help="Rules TOML (default: the shipped iot/rules.toml)."),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    client_id: str = typer.Option("yinqi-iot-monitor", "--client-id", help="Fixed MQTT client id (keeps the session)."),
    protocol: str = typer.Option("3.1.1", "--protocol", help="MQTT protocol: 3.1.1 or 5."),
    ca_certs: Path | None = typer.Option(None, "--ca-certs", help="CA bundle for TLS."),
    certfile: Path | None = typer.Option(None, "--certfile", help="Client certificate for TLS."),
    keyfile: Path | None = typer.Option(None, "--keyfile", help="Client key for TLS."),
    username: str | None = typer.Option(None, "--username", help="Broker user name."),
    password: str | None = typer.Option(
        None, "--password", envvar="YINQI_MQTT_PASSWORD", help="Broker password (or YINQI_MQTT_PASSWORD)."
    ),
    clock: str = typer.Option(
        "wall", "--clock", help="'wall' (real time) or 'event' (newest telemetry time: replays, simulations)."
    ),
    sweep: float = typer.Option(1.0, "--sweep", help="Seconds between idle sweeps."),
    duration: float | None = typer.Option(
        None, "--duration", help="Stop after this many seconds (default: until Ctrl-C)."
    ),
) -> None:
    """Subscribe to device/+/data, apply the rules, raise and clear alerts, deliver them to the bank."""
    from iot.errors import IotError
    from iot.monitor import EventClock, Monitor, utc_now
    from iot.mqtt import MqttMonitor
    from iot.outbox import Deliverer
    from iot.rules import load_rules

    if clock not in ("wall", "event"):
        raise IotError(f"--clock '{clock}': expected wall or event")
    rule_set = load_rules(rules)
    store = _store(db)
    deliverer = Deliverer(store, bank).start() if bank else None
    core = Monitor(
        store,
        rule_set,
        clock=EventClock() if clock == "event" else utc_now,
        on_events=deliverer.wake if deliverer else None,
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
        sweep_interval=sweep,
    ).start()
    console.print(
        f"monitoring device/+/data on {client.address.url} as '{client_id}'"
        f"{'; delivering to ' + bank if bank else '; no --bank: alerts stay in the outbox'}"
    )
    try:
        _wait_forever_or(duration)
    except KeyboardInterrupt:
        pass
    finally:
        client.stop()
        if deliverer is not None:
            deliverer.stop()
    s = core.stats
    console.print(
        f"received {s['received']}, processed {s['processed']}, duplicates {s['duplicates']}, "
        f"dead letters {s['dead_letters']}, alerts raised {s['alerts_raised']}, cleared {s['alerts_cleared']}; "
        f"outbox {store.outbox_counts()}"
    )


@iot_app.command("alerts")
def alerts(
    bank: str | None = typer.Option(
        None, "--bank", help="Ask the bank's AlertService at HOST:PORT instead of the local store."
    ),
    device: str = typer.Option("", "--device", help="Only this device."),
    state: str = typer.Option("", "--state", help="Only raised or cleared alerts."),
    limit: int = typer.Option(0, "--limit", help="At most this many (0: all)."),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON lines instead of a table."),
) -> None:
    """List alerts, from the bank (--bank) or from the monitor's local store."""
    if bank:
        import grpc

        from iot.errors import IotError
        from proto import alerts_pb2, alerts_pb2_grpc

        with grpc.insecure_channel(bank) as channel:
            try:
                reply = alerts_pb2_grpc.AlertServiceStub(channel).List(
                    alerts_pb2.ListRequest(device_id=device, state=state, limit=limit), timeout=10
                )
            except grpc.RpcError as exc:
                raise IotError(f"--bank {bank}: {exc.code().name}: {exc.details()}") from None
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
            for a in reply.alerts
        ]
    else:
        rows = [a.to_dict() for a in _store(db).alerts(device or None, state or None, limit)]
    if as_json:
        for row in rows:
            print(json.dumps(row, sort_keys=True))
        return
    table = Table(title=f"alerts ({'bank ' + bank if bank else 'local store'})")
    for col in ("id", "device", "rule", "severity", "state", "raised at", "cleared at", "evidence"):
        table.add_column(col)
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


@iot_app.command("rent")
def rent(
    device: str = typer.Option(..., "--device", help="Device id."),
    month: str = typer.Option(..., "--month", help="Calendar month, YYYY-MM (UTC)."),
    schedule: Path | None = typer.Option(
        None, "--schedule", help="Rent schedule TOML (default: the shipped iot/rent.toml)."
    ),
    hours: float | None = typer.Option(None, "--hours", help="Price these working hours instead of reading telemetry."),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the statement as JSON."),
) -> None:
    """A month's usage-based rent statement for one device, from its telemetry."""
    from iot.errors import IotError
    from iot.pricing import check_month, load_schedule, statement

    check_month(month)
    plan = load_schedule(schedule)
    fuel = None
    if hours is None:
        usage = _store(db).monthly_usage(device, month)
        if usage is None:
            raise IotError(f"--device {device} --month {month}: no telemetry stored for that device and month")
        hours, fuel, _ = usage
    st = statement(plan, device, month, hours, fuel)
    if as_json:
        print(json.dumps(st.to_dict(), sort_keys=True))
        return
    console.print(render_statement(st))


def money(amount: int) -> str:
    return f"{amount / 100:,.2f}"


def render_statement(st) -> Table:
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
    limit: int = typer.Option(20, "--limit", help="Show the newest this many messages."),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (counts by reason and the newest messages)."),
) -> None:
    """Messages the monitor refused, counted by reason, newest first."""
    store = _store(db)
    counts = store.dead_letter_counts()
    rows = store.dead_letters(limit)
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
    port: int = typer.Option(1883, "--port", help="TCP port."),
    mosquitto: bool = typer.Option(
        False, "--mosquitto", help="Run a real Mosquitto (persistent) instead of embedded amqtt."
    ),
    workdir: Path | None = typer.Option(None, "--workdir", help="Mosquitto's config and persistence directory."),
    duration: float | None = typer.Option(
        None, "--duration", help="Stop after this many seconds (default: until Ctrl-C)."
    ),
) -> None:
    """Run an MQTT broker for trying things out (embedded amqtt by default)."""
    from iot.broker import EmbeddedBroker, Mosquitto

    server = Mosquitto(port, workdir, host=host) if mosquitto else EmbeddedBroker(host, port)
    server.start()
    console.print(f"{'mosquitto' if mosquitto else 'embedded amqtt'} broker on {server.url}; Ctrl-C stops it")
    try:
        _wait_forever_or(duration)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


@iot_app.command("intake")
def intake(
    address: str = typer.Option("127.0.0.1:50061", "--address", help="HOST:PORT to serve the AlertService on."),
    db: str | None = typer.Option(
        None, "--db", help="The bank's database (default: YINQI_DB_URL, else bank.db in the data dir)."
    ),
    duration: float | None = typer.Option(
        None, "--duration", help="Stop after this many seconds (default: until Ctrl-C)."
    ),
) -> None:
    """Serve only the bank's AlertService (stand-alone intake for trying the monitor; the bank's
    full gRPC server registers it too)."""
    from federation.config import db_url
    from server.alerts import serve

    server = serve(address, db or db_url("bank"))
    console.print(f"AlertService on {address}; Ctrl-C stops it")
    try:
        _wait_forever_or(duration)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop(1)
