"""The bank's services as a real process: stopped and started again, nothing is lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import grpc

from proto import bank_pb2, bank_pb2_grpc
from proto.channel import connect
from tests.conftest import free_port


def _serve(url: str, store, port: int, data_dir, certs) -> subprocess.Popen:
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
        "--certs",
        str(certs),
    ]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _ready(port: int, tls, deadline: float = 60.0) -> grpc.Channel:
    channel = connect(f"127.0.0.1:{port}", tls)
    grpc.channel_ready_future(channel).result(timeout=deadline)
    return channel


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)


def test_accounts_and_registry_survive_a_bank_restart(tmp_path, bank_db, pki):
    url, store = bank_db, tmp_path / "store"
    port = free_port()

    proc = _serve(url, store, port, tmp_path / "data", pki.directory)
    try:
        with _ready(port, pki.tls("ops")) as channel:
            credit = bank_pb2_grpc.CreditServiceStub(channel)
            opened = credit.Open(bank_pb2.OpenRequest(merchant_id="m1"), timeout=30)
            credit.Draw(bank_pb2.MoneyRequest(account_id=opened.account_id, amount_fen=123_456), timeout=30)
    finally:
        _stop(proc)

    started = time.monotonic()
    proc = _serve(url, store, port, tmp_path / "data", pki.directory)
    try:
        with _ready(port, pki.tls("ops")) as channel:
            shown = bank_pb2_grpc.CreditServiceStub(channel).Get(
                bank_pb2.AccountRequest(account_id=opened.account_id), timeout=30
            )
            scored = bank_pb2_grpc.ScoringServiceStub(channel).Score(
                bank_pb2.ScoreRequest(merchant_id="m1"), timeout=30
            )
    finally:
        _stop(proc)
    assert (shown.principal_fen, shown.limit_fen, shown.model_version) == (123_456, 400_000, "v1")
    assert scored.model_version == "v1"
    assert time.monotonic() - started < 60
