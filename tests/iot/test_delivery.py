"""The monitor's delivery against the bank's real, secured gRPC server (mutual TLS, roles):
what the bank refuses for good (INVALID_ARGUMENT, PERMISSION_DENIED) is dead-lettered with its
reason and delivery goes on; what may pass later (UNAVAILABLE) stays queued and is retried;
refused events can be put back once the cause is fixed."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from federation.waiting import free_port, wait_until
from iot.alerts import Alert, alert_id
from iot.outbox import Deliverer
from iot.store import REFUSED_BY_BANK, IotStore
from proto.channel import ClientTls
from server.security.ca import CertificateAuthority

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


def event(device: str, severity: str = "critical") -> Alert:
    return Alert(
        id=alert_id(device, "geofence", T0),
        device_id=device,
        rule="geofence",
        severity=severity,
        state="raised",
        raised_at=T0,
        evidence={"lat": 35.0, "lon": 125.0},
    )


@dataclass
class Bank:
    address: str
    db: str
    ca: CertificateAuthority

    def tls(self, name: str) -> ClientTls:
        issued = next(i for i in self.ca.issued() if i.name == name)
        return ClientTls(self.ca.server.ca, Path(issued.cert), issued.key)

    def stored(self) -> list[str]:
        from server.alerts.store import AlertStore
        from server.db import bank_engine

        return sorted(r.device_id for r in AlertStore(bank_engine(self.db)).list())


@pytest.fixture
def bank(tmp_path: Path) -> Iterator[Bank]:
    """The bank's gRPC server as `bank serve --certs` runs it, with a monitor's and an auditor's
    certificate from its CA."""
    from server.grpc_app import build_server

    ca = CertificateAuthority.create(tmp_path / "certs")
    ca.issue("monitor-1", "iot-monitor")
    ca.issue("auditor-1", "auditor")
    db = f"sqlite:///{tmp_path / 'bank.db'}"
    server = build_server("127.0.0.1:0", db, ca.server, tmp_path / "models")
    server.start()
    try:
        yield Bank(f"127.0.0.1:{server.bound_port}", db, ca)
    finally:
        server.stop(0)


@pytest.fixture
def store(tmp_path: Path) -> IotStore:
    return IotStore(f"sqlite:///{tmp_path / 'iot.db'}")


def test_an_event_the_bank_finds_invalid_is_dead_lettered_and_the_next_one_delivered(bank, store) -> None:
    store.record_alerts([event("exc-1", severity="catastrophic"), event("exc-2")])
    deliverer = Deliverer(store, bank.address, tls=bank.tls("monitor-1"), min_backoff=0.05).start()
    try:
        wait_until(lambda: store.outbox_counts()["pending"] == 0, timeout=30, what="the outbox to empty")
    finally:
        deliverer.stop()
    assert store.outbox_counts() == {"total": 2, "pending": 0, "delivered": 1, "refused": 1}
    assert (deliverer.refused, deliverer.delivered, deliverer.failures) == (1, 1, 0)  # no retry of it
    assert bank.stored() == ["exc-2"]
    [dead] = store.dead_letters()
    assert (dead.topic, dead.device_id) == (REFUSED_BY_BANK, "exc-1")
    assert dead.reason.startswith("the bank refused the alert event (INVALID_ARGUMENT): ")
    assert "severity 'catastrophic'" in dead.reason
    assert json.loads(dead.payload)["id"] == event("exc-1").id  # the whole event is kept


def test_a_wrong_role_is_dead_lettered_with_the_reason_and_requeued_once_fixed(bank, store) -> None:
    store.record_alerts([event("exc-1")])
    wrong = Deliverer(store, bank.address, tls=bank.tls("auditor-1"), min_backoff=0.05).start()
    try:
        wait_until(lambda: store.outbox_counts()["refused"] == 1, timeout=30, what="the refusal")
    finally:
        wrong.stop()
    [dead] = store.dead_letters()
    assert "(PERMISSION_DENIED): auditor-1 (auditor) may not call AlertService/Deliver" in dead.reason
    assert bank.stored() == [] and wrong.failures == 0

    assert store.requeue_refused() == 1  # the monitor got its iot-monitor certificate
    assert store.dead_letters() == [] and store.outbox_counts()["pending"] == 1
    right = Deliverer(store, bank.address, tls=bank.tls("monitor-1"), min_backoff=0.05).start()
    try:
        assert right.drain(30)
    finally:
        right.stop()
    assert bank.stored() == ["exc-1"]
    assert store.outbox_counts() == {"total": 1, "pending": 0, "delivered": 1, "refused": 0}


def test_an_unreachable_bank_keeps_the_event_queued_and_retries(tmp_path, store) -> None:
    ca = CertificateAuthority.create(tmp_path / "certs")
    monitor = ca.issue("monitor-1", "iot-monitor")
    store.record_alerts([event("exc-1")])
    deliverer = Deliverer(
        store,
        f"127.0.0.1:{free_port()}",
        tls=ClientTls(ca.server.ca, Path(monitor.cert), monitor.key),
        min_backoff=0.05,
        max_backoff=0.1,
    ).start()
    try:
        wait_until(lambda: deliverer.failures >= 3, timeout=30, what="three attempts")
    finally:
        deliverer.stop()
    assert (deliverer.last_error or "").startswith("UNAVAILABLE")
    assert store.outbox_counts() == {"total": 1, "pending": 1, "delivered": 0, "refused": 0}
    assert store.dead_letters() == []


def test_deadletters_requeue_on_the_command_line(store) -> None:
    store.record_alerts([event("exc-1")])
    [(seq, _)] = store.pending()
    assert store.refuse(seq, "the bank refused the alert event (INVALID_ARGUMENT): test")
    db = str(store.engine.url)
    shown = subprocess.run(
        [sys.executable, "-m", "yinqi", "iot", "deadletters", "--db", db, "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert [m["topic"] for m in json.loads(shown.stdout)["messages"]] == [REFUSED_BY_BANK]
    moved = subprocess.run(
        [sys.executable, "-m", "yinqi", "iot", "deadletters", "--requeue", "--db", db, "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert moved.returncode == 0, moved.stderr
    assert json.loads(moved.stdout) == {"requeued": 1}
    assert [a.device_id for _, a in store.pending()] == ["exc-1"]
