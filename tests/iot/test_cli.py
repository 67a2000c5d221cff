"""`yinqi iot ...` commands: real output, one-line errors with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys

from iot.monitor import EventClock, Monitor
from iot.rules import Rules
from iot.store import IotStore
from tests.iot.conftest import reading


def yinqi(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "yinqi", *args], capture_output=True, text=True, cwd=cwd, timeout=60)


def test_rent_from_stored_telemetry(tmp_path) -> None:
    db = f"sqlite:///{tmp_path / 'iot.db'}"
    monitor = Monitor(IotStore(db), Rules(), clock=EventClock())
    for minutes, hours in [(0, 1000.0), (60 * 24 * 20, 1150.0)]:  # 150 h in March
        r = reading("exc-7", minutes, hours=hours, fuel=hours * 6)
        monitor.handle("device/exc-7/data", r.to_payload())
    monitor.flush()
    out = yinqi("iot", "rent", "--device", "exc-7", "--month", "2026-03", "--db", db, "--json")
    assert out.returncode == 0, out.stderr
    statement = json.loads(out.stdout)
    assert (statement["hours"], statement["total"]) == ("150.00", 1_900_000)  # 200000 + 1200000 + 500000
    assert statement["fuel_l"] == 900.0


def test_user_mistakes_are_one_line_errors(tmp_path) -> None:
    db = f"sqlite:///{tmp_path / 'iot.db'}"
    bad_month = yinqi("iot", "rent", "--device", "x", "--month", "March", "--db", db)
    assert bad_month.returncode == 2
    assert bad_month.stderr.strip() == "error: --month 'March': expected YYYY-MM, e.g. 2026-03"
    no_data = yinqi("iot", "rent", "--device", "x", "--month", "2026-03", "--db", db)
    assert no_data.returncode == 2
    assert "no telemetry stored" in no_data.stderr
    rules = tmp_path / "rules.toml"
    rules.write_text("[idle]\nthreshold_hours = 'soon'\n")
    bad_rules = yinqi("iot", "monitor", "--rules", str(rules), "--db", db, "--duration", "0")
    assert bad_rules.returncode == 2
    assert "rules.toml: field 'idle.threshold_hours': Input should be a valid number" in bad_rules.stderr


def test_alerts_and_deadletters_as_json(tmp_path) -> None:
    db = f"sqlite:///{tmp_path / 'iot.db'}"
    monitor = Monitor(IotStore(db), Rules(), clock=EventClock())
    monitor.handle("device/exc-1/data", reading("exc-1", 0, lon=125.0).to_payload())
    monitor.handle("device/exc-1/data", b"{oops")
    alerts = yinqi("iot", "alerts", "--db", db, "--json")
    assert [json.loads(line)["rule"] for line in alerts.stdout.splitlines()] == ["geofence"]
    dead = json.loads(yinqi("iot", "deadletters", "--db", db, "--json").stdout)
    assert dead["counts"] == {"malformed JSON": 1}
