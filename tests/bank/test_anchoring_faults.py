"""Nothing stored without its anchor (issue 11): an alert's row and a model version are written
in the same transaction as their anchor leaf. For each hand-off: the enqueue fails, the process
dies between the two writes (a real `yinqi` process killed with SIGKILL at a fault point), and
the retry comes: afterwards there is exactly one record and exactly one anchor leaf."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from sqlalchemy import func, select

from contracts.outbox import AnchorLeaf, AnchorOutbox
from federation.storage import session_scope
from proto import alerts_pb2, alerts_pb2_grpc
from server import faults
from server.alerts import serve
from server.alerts.store import AlertStore, BankAlertRow
from server.db import bank_engine
from server.registry import ModelVersion, Registry
from tests.conftest import free_port

RAISED = dict(
    id="a1",
    device_id="exc-1",
    rule="geofence",
    severity="critical",
    state="raised",
    raised_at="2026-03-02T08:10:00+00:00",
    cleared_at="",
    evidence_json='{"lat":35.0,"lon":121.0}',
    lease_id="L-1",
)
CLEARED = {**RAISED, "state": "cleared", "cleared_at": "2026-03-02T09:00:00+00:00"}


def leaves(url: str, kind: str) -> list[str]:
    with session_scope(bank_engine(url)) as s:
        return sorted(s.scalars(select(AnchorLeaf.ref).where(AnchorLeaf.kind == kind)))


def alert_rows(url: str) -> int:
    with session_scope(bank_engine(url)) as s:
        return int(s.scalar(select(func.count()).select_from(BankAlertRow)) or 0)


def versions(url: str) -> list[str]:
    with session_scope(bank_engine(url)) as s:
        return list(s.scalars(select(ModelVersion.version)))


def _env(tmp_path: Path, fault: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YINQI_")}
    env["YINQI_DATA_DIR"] = str(tmp_path / "data")
    if fault:
        env[faults.ENV] = fault
    return env


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'bank.db'}"


@pytest.fixture
def intake(url: str) -> Iterator[alerts_pb2_grpc.AlertServiceStub]:
    address = f"127.0.0.1:{free_port()}"
    server = serve(address, url)
    with grpc.insecure_channel(address) as channel:
        yield alerts_pb2_grpc.AlertServiceStub(channel)
    server.stop(0)


# ----- alerts -----------------------------------------------------------------------------------
def test_alert_enqueue_fails_then_the_retry_stores_it_with_one_leaf(intake, url, monkeypatch) -> None:
    def broken(*_args: object, **_kw: object) -> str:
        raise OSError("disk full")

    monkeypatch.setattr(AnchorOutbox, "enqueue", broken)
    with pytest.raises(grpc.RpcError) as failed:
        intake.Deliver(alerts_pb2.Alert(**RAISED), timeout=10)
    assert failed.value.code() == grpc.StatusCode.INTERNAL
    assert failed.value.details() == (
        "internal error in AlertService/Deliver (OSError); the bank's log has the details"
    )
    assert (alert_rows(url), leaves(url, "alert")) == (0, [])  # nothing half-stored
    monkeypatch.undo()

    first = intake.Deliver(alerts_pb2.Alert(**RAISED), timeout=10)  # the monitor's retry
    assert (first.accepted, first.duplicate) == (True, False)
    again = intake.Deliver(alerts_pb2.Alert(**RAISED), timeout=10)
    assert again.duplicate is True
    assert (alert_rows(url), leaves(url, "alert")) == (1, ["a1"])


def test_the_bank_dies_between_storing_an_alert_and_its_leaf_then_the_retry_comes(url, tmp_path) -> None:
    address = f"127.0.0.1:{free_port()}"
    argv = [sys.executable, "-m", "yinqi", "bank", "serve", "--insecure", "--address", address, "--db", url]
    doomed = subprocess.Popen(argv, env=_env(tmp_path, faults.ALERT_STORED), stdout=subprocess.DEVNULL)
    try:
        with grpc.insecure_channel(address) as channel:
            grpc.channel_ready_future(channel).result(timeout=60)
            with pytest.raises(grpc.RpcError) as died:
                alerts_pb2_grpc.AlertServiceStub(channel).Deliver(alerts_pb2.Alert(**RAISED), timeout=30)
        assert died.value.code() == grpc.StatusCode.UNAVAILABLE
        assert doomed.wait(timeout=30) == -signal.SIGKILL
    finally:
        if doomed.poll() is None:
            doomed.kill()
    assert (alert_rows(url), leaves(url, "alert")) == (0, [])  # the row died with its transaction

    restarted = subprocess.Popen(argv, env=_env(tmp_path), stdout=subprocess.DEVNULL)
    try:
        with grpc.insecure_channel(address) as channel:
            grpc.channel_ready_future(channel).result(timeout=60)
            stub = alerts_pb2_grpc.AlertServiceStub(channel)
            retried = stub.Deliver(alerts_pb2.Alert(**RAISED), timeout=30)
            assert (retried.accepted, retried.duplicate) == (True, False)
            assert stub.Deliver(alerts_pb2.Alert(**CLEARED), timeout=30).duplicate is False
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(timeout=30)
    assert (alert_rows(url), leaves(url, "alert")) == (1, ["a1", "a1:cleared"])


def test_a_redelivery_queues_a_leaf_missing_from_an_alert_stored_without_one(intake, url) -> None:
    store = AlertStore(bank_engine(url))
    store.intake(dict(RAISED))  # as the intake did before it was atomic: the row, no leaf
    store.intake(dict(CLEARED))
    assert leaves(url, "alert") == []
    assert intake.Deliver(alerts_pb2.Alert(**CLEARED), timeout=10).duplicate is True
    assert leaves(url, "alert") == ["a1", "a1:cleared"]
    intake.Deliver(alerts_pb2.Alert(**RAISED), timeout=10)
    assert leaves(url, "alert") == ["a1", "a1:cleared"]


# ----- models -----------------------------------------------------------------------------------
def test_model_enqueue_fails_then_the_retry_registers_it_once_with_one_leaf(url, tmp_path, make_model, monkeypatch):
    model = make_model(0.03)

    def broken(*_args: object, **_kw: object) -> str:
        raise OSError("disk full")

    monkeypatch.setattr(AnchorOutbox, "enqueue", broken)
    with pytest.raises(OSError, match="disk full"):
        Registry(url, tmp_path / "store").register(model)
    assert (versions(url), leaves(url, "model")) == ([], [])
    monkeypatch.undo()

    row = Registry(url, tmp_path / "store").register(model)
    again = Registry(url, tmp_path / "store").register(model)
    assert (row.version, again.version, row.anchor_leaf) == ("v1", "v1", again.anchor_leaf)
    assert (versions(url), leaves(url, "model")) == (["v1"], ["v1"])


def test_registration_dies_between_the_version_and_its_leaf_then_the_retry_comes(url, tmp_path, make_model):
    model = make_model(0.03)
    argv = [sys.executable, "-m", "yinqi", "bank", "register-model", str(model), "--db", url,
            "--models-dir", str(tmp_path / "store"), "--json"]  # fmt: skip
    doomed = subprocess.run(argv, env=_env(tmp_path, faults.MODEL_STORED), capture_output=True, timeout=120)
    assert doomed.returncode == -signal.SIGKILL
    assert (versions(url), leaves(url, "model")) == ([], [])

    for _retry in range(2):
        done = subprocess.run(argv, env=_env(tmp_path), capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    assert (versions(url), leaves(url, "model")) == (["v1"], ["v1"])
    assert sorted(p.name for p in (tmp_path / "store" / "v1").iterdir()) == sorted(p.name for p in model.iterdir())


def test_registering_again_queues_a_missing_model_leaf(url, tmp_path, make_model):
    model = make_model(0.03)
    first = Registry(url, tmp_path / "store").register(model, anchor=False)
    assert first.anchor_leaf is None and leaves(url, "model") == []
    again = Registry(url, tmp_path / "store").register(model)
    assert again.version == "v1" and again.anchor_leaf is not None
    assert leaves(url, "model") == ["v1"]
