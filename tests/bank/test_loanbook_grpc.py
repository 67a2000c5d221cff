"""The loan book over mutual TLS: only the operator reviews, moves the clock, opens and draws;
auditors read the clock and the metrics; a refused call changes nothing and is logged; the
answers over gRPC are the answers on the bank's database."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from proto.channel import RemoteError
from server.client import LocalBank, Remote, RemoteBank
from server.db import bank_engine
from server.security.calllog import CallLog
from tests.bank.test_review import rows

STATE = (
    "SELECT (SELECT COUNT(*) FROM bank_clock) || ':' || COALESCE((SELECT MAX(today) FROM bank_clock), ''),"
    " (SELECT COUNT(*) FROM bank_limit_changes), (SELECT COUNT(*) FROM bank_draws),"
    " (SELECT COUNT(*) FROM bank_applications), (SELECT COUNT(*) FROM bank_credit_accounts),"
    " (SELECT COUNT(*) FROM bank_line_freezes), (SELECT COUNT(*) FROM bank_model_monitoring)"
)


def state(url: str) -> tuple:
    with bank_engine(url).connect() as conn:
        return tuple(conn.execute(text(STATE)).one())


def client(address: str, pki, party: str) -> RemoteBank:
    return RemoteBank(Remote(address, pki.ca, pki.cert(party), pki.key(party)))


@pytest.fixture
def ops(running_bank, pki):
    bank = client(running_bank, pki, "ops")
    yield bank
    bank.close()


def test_the_operator_runs_the_book_over_mutual_tls(running_bank, bank_db, pki, ops) -> None:
    from server.feature_store import FeatureStore

    assert ops.set_clock("2026-04-01")["today"] == "2026-04-01"
    scored = ops.score("m2")
    assert (scored["outcome"], scored["application_id"], scored["reasons"][0]["code"]) == (
        "approved",
        1,
        "LIMIT_TURNOVER",
    )
    assert scored["reasons"][0]["text_zh"] == "额度为近3个月月均营业额2,000.00元的200%（B档，违约概率3.0%）"
    line = ops.open_line("m1")
    drawn = ops.draw(line["account_id"], 100_000, 10)
    assert [(d["due_on"], d["tier"]) for d in drawn["draws"]] == [("2026-04-11", "normal")]
    moved = ops.advance_clock(30)
    assert (moved["moved_from"], moved["today"], moved["tier_changes"], moved["months_closed"]) == (
        "2026-04-01",
        "2026-05-01",
        1,
        ["2026-04"],
    )
    assert ops.line(line["account_id"])["tier"] == "special_mention"
    # April's 100 yuan: Feb-Apr 2,000 / 3,000 / 100 -> turnover 170,000 -> limit 340,000
    FeatureStore(bank_db).report("platform-1", {"m1": rows([1000, 2000, 3000, 100])})
    reviewed = ops.review("2026-04")
    assert (reviewed["reviewed"], reviewed["cut"], reviewed["frozen"]) == (1, 1, 1)
    assert [r["code"] for r in reviewed["examples"][0]["reasons"]] == ["TURNOVER_DOWN", "DRAWS_FROZEN"]
    assert ops.line(line["account_id"])["limit_fen"] == 340_000

    remote = ops.metrics()
    local = LocalBank(bank_db).metrics()
    assert remote == local
    assert [m["month"] for m in remote["months"]] == ["2026-04", "2026-05"]
    april = remote["months"][0]
    assert (april["applications"], april["approved"], april["approval_rate"]) == (2, 2, 1.0)
    assert april["balances_by_tier_fen"]["special_mention"] == 100_000
    assert ops.applications(outcome="approved", limit=5) == LocalBank(bank_db).applications(outcome="approved", limit=5)
    calls = [(c.caller, c.method, c.status) for c in CallLog(bank_db).list(method="LoanBookService")]
    assert ("ops", "LoanBookService/AdvanceClock", "OK") in calls and ("ops", "LoanBookService/Review", "OK") in calls


@pytest.mark.parametrize("party", ["platform-1", "auditor-1", "monitor-1"])
def test_only_the_operator_may_review_move_the_clock_open_draw_or_lift_a_hold(
    running_bank, bank_db, pki, ops, party
) -> None:
    ops.set_clock("2026-04-01")
    line = ops.open_line("m1")
    before = state(bank_db)
    other = client(running_bank, pki, party)
    attempts = {
        "Review": lambda: other.review("2026-04"),
        "AdvanceClock": lambda: other.advance_clock(30),
        "SetClock": lambda: other.set_clock("2027-01-01"),
        "Unfreeze": lambda: other.unfreeze(line["account_id"]),
        "Monitor": lambda: other.monitor(refresh=True),
        "Open": lambda: other.open_line("m2"),
        "Draw": lambda: other.draw(line["account_id"], 100, 10),
    }
    try:
        for method, attempt in attempts.items():
            with pytest.raises(RemoteError) as refused:
                attempt()
            assert refused.value.code == "PERMISSION_DENIED", method
            role = {"platform-1": "platform", "auditor-1": "auditor", "monitor-1": "iot-monitor"}[party]
            assert str(refused.value).startswith(f"{party} ({role}) may not call "), method
            assert str(refused.value).endswith("it is open to operator"), method
    finally:
        other.close()
    assert state(bank_db) == before
    refusals = [c for c in CallLog(bank_db).list(caller=party) if c.status == "PERMISSION_DENIED"]
    assert len(refusals) == len(attempts)


def test_auditors_read_the_clock_metrics_and_applications_platforms_do_not(running_bank, pki, ops) -> None:
    ops.set_clock("2026-04-01")
    ops.score("m1")
    auditor = client(running_bank, pki, "auditor-1")
    platform = client(running_bank, pki, "platform-1")
    try:
        assert auditor.clock()["today"] == "2026-04-01"
        assert auditor.metrics()["months"][-1]["applications"] == 1
        assert [a["merchant_id"] for a in auditor.applications()] == ["m1"]
        for attempt in (platform.clock, platform.metrics, platform.applications):
            with pytest.raises(RemoteError, match=r"platform-1 \(platform\) may not call LoanBookService/"):
                attempt()
    finally:
        auditor.close()
        platform.close()


def test_refusals_of_the_operator_are_one_line_and_change_nothing(running_bank, bank_db, ops) -> None:
    ops.set_clock("2026-04-01")
    line = ops.open_line("m1")
    before = state(bank_db)
    for attempt, code, message in [
        (lambda: ops.review("2026-13"), "INVALID_ARGUMENT", "month '2026-13': expected YYYY-MM"),
        (lambda: ops.review("2026-05"), "FAILED_PRECONDITION", "month 2026-05 has not begun"),
        (lambda: ops.set_clock("2026-02-30"), "INVALID_ARGUMENT", "date '2026-02-30': expected YYYY-MM-DD"),
        (lambda: ops.set_clock("2026-03-01"), "FAILED_PRECONDITION", "the books hold records dated 2026-04-01"),
        (lambda: ops.advance_clock(-3), "INVALID_ARGUMENT", "expected a whole number of days"),
        (lambda: ops.draw(line["account_id"], 100, 9999), "INVALID_ARGUMENT", "draw term 9999 days"),
        (lambda: ops.unfreeze(line["account_id"]), "FAILED_PRECONDITION", "is not frozen"),
        (lambda: ops.metrics("2027-01"), "FAILED_PRECONDITION", "month 2027-01 is after the business date"),
    ]:
        with pytest.raises(RemoteError) as refused:
            attempt()
        assert (refused.value.code, "\n" in str(refused.value)) == (code, False)
        assert message in str(refused.value)
    assert state(bank_db) == before
