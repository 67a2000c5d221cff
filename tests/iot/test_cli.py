"""`yinqi iot ...` commands: real output, one-line errors with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

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


def test_rent_amounts_are_shown_from_integer_fen_without_floats() -> None:
    """2**53 + 1 fen is not a float: through one, the old formatting printed ...409.94, not .93."""
    from rich.console import Console

    from iot.pricing import Schedule, statement
    from yinqi.cli_iot import render_statement

    huge = 2**53 + 1  # 9,007,199,254,740,993 fen
    plan = Schedule.model_validate({"base_fee": huge, "tiers": [{"rate_per_hour": 12_345}]})
    console = Console(width=200, record=True)
    console.print(render_statement(statement(plan, "exc-1", "2026-03", 2)))
    text = console.export_text()
    assert "90,071,992,547,409.93" in text  # the base fee, exact
    assert "246.90" in text and "123.45" in text  # 2 h x 123.45


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


# ----- one-line errors, exit code 2 (issue 9) ----------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["monitor", "--clock", "sometimes"], "--clock 'sometimes': expected one of wall, event"),
        (["monitor", "--protocol", "4"], "--protocol '4': expected one of 3.1.1, 5"),
        (["monitor", "--sweep", "0"], "--sweep '0': expected a number greater than 0"),
        (["monitor", "--sweep", "nan"], "--sweep 'nan': expected a number greater than 0"),
        (["monitor", "--connect-timeout", "soon"], "--connect-timeout 'soon': expected a number greater than 0"),
        (["monitor", "--duration", "-1"], "--duration '-1': expected a number at least 0"),
        (["monitor", "--broker", "http://x"], "broker 'http://x': expected mqtt://host:port"),
        (["monitor", "--insecure"], "--ca, --cert, --key and --insecure are for --bank"),
        (["monitor", "--bank", "127.0.0.1:1"], "the bank's services require mutual TLS: give --ca"),
        (["monitor", "--bank", "127.0.0.1:1", "--ca", "ca.crt"], "the bank's services require mutual TLS"),
        (["monitor", "--bank", "127.0.0.1:1", "--insecure", "--ca", "ca.crt"], "--insecure and --ca/--cert/--key"),
        (["alerts", "--ca", "ca.crt"], "--ca, --cert, --key and --insecure are for --bank"),
        (["alerts", "--bank", "127.0.0.1:1", "--cert", "c.crt", "--key", "c.key"], "require mutual TLS"),
        (["simulate", "--rate", "-5"], "--rate '-5': expected a number greater than 0"),
        (["simulate", "--rate", "inf"], "--rate 'inf': expected a number greater than 0"),
        (["simulate", "--devices", "0"], "--devices '0': expected a whole number from 1 to 100000"),
        (["simulate", "--devices", "2.5"], "--devices '2.5': expected a whole number"),
        (["simulate", "--anomalies", "fire"], "--anomalies: unknown ['fire']"),
        (["rent", "--device", "x", "--month", "2026-03", "--hours", "inf"], "--hours 'inf': expected a number"),
        (["alerts", "--state", "open"], "--state 'open': expected one of raised, cleared"),
        (["alerts", "--limit", "-1"], "--limit '-1': expected a whole number from 0 up"),
        (["deadletters", "--limit", "x"], "--limit 'x': expected a whole number from 0 up"),
        (["broker", "--port", "70000"], "--port '70000': expected a whole number from 0 to 65535"),
    ],
)
def test_bad_choices_and_numbers_are_one_line_with_exit_code_2(
    tmp_path, monkeypatch, capsys, args: list[str], message: str
) -> None:
    from yinqi.cli import main

    if args[0] in ("alerts", "rent", "deadletters", "monitor"):
        args = [*args, "--db", f"sqlite:///{tmp_path / 'iot.db'}"]
    monkeypatch.setattr(sys, "argv", ["yinqi", "iot", *args])
    with pytest.raises(SystemExit) as info:
        main()  # in-process: the same entry point as the console script
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert message in lines[0]


def test_the_monitor_against_a_dead_broker_names_it_and_exits_2(tmp_path) -> None:
    from tests.conftest import free_port

    url = f"mqtt://127.0.0.1:{free_port()}"
    out = yinqi("iot", "monitor", "--broker", url, "--connect-timeout", "1", "--db", f"sqlite:///{tmp_path / 'iot.db'}")
    assert out.returncode == 2  # was: exit 0 with "received 0"
    assert out.stderr.strip().splitlines() == [
        f"error: broker {url}: not reachable within 1 s ([Errno 111] Connection refused)"
    ]
    assert "received" not in out.stdout
