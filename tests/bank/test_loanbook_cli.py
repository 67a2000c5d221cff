"""The loan book from the shell: clock, draws with terms, review, metrics, applications and
monitoring, locally and against a running bank; one-line errors with exit code 2; tables that
stay whole on a narrow or piped console; `--json` exactly what the bank answered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from server.client import LocalBank
from server.feature_store import FeatureStore
from server.grpc_app import build_server
from tests.bank.test_review import rows
from tests.conftest import free_port
from tests.consent_helpers import report_consent
from yinqi.cli import app

runner = CliRunner()


def yinqi(*args: str, columns: int = 80, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The CLI as its own process, its output piped (not a terminal), COLUMNS wide."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("YINQI_")}
    full.update(env or {}, COLUMNS=str(columns), NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "yinqi", *args], capture_output=True, text=True, timeout=120, env=full)


@pytest.fixture
def book(tmp_path, make_model) -> tuple[str, dict[str, str]]:
    url = f"sqlite:///{tmp_path / 'bank.db'}"
    store = tmp_path / "store"
    bank = LocalBank(url, store)
    bank.register_model(make_model(0.03), anchor=False)
    bank.promote("v1")
    report_consent(url, ["m1", "m2"])
    FeatureStore(url).report("platform-1", {"m1": rows([1000, 2000, 3000]), "m2": rows([0, 0, 0])})
    env = {"YINQI_DATA_DIR": str(tmp_path / "data")}
    return url, env


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_a_month_of_the_book_from_the_shell(book) -> None:
    url, _ = book
    assert json.loads(invoke("bank", "clock", "set", "2026-04-01", "--db", url, "--json"))["today"] == "2026-04-01"
    opened = json.loads(invoke("bank", "credit", "open", "--merchant", "m1", "--db", url, "--json"))
    declined = json.loads(invoke("bank", "score", "--merchant", "m2", "--db", url, "--json"))
    assert (declined["outcome"], declined["reasons"][0]["code"]) == ("declined", "NO_TURNOVER")
    drawn = json.loads(
        invoke("bank", "credit", "draw", opened["account_id"], "100000", "--term-days", "10", "--db", url, "--json")
    )
    assert [(d["due_on"], d["principal_fen"]) for d in drawn["draws"]] == [("2026-04-11", 100_000)]
    moved = json.loads(invoke("bank", "clock", "advance", "--days", "30", "--db", url, "--json"))
    assert (moved["moved_from"], moved["today"], moved["tier_changes"]) == ("2026-04-01", "2026-05-01", 1)
    # 9 % on 100,000 fen for 30 days: 100,000 x 900 x 30 / 3,650,000 = 739.73 -> 739 fen
    assert moved["interest_fen"] == 739
    FeatureStore(url).report("platform-1", {"m1": rows([1000, 2000, 3000, 100])})
    reviewed = json.loads(invoke("bank", "review", "--month", "2026-04", "--db", url, "--json"))
    assert (reviewed["reviewed"], reviewed["cut"], reviewed["frozen"]) == (1, 1, 1)
    shown = invoke("bank", "credit", "show", opened["account_id"], "--db", url)
    assert "special_mention" in shown and "frozen: cut since 2026-05-01" in shown

    printed = json.loads(invoke("bank", "metrics", "--db", url, "--json"))
    assert printed == LocalBank(url).metrics()
    april = printed["months"][0]
    assert (april["month"], april["applications"], april["approved"], april["declined"]) == ("2026-04", 2, 1, 1)
    assert april["approval_rate"] == 0.5
    assert april["balances_by_tier_fen"] == {  # due 04-11, 19 days past due on 04-30
        "normal": 0,
        "special_mention": 100_000,
        "substandard": 0,
        "doubtful": 0,
        "loss": 0,
    }
    listed = invoke("bank", "applications", "--db", url, "--reasons")
    assert "近3个月无营业额，无法核定额度" in listed
    monitored = json.loads(invoke("bank", "monitor", "--db", url, "--refresh", "--json"))
    assert {r["metric"] for r in monitored} == {"psi:score"}  # the test model's report has no aggregates
    assert monitored[0]["level"] == "n/a"


def test_tables_fold_instead_of_cutting_on_a_narrow_pipe(book) -> None:
    url, env = book
    for args in (("bank", "clock", "set", "2026-04-01"), ("bank", "credit", "open", "--merchant", "m1")):
        assert yinqi(*args, "--db", url, env=env).returncode == 0
    for args in (
        ("bank", "metrics"),
        ("bank", "applications", "--reasons"),
        ("bank", "credit", "show"),
        ("bank", "models"),
        ("bank", "calls"),
    ):
        done = yinqi(*args, "--db", url, columns=60, env=env)
        assert done.returncode == 0, done.stderr
        assert "…" not in done.stdout, (args, done.stdout)
    review = yinqi("bank", "review", "--month", "2026-03", "--db", url, columns=60, env=env)
    assert review.returncode == 0, review.stderr
    assert "…" not in review.stdout
    counts = [line for line in review.stdout.splitlines() if "raised / cut / kept" in line]
    assert len(counts) == 1 and "0 / 0 / 1" in counts[0]  # the same data as the opening: kept
    metrics = yinqi("bank", "metrics", "--db", url, columns=60, env=env).stdout
    assert "申请量" in metrics and "通过率" in metrics and "不良率" in metrics
    assert metrics.index("申请量") < metrics.index("正常")  # the three numbers come first


def test_mistakes_are_one_line_with_exit_code_2(book) -> None:
    url, env = book
    for args, message in [
        (("bank", "review", "--month", "2026-13"), "error: month '2026-13': expected YYYY-MM, e.g. 2026-03"),
        (("bank", "clock", "set", "someday"), "error: date 'someday': expected YYYY-MM-DD"),
        (("bank", "metrics", "--month", "March"), "error: month 'March': expected YYYY-MM, e.g. 2026-03"),
        (
            ("bank", "applications", "--outcome", "maybe"),
            "error: outcome 'maybe': expected one of approved, declined, referred",
        ),
    ]:
        done = yinqi(*args, "--db", url, env=env)
        assert (done.returncode, done.stderr.strip()) == (2, message), args
    usage = yinqi("bank", "clock", "advance", "--days", "0", "--db", url, env=env)
    assert usage.returncode == 2 and usage.stderr.count("\n") == 1


def test_the_same_commands_against_a_running_bank_with_roles(book, pki, tmp_path: Path) -> None:
    url, env = book
    server = build_server(f"127.0.0.1:{free_port()}", url, pki.server, tmp_path / "store")
    server.start()
    address = f"127.0.0.1:{server.bound_port}"

    def party(name: str) -> list[str]:
        return ["--bank", address, "--ca", str(pki.ca), "--cert", str(pki.cert(name)), "--key", str(pki.key(name))]

    try:
        assert yinqi("bank", "clock", "set", "2026-04-01", *party("ops"), env=env).returncode == 0
        refused = yinqi("bank", "clock", "advance", "--days", "1", *party("auditor-1"), env=env)
        assert (refused.returncode, refused.stderr.strip()) == (
            2,
            "error: auditor-1 (auditor) may not call LoanBookService/AdvanceClock; it is open to operator",
        )
        seen = yinqi("bank", "clock", "show", "--json", *party("auditor-1"), env=env)
        assert json.loads(seen.stdout)["today"] == "2026-04-01"
        remote = json.loads(yinqi("bank", "metrics", "--json", *party("auditor-1"), env=env).stdout)
        assert remote == LocalBank(url).metrics()
        review = yinqi("bank", "review", "--month", "2026-03", *party("platform-1"), env=env)
        assert review.returncode == 2 and "platform-1 (platform) may not call LoanBookService/Review" in review.stderr
    finally:
        server.stop(grace=None)
