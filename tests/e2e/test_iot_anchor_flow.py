"""The documented IoT → bank → anchor → audit flow ends with alert proofs verifying (issue 11).

As docs/iot.md runs it on one machine, every step its own process in one data dir: a real
Mosquitto broker, the bank's CA with an `iot-monitor` and an operator certificate, `yinqi bank
serve --certs` (the bank's services, AlertService among them, mutual TLS and roles), `yinqi iot
monitor` delivering with its certificate (waited for through `--ready-file`, not a sleep),
`yinqi iot simulate` with injected anomalies; then `yinqi anchor flush` anchors what the bank
queued in its database, and `yinqi audit verify PROOF --data RECORD` checks each alert event's
proof on the chain, while a record changed by one byte is refused.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from federation.waiting import wait_until
from tests.conftest import free_port, require_binary

pytestmark = [pytest.mark.slow, pytest.mark.mosquitto]


def _yinqi(env: dict[str, str], *args: str, timeout: float = 180.0) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "yinqi", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def _background(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen:
    with open(log, "wb") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "yinqi", *args], env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[str]:
    binary = require_binary("mosquitto")
    port = free_port()
    config = tmp_path / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen([binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_alerts_from_the_monitor_are_anchored_and_their_proofs_verify(mosquitto: str, tmp_path: Path) -> None:
    from server.alerts.service import anchor_ref, canonical_alert
    from server.alerts.store import AlertStore, versions
    from server.db import bank_engine

    env = {k: v for k, v in os.environ.items() if not k.startswith("YINQI_")}
    env.update(YINQI_DATA_DIR=str(tmp_path / "data"), COLUMNS="200", NO_COLOR="1")
    certs = tmp_path / "certs"
    for step in (
        ("bank", "certs", "init", "--out", str(certs)),
        ("bank", "certs", "issue", "monitor-1", "--role", "iot-monitor", "--certs", str(certs)),
        ("bank", "certs", "issue", "ops", "--role", "operator", "--certs", str(certs)),
    ):
        assert _yinqi(env, *step).returncode == 0
    monitor_tls = ["--ca", str(certs / "ca.crt"), "--cert", str(certs / "clients" / "monitor-1.crt"),
                   "--key", str(certs / "clients" / "monitor-1.key")]  # fmt: skip
    operator_tls = ["--ca", str(certs / "ca.crt"), "--cert", str(certs / "clients" / "ops.crt"),
                    "--key", str(certs / "clients" / "ops.key")]  # fmt: skip
    bank = f"127.0.0.1:{free_port()}"
    services = _background(env, tmp_path / "bank.log", "bank", "serve", "--certs", str(certs), "--address", bank)
    ready = tmp_path / "monitor.ready"
    monitor = _background(
        env, tmp_path / "monitor.log",
        "iot", "monitor", "--broker", mosquitto, "--bank", bank, *monitor_tls, "--clock", "event", "--sweep", "0.05",
        "--ready-file", str(ready),
    )  # fmt: skip
    try:
        wait_until(lambda: ready.exists() or monitor.poll() is not None, timeout=90, what="the monitor's ready file")
        assert monitor.poll() is None, (tmp_path / "monitor.log").read_text()
        simulated = _yinqi(
            env, "iot", "simulate", "--devices", "5", "--rate", "400", "--broker", mosquitto,
            "--ticks", "120", "--step-minutes", "60",
        )  # fmt: skip
        assert simulated.returncode == 0, simulated.stderr
        deadline, delivered = time.monotonic() + 120, []
        while time.monotonic() < deadline:
            listed = _yinqi(env, "iot", "alerts", "--bank", bank, *operator_tls, "--json")
            delivered = [json.loads(line) for line in listed.stdout.splitlines() if line.strip()]
            if len({a["rule"] for a in delivered if a["state"] == "cleared"}) >= 3:  # every rule raised and cleared
                break
            assert monitor.poll() is None, (tmp_path / "monitor.log").read_text()
            assert services.poll() is None, (tmp_path / "bank.log").read_text()
            time.sleep(0.5)
        assert len({a["rule"] for a in delivered if a["state"] == "cleared"}) >= 3, (
            tmp_path / "monitor.log"
        ).read_text()
        refused = _yinqi(env, "iot", "alerts", "--bank", bank, *monitor_tls)  # a monitor only delivers
        assert refused.returncode == 2
        assert "monitor-1 (iot-monitor) may not call AlertService/List" in refused.stderr
    finally:
        _stop(monitor)
        _stop(services)
    assert not ready.exists()

    db = f"sqlite:///{tmp_path / 'data' / 'bank.db'}"
    events = [v for row in AlertStore(bank_engine(db)).list() for v in versions(row)]
    flushed = _yinqi(env, "anchor", "flush", "--json")
    assert flushed.returncode == 0, flushed.stderr
    proofs = {json.loads(Path(p).read_text())["ref"]: Path(p) for p in json.loads(flushed.stdout)}
    assert sorted(proofs) == sorted(anchor_ref(e) for e in events)  # every stored event, nothing else

    raised = next(e for e in events if e["state"] == "raised")
    cleared = next((e for e in events if e["state"] == "cleared"), None)
    for event in [raised] + ([cleared] if cleared else []):
        record = tmp_path / f"{anchor_ref(event).replace(':', '_')}.json"
        record.write_bytes(canonical_alert(event))
        verified = _yinqi(env, "audit", "verify", str(proofs[anchor_ref(event)]), "--data", str(record), "--json")
        assert verified.returncode == 0, verified.stderr
        result = json.loads(verified.stdout)
        assert (result["valid"], result["kind"], result["ref"]) == (True, "alert", anchor_ref(event))

    forged = tmp_path / "forged.json"
    forged.write_bytes(canonical_alert({**raised, "severity": "info"}))
    refused = _yinqi(env, "audit", "verify", str(proofs[anchor_ref(raised)]), "--data", str(forged))
    assert refused.returncode != 0
    assert len(refused.stderr.strip().splitlines()) == 1 and refused.stderr.startswith("error: ")
