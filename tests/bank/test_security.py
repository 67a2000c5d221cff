"""Identity and roles on every bank service (issue 10), with every party a separate process.

The bank runs `yinqi bank serve --certs` (mutual TLS, roles per RPC) as its own process, its CA
made and its certificates issued and revoked with `yinqi bank certs …`. Each caller is
`python -m tests.bank.attacker` with only the credentials it holds; it tries every attack of the
issue (invented features, a line at the maximum, a 1,000,000.00 draw, reading an account,
listing alerts, a fake alert with a 100 KB device id and a non-date, reporting for another
platform; reviewing limits, moving the bank's clock, lifting a hold, reading the book) on the
RPCs. An outsider with only `ca.crt`, another CA's certificate and a
plaintext caller get no further than the TLS handshake; a revoked certificate is refused with
UNAUTHENTICATED, a wrong role with PERMISSION_DENIED; none of it changes anything; the right
roles succeed; the call log names who did what.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from proto import alerts_pb2, alerts_pb2_grpc
from proto.channel import ClientTls, connect
from tests.bank.conftest import PARTIES, merchant_rows, write_model
from tests.conftest import free_port

pytestmark = pytest.mark.slow  # a bank process and ~15 caller processes: about a minute

ALL = (
    "score_invented",
    "score",
    "score_batch",
    "open_max",
    "draw_million",
    "repay",
    "accrue",
    "read_account",
    "list_alerts",
    "fake_alert",
    "report_consent",
    "report_features",
    "report_implausible",
    "review",
    "advance_clock",
    "set_clock",
    "unfreeze",
    "read_metrics",
    "read_clock",
)
DENIED = "PERMISSION_DENIED"


@dataclass
class Bank:
    root: Path
    env: dict[str, str]
    certs: Path
    other: Path
    address: str
    url: str
    account: str
    proc: subprocess.Popen

    def cli(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [sys.executable, "-m", "yinqi", *args], env=self.env, capture_output=True, text=True, timeout=120
        )
        if ok:
            assert done.returncode == 0, f"yinqi {' '.join(args)}: {done.stderr}"
        return done

    def party(self, name: str, certs: Path | None = None) -> list[str]:
        certs = certs or self.certs
        return ["--ca", str(self.certs / "ca.crt"), "--cert", str(certs / "clients" / f"{name}.crt"),
                "--key", str(certs / "clients" / f"{name}.key")]  # fmt: skip

    def attack(self, *credentials: str) -> dict[str, dict[str, str]]:
        done = subprocess.run(
            [sys.executable, "-m", "tests.bank.attacker", "--bank", self.address, "--account", self.account,
             *credentials],
            capture_output=True, text=True, timeout=120, env=self.env,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def codes(self, *credentials: str) -> dict[str, str]:
        return {name: result["code"] for name, result in self.attack(*credentials).items()}

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table of the bank but the call log."""
        engine = create_engine(self.url)
        try:
            with engine.connect() as conn:
                tables = [r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))]
                return {
                    t: [tuple(r) for r in conn.execute(text(f'SELECT * FROM "{t}" ORDER BY 1'))]
                    for t in sorted(tables)
                    if t != "bank_call_log"
                }
        finally:
            engine.dispose()

    def calls(self) -> list[dict[str, Any]]:
        return json.loads(self.cli("bank", "calls", "--limit", "0", "--db", self.url, "--json").stdout)


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bank]:
    root = tmp_path_factory.mktemp("security")
    env = {k: v for k, v in os.environ.items() if not k.startswith("YINQI_")}
    env.update(YINQI_DATA_DIR=str(root / "bank-data"), COLUMNS="200", NO_COLOR="1")
    certs, other, url = root / "certs", root / "other-ca", f"sqlite:///{root / 'bank.db'}"
    bank = Bank(root, env, certs, other, f"127.0.0.1:{free_port()}", url, "", None)  # type: ignore[arg-type]
    bank.cli("bank", "certs", "init", "--out", str(certs))
    for name, role in {**PARTIES, "revoked-op": "operator", "late-op": "operator"}.items():
        bank.cli("bank", "certs", "issue", name, "--role", role, "--certs", str(certs))
    bank.cli("bank", "certs", "revoke", "revoked-op", "--certs", str(certs), "--reason", "laptop lost")
    bank.cli("bank", "certs", "init", "--out", str(other))
    bank.cli("bank", "certs", "issue", "ops", "--role", "operator", "--certs", str(other))
    store = root / "store"
    bank.cli("bank", "register-model", str(write_model(root / "model", 0.03)), "--db", url, "--models-dir", str(store))
    bank.cli("bank", "promote", "v1", "--db", url)
    bank.proc = subprocess.Popen(
        [sys.executable, "-m", "yinqi", "bank", "serve", "--address", bank.address, "--db", url,
         "--models-dir", str(store), "--certs", str(certs)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        tls = ClientTls(certs / "ca.crt", certs / "clients" / "ops.crt", certs / "clients" / "ops.key")
        with connect(bank.address, tls) as channel:
            grpc.channel_ready_future(channel).result(timeout=60)
        # platform-1 grants consent for m1 in its own books and reports it with its features
        features = root / "features.csv"
        frame = pd.DataFrame(merchant_rows([1000.0, 2000.0, 3000.0]))
        frame.insert(0, "merchant_id", "m1")
        frame.to_csv(features, index=False)
        platform_db = f"sqlite:///{root / 'platform-1.db'}"
        bank.cli("client", "consent", "grant", "m1", "--db", platform_db)
        bank.cli("client", "consent", "report", "--bank", bank.address, *bank.party("platform-1"),
                 "--db", platform_db, "--features", str(features))  # fmt: skip
        opened = bank.cli("bank", "credit", "open", "--merchant", "m1", "--bank", bank.address,
                          *bank.party("ops"), "--json")  # fmt: skip
        bank.account = json.loads(opened.stdout)["account_id"]
        yield bank
    finally:
        bank.proc.send_signal(signal.SIGTERM)
        bank.proc.wait(timeout=30)


def test_an_outsider_with_only_ca_crt_reaches_no_rpc_and_changes_nothing(bank: Bank) -> None:
    before = bank.snapshot()
    results = bank.attack("--ca", str(bank.certs / "ca.crt"))
    assert {name: r["code"] for name, r in results.items()} == dict.fromkeys(ALL, "UNAVAILABLE")
    plaintext = bank.codes("--insecure")
    assert plaintext == dict.fromkeys(ALL, "UNAVAILABLE")
    assert bank.snapshot() == before


def test_a_certificate_from_another_ca_is_refused(bank: Bank) -> None:
    before = bank.snapshot()
    assert bank.codes(*bank.party("ops", bank.other)) == dict.fromkeys(ALL, "UNAVAILABLE")
    assert bank.snapshot() == before


def test_a_revoked_certificate_is_refused_with_one_line_and_logged(bank: Bank) -> None:
    before = bank.snapshot()
    results = bank.attack(*bank.party("revoked-op"))
    assert {name: r["code"] for name, r in results.items()} == dict.fromkeys(ALL, "UNAUTHENTICATED")
    details = results["draw_million"]["details"]
    assert details.startswith("certificate serial ") and details.endswith(
        " of revoked-op (operator) was revoked at " + details.rsplit(" ", 1)[-1]
    )
    assert bank.snapshot() == before
    logged = [c for c in bank.calls() if c["caller"] == "revoked-op"]
    assert {c["status"] for c in logged} == {"UNAUTHENTICATED"} and len(logged) == len(ALL)


def test_wrong_roles_are_refused_and_change_nothing(bank: Bank) -> None:
    before = bank.snapshot()
    platform2 = bank.attack(*bank.party("platform-2"))
    assert {name: r["code"] for name, r in platform2.items()} == {
        **dict.fromkeys(ALL, DENIED),
        "report_implausible": "INVALID_ARGUMENT",  # its own new merchant, but -1e6 is not a sale
    }
    assert platform2["draw_million"]["details"] == (
        "platform-2 (platform) may not call CreditService/Draw; it is open to operator"
    )
    assert platform2["read_account"]["details"] == (
        f"credit account '{bank.account}' is not a line of one of platform-2's merchants"
    )
    assert platform2["report_features"]["details"] == (
        "merchant 'm1' belongs to platform 'platform-1'; platform-2 may report and read only its own merchants"
    )
    assert platform2["report_implausible"]["details"] == (
        "merchant 'm9', row 1: feature 'amount' is -1e+06; expected 0 to 1e+12"
    )
    monitor = bank.codes(*bank.party("monitor-1"))
    assert monitor == {**dict.fromkeys(ALL, DENIED), "fake_alert": "INVALID_ARGUMENT"}
    fake = bank.attack(*bank.party("monitor-1"))["fake_alert"]["details"]
    assert fake == f"alert {'f' * 32}: device_id of 100000 characters; expected 1-128 printable ones"
    auditor = bank.codes(*bank.party("auditor-1"))
    assert auditor == {
        **dict.fromkeys(ALL, DENIED),
        "read_account": "OK",
        "list_alerts": "OK",
        "read_metrics": "OK",
        "read_clock": "OK",
    }
    assert bank.attack(*bank.party("auditor-1"))["advance_clock"]["details"] == (
        "auditor-1 (auditor) may not call LoanBookService/AdvanceClock; it is open to operator"
    )
    assert bank.snapshot() == before


def test_the_right_roles_succeed_and_the_call_log_names_who_did_what(bank: Bank) -> None:
    ops = bank.attack(*bank.party("ops"))
    assert {name: r["code"] for name, r in ops.items()} == {
        **dict.fromkeys(ALL, DENIED),
        "score_invented": "INVALID_ARGUMENT",  # the bank scores reported features, never a caller's
        "open_max": "INVALID_ARGUMENT",
        "score": "OK",
        "score_batch": "OK",
        "draw_million": "FAILED_PRECONDITION",  # over the line's limit
        "repay": "FAILED_PRECONDITION",  # nothing drawn, nothing to repay
        "accrue": "OK",
        "read_account": "OK",
        "list_alerts": "OK",
        "review": "OK",
        "advance_clock": "OK",
        "set_clock": "FAILED_PRECONDITION",  # the books hold records dated after it
        "unfreeze": "FAILED_PRECONDITION",  # the line is not frozen
        "read_metrics": "OK",
        "read_clock": "OK",
    }
    assert ops["draw_million"]["details"].startswith(f"credit account '{bank.account}': draw of 100000000 fen exceeds")
    own = bank.codes(*bank.party("platform-1"))
    assert own == {
        **dict.fromkeys(ALL, DENIED),
        "read_account": "OK",  # its own merchant's line
        "report_consent": "OK",
        "report_features": "OK",
        "report_implausible": "INVALID_ARGUMENT",
    }
    monitor_tls = ClientTls(
        bank.certs / "ca.crt", bank.certs / "clients" / "monitor-1.crt", bank.certs / "clients" / "monitor-1.key"
    )
    alert = alerts_pb2.Alert(id="a" * 32, device_id="exc-7", rule="geofence", severity="critical", state="raised",
                             raised_at="2026-03-02T08:10:00+00:00", evidence_json='{"lat":35.0}')  # fmt: skip
    with connect(bank.address, monitor_tls) as channel:
        assert alerts_pb2_grpc.AlertServiceStub(channel).Deliver(alert, timeout=10).accepted

    calls = bank.calls()
    did = {(c["caller"], c["role"], c["method"], c["status"]) for c in calls}
    assert ("ops", "operator", "CreditService/Open", "OK") in did  # the fixture's line
    assert ("ops", "operator", "ScoringService/Score", "OK") in did
    assert ("ops", "operator", "CreditService/Draw", "FAILED_PRECONDITION") in did
    assert ("ops", "operator", "LoanBookService/AdvanceClock", "OK") in did
    assert ("auditor-1", "auditor", "LoanBookService/Review", DENIED) in did
    assert ("platform-1", "platform", "PlatformService/ReportFeatures", "OK") in did
    assert ("platform-2", "platform", "CreditService/Draw", DENIED) in did
    assert ("monitor-1", "iot-monitor", "AlertService/Deliver", "OK") in did
    assert ("monitor-1", "iot-monitor", "AlertService/Deliver", "INVALID_ARGUMENT") in did
    assert not [c for c in calls if c["status"] == "started"]  # every call completed its record
    draw = next(c for c in calls if c["caller"] == "ops" and c["method"] == "CreditService/Draw")
    assert json.loads(draw["request"]) == {"account_id": bank.account, "amount_fen": 100_000_000}
    assert draw["serial"] and draw["peer"].startswith("ipv4:127.0.0.1:")


def test_revocation_takes_effect_on_the_next_call_without_a_restart(bank: Bank) -> None:
    assert bank.codes(*bank.party("late-op"))["read_account"] == "OK"
    bank.cli("bank", "certs", "revoke", "late-op", "--certs", str(bank.certs))
    assert bank.codes(*bank.party("late-op"))["read_account"] == "UNAUTHENTICATED"
    assert bank.proc.poll() is None


def test_the_services_refuse_to_start_without_certificates_unless_told_insecure(bank: Bank) -> None:
    done = bank.cli("bank", "serve", "--address", f"127.0.0.1:{free_port()}", "--db", bank.url, ok=False)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: give --certs DIR (mutual TLS with the bank's CA) or --insecure (loopback tests only)"
    )
