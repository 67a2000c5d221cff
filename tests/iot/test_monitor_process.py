"""`yinqi iot monitor` and `yinqi iot broker` as processes: SIGTERM drains and reports, one monitor
per session, and alerts reach a bank that requires mutual TLS (issues 9, 10, 11)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from federation.processes import pid_alive
from iot.errors import IotError
from iot.lease import LeaseRow, MonitorLease
from iot.monitor import Monitor
from iot.mqtt import MqttMonitor
from iot.rules import Rules
from tests.conftest import free_port
from tests.iot.conftest import T0, FakeClock, reading, wait_for

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.mosquitto


def yinqi_process(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "yinqi", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _session(url: str, store, client_id: str) -> None:
    """Create the persistent session at the broker, so messages wait for the monitor."""
    client = MqttMonitor(Monitor(store, Rules(), clock=FakeClock()), url, client_id=client_id).start()
    try:
        client.wait_connected(30)
    finally:
        client.stop()


def _lease_held(store) -> bool:
    from federation.storage import session_scope

    with session_scope(store.engine) as s:
        return s.query(LeaseRow).count() == 1


def test_sigterm_drains_acknowledges_and_prints_the_summary(mosquitto, store, publisher) -> None:
    _session(mosquitto.url, store, "cli-monitor")
    for i in range(100):
        publisher.reading(reading("exc-1", i, lon=125.0 if i == 50 else 115.0))
    wait_for(publisher.all_acked, 10, "the broker to take the messages")
    proc = yinqi_process(
        "iot", "monitor", "--broker", mosquitto.url, "--db", str(store.engine.url), "--client-id", "cli-monitor",
        "--sweep", "0.05", "--clock", "event",  # device time is March: the wall clock would see idleness
    )  # fmt: skip
    try:
        wait_for(
            lambda: "exc-1" in store.devices() and store.devices()["exc-1"].last_ts == reading("exc-1", 99).ts,
            30,
            "the monitor to judge all 100 readings",
        )
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err  # was: killed by the signal, no summary
    assert "received 100, processed 100, duplicates 0, late 0, dead letters 0, alerts raised 1, cleared 1" in out
    assert not _lease_held(store)  # released on the way out

    successor = Monitor(store, Rules(), clock=FakeClock())
    client = MqttMonitor(successor, mosquitto.url, client_id="cli-monitor", sweep_interval=0.05).start()
    try:
        client.wait_connected(30)
        publisher.reading(reading("exc-1", 200))  # a marker: everything before it was acknowledged
        wait_for(lambda: successor.stats["processed"] == 1, 10, "the marker")
    finally:
        client.stop()
    assert successor.stats["received"] == 1  # nothing redelivered


def test_the_ready_file_appears_once_subscribed_so_the_first_message_after_it_is_taken(
    mosquitto, store, publisher, tmp_path
) -> None:
    """A brand-new client id has no session at the broker: a message published before its
    SUBSCRIBE is lost. A script that waits for --ready-file loses none."""
    import json

    ready = tmp_path / "monitor.ready"
    proc = yinqi_process(
        "iot", "monitor", "--broker", mosquitto.url, "--db", str(store.engine.url), "--client-id", "fresh-monitor",
        "--clock", "event", "--ready-file", str(ready), "--json",
    )  # fmt: skip
    try:
        wait_for(ready.exists, 30, "the monitor's ready file")
        state = json.loads(ready.read_text())
        assert (state["pid"], state["client_id"], state["subscribed"]) == (proc.pid, "fresh-monitor", "device/+/data")
        publisher.reading(reading("exc-1", 0))  # at once: no sleep, no canary
        wait_for(lambda: "exc-1" in store.devices(), 30, "the monitor to take the first reading")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert json.loads(out)["received"] == 1
    assert not ready.exists()  # removed on the way out: a stopped monitor is not ready


def test_a_second_monitor_with_the_same_client_id_is_refused(mosquitto, store) -> None:
    args = ("iot", "monitor", "--broker", mosquitto.url, "--db", str(store.engine.url), "--client-id", "twin")
    first = yinqi_process(*args)
    try:
        wait_for(lambda: _lease_held(store), 30, "the first monitor's lease")
        second = subprocess.run(
            [sys.executable, "-m", "yinqi", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert second.returncode == 2
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and f"monitor session 'twin@127.0.0.1:{mosquitto.port}' is already running" in lines[0]
        assert f"pid {first.pid} on" in lines[0]
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)
    assert first.returncode == 0


def test_two_monitors_with_one_client_id_do_not_double_the_alerts(mosquitto, store, publisher) -> None:
    def monitor() -> tuple[Monitor, MqttMonitor]:
        core = Monitor(store, Rules(), clock=FakeClock())
        lease = MonitorLease(store.engine, f"dup@{mosquitto.port}")
        return core, MqttMonitor(core, mosquitto.url, client_id="dup", sweep_interval=0.05, lease=lease)

    core, first = monitor()
    first.start()
    _, second = monitor()
    try:
        first.wait_connected(30)
        with pytest.raises(IotError, match="already running"):
            second.start()
        for i in range(100):  # every 10th reading leaves the box, the next one comes back
            publisher.reading(reading(f"exc-{i % 5}", i, lon=125.0 if i % 10 == 0 else 115.0))
        wait_for(lambda: core.stats["processed"] == 100, 15, f"100 readings (stats {dict(core.stats)})")
    finally:
        first.stop()
    events = [a.state for _, a in store.pending(limit=1000)]
    assert sorted(events) == ["cleared"] * 10 + ["raised"] * 10  # was 30 extra alerts out of 100


def test_a_lease_left_by_a_dead_process_on_this_host_is_taken_over(store) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = MonitorLease(store.engine, "crashed@broker")
    orphan.pid = int(dead.stdout)
    orphan.acquire()
    assert not pid_alive(orphan.pid)
    successor = MonitorLease(store.engine, "crashed@broker")
    successor.acquire()  # no wait for the expiry
    assert successor.current() is not None and successor.current().pid == os.getpid()  # type: ignore[union-attr]
    assert orphan.renew() is False


def test_broker_mosquitto_stops_its_mosquitto_on_sigterm(tmp_path) -> None:
    from tests.conftest import require_binary

    require_binary("mosquitto")
    port = free_port()
    proc = yinqi_process("iot", "broker", "--mosquitto", "--port", str(port), "--workdir", str(tmp_path / "mq"))
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    try:
        wait_for(lambda: children.exists() and children.read_text().split(), 30, "mosquitto to start")
        (child,) = (int(pid) for pid in children.read_text().split())
        from iot.broker import wait_port

        wait_port("127.0.0.1", port)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    wait_for(lambda: not pid_alive(child), 10, "mosquitto to exit")  # was: left running


def test_alerts_reach_a_bank_that_requires_mutual_tls_and_not_without_a_client_certificate(tmp_path, store) -> None:
    from iot.outbox import Deliverer
    from proto.channel import ClientTls
    from server.grpc_app import build_server
    from server.security.ca import CertificateAuthority

    authority = CertificateAuthority.create(tmp_path / "pki")
    monitor_cert = authority.issue("monitor-1", "iot-monitor")
    cert = Path(monitor_cert.cert)
    pki = {"ca": authority.server.ca, "client_cert": cert, "client_key": cert.with_suffix(".key")}
    bank_db = f"sqlite:///{tmp_path / 'bank.db'}"
    server = build_server("127.0.0.1:0", bank_db, tls=authority.server)
    server.start()
    address = f"127.0.0.1:{server.bound_port}"  # type: ignore[attr-defined]
    monitor = Monitor(store, Rules(), clock=FakeClock(T0))
    monitor.handle("device/exc-1/data", reading("exc-1", 0, lon=125.0).to_payload())
    try:
        stranger = Deliverer(store, address, tls=ClientTls(pki["ca"]), min_backoff=0.05).start()
        wait_for(lambda: stranger.failures >= 1, 15, "the bank to refuse a caller without a certificate")
        stranger.stop()
        assert store.outbox_counts()["pending"] == 1
        assert stranger.last_error is not None and stranger.last_error.startswith("UNAVAILABLE")

        deliverer = Deliverer(
            store, address, tls=ClientTls(pki["ca"], pki["client_cert"], pki["client_key"]), min_backoff=0.05
        ).start()
        assert deliverer.drain(15)
        deliverer.stop()
        operator = Path(authority.issue("ops-1", "operator").cert)  # a monitor only delivers; operators read
        listed = subprocess.run(
            [sys.executable, "-m", "yinqi", "iot", "alerts", "--bank", address, "--json",
             "--ca", str(pki["ca"]), "--cert", str(operator), "--key", str(operator.with_suffix(".key"))],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        server.stop(0)
    assert listed.returncode == 0, listed.stderr
    assert [line.count('"rule": "geofence"') for line in listed.stdout.splitlines()] == [1]
