"""Draws with terms, the bank's clock, the five-tier classification, NPL ratio and approval
rate, with hand-computed values, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from federation.storage import session_scope
from server.credit.accounts import CreditBook
from server.credit.errors import BankError
from server.credit.policy import CreditPolicy
from server.credit.promotion import promote
from server.credit.rules import Classification, ReferralRules
from server.feature_store import FeatureStore
from server.loanbook import draws, eod
from server.loanbook.applications import Application
from server.loanbook.book import LoanBook
from server.loanbook.metrics import metrics
from server.registry import Registry
from tests.bank.test_review import rows
from tests.consent_helpers import report_consent

ROWS = rows([1000, 2000, 3000])  # turnover 200,000 fen: band B limit 400,000 at 9 %


@pytest.fixture
def book(db_url, make_model, tmp_path):
    registry = Registry(db_url, tmp_path / "store")
    registry.register(make_model(0.03), anchor=False)
    promote(registry, "v1")
    report_consent(db_url, ["m1", "m2", "m3", "m4"])
    book = CreditBook(db_url, registry=registry)
    eod.set_date(book, date(2026, 1, 1), "test")
    return book


def test_the_clock_is_the_banks_and_only_goes_back_to_the_last_activity(book) -> None:
    assert book.clock.state().to_dict()["source"] == "bank"
    assert book.clock.today() == date(2026, 1, 1)
    line = book.open("m1", ROWS)
    assert line.accrued_through == "2025-12-31"
    with pytest.raises(BankError, match="the books hold records dated 2026-01-01"):
        eod.set_date(book, date(2025, 12, 31), "test")
    moved = eod.advance(book, 10, "test")
    assert (moved["from"], moved["today"], moved["changed_by"]) == ("2026-01-01", "2026-01-11", "test")
    with pytest.raises(BankError, match="expected a whole number of days"):
        eod.advance(book, 0, "test")


def test_repayments_pay_interest_then_principal_oldest_due_draw_first(book) -> None:
    line = book.open("m1", ROWS)
    first = book.draw(line.account_id, 100_000, 20)  # due 2026-01-21
    assert first.draws[0].due_on == "2026-01-21"
    eod.advance(book, 1, "test")
    book.draw(line.account_id, 200_000)  # the policy's 30 days: due 2026-02-01
    eod.advance(book, 9, "test")  # 2026-01-11: interest for Jan 1..10
    # 9 % a year: day 1 on 100,000 -> 24.66 fen; days 2..10 on 300,000 -> 73.97 fen a day:
    # exact total 24.657 + 9 x 73.973 = 690.41 -> 690 fen posted
    owed = book.get(line.account_id)
    assert owed.interest_fen == 690
    after = book.repay(line.account_id, 690 + 150_000)  # interest, then 100,000 + 50,000
    assert (after.interest_fen, after.principal_fen) == (0, 150_000)
    assert [(d.amount_fen, d.principal_fen, d.due_on) for d in after.draws] == [(200_000, 150_000, "2026-02-01")]
    with session_scope(book.engine) as session:
        settled = session.scalars(select(draws.Draw).where(draws.Draw.settled_on.is_not(None))).one()
        assert (settled.amount_fen, settled.settled_on) == (100_000, date(2026, 1, 11))


def test_a_draw_unpaid_moves_through_every_tier_on_the_days_the_policy_says(book) -> None:
    line = book.open("m1", ROWS)
    book.draw(line.account_id, 100_000, 30)  # drawn 2026-01-01, due 2026-01-31
    seen = {}
    # due + 1 = 2026-02-01 special mention; + 91 = 2026-05-02 substandard;
    # + 271 = 2026-10-29 doubtful; + 361 = 2027-01-27 loss
    for day, dpd, tier in [
        (date(2026, 1, 31), 0, "normal"),
        (date(2026, 2, 1), 1, "special_mention"),
        (date(2026, 5, 1), 90, "special_mention"),
        (date(2026, 5, 2), 91, "substandard"),
        (date(2026, 10, 28), 270, "substandard"),
        (date(2026, 10, 29), 271, "doubtful"),
        (date(2027, 1, 26), 360, "doubtful"),
        (date(2027, 1, 27), 361, "loss"),
    ]:
        eod.set_date(book, day, "test")
        view = book.get(line.account_id)
        seen[day] = (view.days_past_due, view.tier)
        assert seen[day] == (dpd, tier), day
    with session_scope(book.engine) as session:
        steps = [
            (c.on, c.from_tier, c.to_tier, c.days_past_due)
            for c in session.scalars(select(draws.TierChange).order_by(draws.TierChange.id))
        ]
        stored = session.scalars(select(draws.Draw)).one()
    assert steps == [
        (date(2026, 2, 1), "normal", "special_mention", 1),
        (date(2026, 5, 2), "special_mention", "substandard", 91),
        (date(2026, 10, 29), "substandard", "doubtful", 271),
        (date(2027, 1, 27), "doubtful", "loss", 361),
    ]
    assert (stored.tier, stored.days_past_due, stored.classified_on) == ("loss", 361, date(2027, 1, 27))
    with pytest.raises(BankError, match="a draw is 361 days past due"):
        book.draw(line.account_id, 1)


def test_one_long_jump_records_each_step_with_its_own_day(book) -> None:
    line = book.open("m1", ROWS)
    book.draw(line.account_id, 100_000, 30)
    moved = eod.advance(book, 400, "test")  # 2027-02-05 in one move
    assert [(s["on"], s["to"]) for s in moved["steps"]] == [
        ("2026-02-01", "special_mention"),
        ("2026-05-02", "substandard"),
        ("2026-10-29", "doubtful"),
        ("2027-01-27", "loss"),
    ]
    assert moved["months_closed"] == [f"2026-{m:02d}" for m in range(1, 13)] + ["2027-01"]


def test_a_custom_classification_policy_moves_the_thresholds() -> None:
    rules = Classification(special_mention_dpd=1, substandard_dpd=31, doubtful_dpd=61, loss_dpd=91)
    assert [rules.tier_for(d) for d in (0, 1, 30, 31, 60, 61, 90, 91)] == [
        "normal",
        "special_mention",
        "special_mention",
        "substandard",
        "substandard",
        "doubtful",
        "doubtful",
        "loss",
    ]
    with pytest.raises(BankError, match="increase tier by tier"):
        CreditPolicy.from_dict(
            {
                "band": [{"name": "P", "max_pd": 1.0, "turnover_multiple_pct": 100, "annual_rate_bp": 100}],
                "classification": {"substandard_dpd": 400},
            },
            "p.toml",
        )
    with pytest.raises(BankError, match=r"\[draw\] has no setting 'term'"):
        CreditPolicy.from_dict(
            {
                "band": [{"name": "P", "max_pd": 1.0, "turnover_multiple_pct": 100, "annual_rate_bp": 100}],
                "draw": {"term": 3},
            },
            "p.toml",
        )


def test_npl_ratio_is_the_share_of_substandard_doubtful_and_loss_balances(book) -> None:
    FeatureStore(book.engine).report("platform-1", {m: ROWS for m in ("m1", "m2", "m3")})
    a = book.open("m1", ROWS)
    b = book.open("m2", ROWS)
    c = book.open("m3", ROWS)
    book.draw(a.account_id, 100_000, 10)  # due 01-11: substandard from 04-12
    book.draw(b.account_id, 300_000, 365)  # not due for a year: normal
    book.draw(c.account_id, 50_000, 60)  # due 03-02: special mention from 03-03
    eod.set_date(book, date(2026, 4, 20), "test")
    result = metrics(book.engine, book.policy.classification)
    april = result["months"][-1]
    assert april["month"] == "2026-04"
    assert april["balances_by_tier_fen"] == {
        "normal": 300_000,
        "special_mention": 50_000,
        "substandard": 100_000,
        "doubtful": 0,
        "loss": 0,
    }
    # NPL = 100,000 / (300,000 + 50,000 + 100,000) = 2 / 9
    assert april["npl_fen"] == 100_000
    assert april["npl_ratio"] == pytest.approx(2 / 9)
    # utilisation = 450,000 drawn / 1,200,000 of limits
    assert (april["lines"], april["total_limit_fen"], april["drawn_fen"]) == (3, 1_200_000, 450_000)
    assert april["utilisation"] == pytest.approx(0.375)
    # the month ends the clock passed were snapshotted: January had 450,000 owed, all normal
    january = result["months"][0]
    assert (january["month"], january["stocks_as_of"], january["stocks_final"]) == ("2026-01", "2026-01-31", True)
    assert january["balances_by_tier_fen"]["normal"] == 350_000  # m1's 100,000 was 20 days past due
    assert january["balances_by_tier_fen"]["special_mention"] == 100_000
    assert january["npl_ratio"] == 0.0
    assert (january["new_draws"], january["new_draws_fen"]) == (3, 450_000)


def test_approval_rate_counts_approved_declined_and_referred_applications(book, tmp_path) -> None:
    policy = CreditPolicy(
        bands=book.policy.bands, referral=ReferralRules(refer_pd_from=0.0, refer_limit_from_fen=1_000_000)
    )
    referring = CreditBook(book.engine, registry=book.scorer.registry, policy=policy)
    store = FeatureStore(book.engine)
    store.report(
        "platform-1",
        {
            "m1": ROWS,  # limit 400,000: approved
            "m2": rows([2000, 2000, 2000]),  # limit 400,000: approved
            "m3": rows([0, 0, 0]),  # no turnover: declined
            "m4": rows([9000, 9000, 9000]),  # limit 1,800,000 >= 1,000,000: referred
        },
    )
    for merchant in ("m1", "m2", "m3"):
        referring.scorer.score(merchant, store.rows_of(merchant))
    referred = referring.open("m4", store.rows_of("m4"))
    assert referred.frozen.startswith("referred since 2026-01-01: a limit of 18,000.00 yuan needs a credit officer")
    with pytest.raises(BankError, match="new draws are frozen"):
        referring.draw(referred.account_id, 100)
    assert referring.unfreeze(referred.account_id).frozen == ""
    referring.draw(referred.account_id, 100)

    result = LoanBook(referring).metrics()
    january = result["months"][-1]
    assert (january["applications"], january["approved"], january["declined"], january["referred"]) == (4, 2, 1, 1)
    assert january["approval_rate"] == 0.5
    assert january["average_approved_limit_fen"] == 400_000
    found = LoanBook(referring).applications(outcome="declined")
    assert [(a.merchant_id, [r["code"] for r in a.reasons]) for a in found] == [("m3", ["NO_TURNOVER"])]
    assert found[0].reasons[0]["text_zh"] == "近3个月无营业额，无法核定额度"


def test_a_score_reads_reported_rows_in_its_own_transaction_and_from_the_stores_database(book, tmp_path) -> None:
    store = FeatureStore(book.engine)
    store.report("platform-1", {"m1": ROWS})
    by_reader = book.scorer.score("m1", store.reader("m1"))
    by_rows = book.scorer.score("m1", store.rows_of("m1"))
    assert (by_reader.pd, by_reader.limit_fen, by_reader.inputs_hash) == (by_rows.pd, 400_000, by_rows.inputs_hash)
    with session_scope(book.engine) as session:
        stored = session.scalars(select(Application.merchant_id)).all()
    assert stored == ["m1", "m1"]
    with pytest.raises(BankError, match="merchant 'm2': no features reported by its platform"):
        book.scorer.score("m2", store.reader("m2"))
    # a feature store on another database: the rows are read there, not in the scorer's
    elsewhere = FeatureStore(f"sqlite:///{tmp_path / 'features-elsewhere.db'}")
    elsewhere.report("platform-1", {"m2": ROWS})
    assert book.scorer.score("m2", elsewhere.reader("m2")).pd == pytest.approx(by_rows.pd)
    with session_scope(book.engine) as session:
        stored = session.scalars(select(Application.merchant_id)).all()
    assert stored == ["m1", "m1", "m2"]  # the refused score stored nothing
