"""The bank's services as a real process: stopped and started again, nothing is lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import grpc

from proto import bank_pb2, bank_pb2_grpc
from server.credit.promotion import promote
from server.grpc_app import rows_to_proto
from server.registry import Registry
from tests.bank.conftest import merchant_rows
from tests.conftest import free_port
from tests.consent_helpers import report_consent

ROWS = merchant_rows([1000.0, 2000.0, 3000.0])


def _serve(url: str, store, port: int, data_dir) -> subprocess.Popen:
    env = {**os.environ, "YINQI_DATA_DIR": str(data_dir)}
    cmd = [
        sys.executable,
        "-m",
        "yinqi",
        "bank",
        "serve",
        "--address",
        f"127.0.0.1:{port}",
        "--db",
        url,
        "--models-dir",
        str(store),
    ]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _ready(port: int, deadline: float = 60.0) -> grpc.Channel:
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    grpc.channel_ready_future(channel).result(timeout=deadline)
    return channel


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)


def test_accounts_and_registry_survive_a_bank_restart(tmp_path, make_model):
    url = f"sqlite:///{tmp_path / 'bank.db'}"
    store = tmp_path / "store"
    registry = Registry(url, store)
    registry.register(make_model(0.03), anchor=False)
    promote(registry, "v1")
    report_consent(url, ["m1"])
    port = free_port()

    proc = _serve(url, store, port, tmp_path / "data")
    try:
        with _ready(port) as channel:
            credit = bank_pb2_grpc.CreditServiceStub(channel)
            opened = credit.Open(bank_pb2.OpenRequest(merchant_id="m1", rows=rows_to_proto(ROWS)), timeout=30)
            credit.Draw(bank_pb2.MoneyRequest(account_id=opened.account_id, amount_fen=123_456), timeout=30)
    finally:
        _stop(proc)

    started = time.monotonic()
    proc = _serve(url, store, port, tmp_path / "data")
    try:
        with _ready(port) as channel:
            shown = bank_pb2_grpc.CreditServiceStub(channel).Get(
                bank_pb2.AccountRequest(account_id=opened.account_id), timeout=30
            )
            scored = bank_pb2_grpc.ScoringServiceStub(channel).Score(
                bank_pb2.ScoreRequest(merchant_id="m1", rows=rows_to_proto(ROWS)), timeout=30
            )
    finally:
        _stop(proc)
    assert (shown.principal_fen, shown.limit_fen, shown.model_version) == (123_456, 400_000, "v1")
    assert scored.model_version == "v1"
    assert time.monotonic() - started < 60
