"""Credit lines: open from a decision, draw and repay as you go, daily interest, promotion."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime

import orjson
import pytest
from sqlalchemy import String, cast, func, select

from federation.storage import forget_engine, session_scope
from server.credit.accounts import CreditBook, Entry
from server.credit.errors import BankError
from server.credit.policy import CreditPolicy
from server.credit.promotion import promote
from server.credit.rules import ReferralRules
from server.loanbook import eod
from server.loanbook.changes import LimitChange
from server.registry import Registry
from server.scoring import Decision, Scorer
from tests.bank.conftest import merchant_rows
from tests.consent_helpers import report_consent

ROWS = merchant_rows([1000.0, 2000.0, 3000.0])  # turnover 200,000 fen a month
T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
def bank(db_url, make_model, tmp_path):
    """v1 (PD 3 %, band B: 2 x turnover, 9 % a year) promoted; m1 and m2 consented."""
    registry = Registry(db_url, tmp_path / "store")
    registry.register(make_model(0.03), anchor=False)
    promote(registry, "v1")
    report_consent(db_url, ["m1", "m2"])
    return CreditBook(db_url, registry=registry)


def _counts(book):
    with session_scope(book.engine) as session:
        return (
            session.scalar(select(func.count()).select_from(Entry)),
            session.scalar(select(func.count()).select_from(Decision)),
        )


def test_open_sets_limit_from_pd_band_and_turnover(bank):
    line = bank.open("m1", ROWS, now=T0)
    assert (line.band, line.limit_fen, line.annual_rate_bp, line.model_version) == ("B", 400_000, 900, "v1")
    assert line.available_fen == 400_000
    assert line.accrued_through == "2026-02-28"


def test_decision_stores_model_version_and_inputs_hash(bank):
    from server.scoring import inputs_hash

    line = bank.open("m1", ROWS, now=T0)
    with session_scope(bank.engine) as session:
        decision = session.get(Decision, line.decision_id)
        assert (decision.purpose, decision.model_version, decision.account_id) == ("open", "v1", line.account_id)
        assert decision.inputs_hash == inputs_hash("m1", decision.inputs)
        assert len(decision.inputs_hash) == 64
        # the stored text is the hashed one: an auditor checks it without re-serialising
        stored = session.scalar(select(cast(Decision.inputs, String)).where(Decision.id == line.decision_id))
    payload = b'{"merchant_id":"m1","rows":' + stored.encode() + b"}"
    assert hashlib.sha256(payload).hexdigest() == decision.inputs_hash


@pytest.mark.parametrize("merchant", ["m1", "商户-7", 'quote " and \\ backslash'])
def test_canonical_inputs_hash_the_merchant_and_rows_as_one_sorted_json(merchant):
    from server.scoring import canonical_inputs

    hashed, text = canonical_inputs(merchant, ROWS)
    whole = orjson.dumps({"merchant_id": merchant, "rows": ROWS}, option=orjson.OPT_SORT_KEYS)
    assert hashed == hashlib.sha256(whole).hexdigest()
    assert orjson.loads(str(text)) == ROWS


def test_draw_and_repay_ledger(bank):
    line = bank.open("m1", ROWS, now=T0)
    bank.draw(line.account_id, 150_000, now=T0)
    bank.draw(line.account_id, 50_000, now=T0)
    after = bank.repay(line.account_id, 120_000, now=T0)
    assert (after.principal_fen, after.available_fen) == (80_000, 320_000)
    assert [(e.kind, e.amount_fen, e.principal_after) for e in bank.entries(line.account_id)] == [
        ("open", 0, 0),
        ("draw", 150_000, 150_000),
        ("draw", 50_000, 200_000),
        ("repay", 120_000, 80_000),
    ]


def test_daily_interest_on_end_of_day_principal_then_repay_interest_first(bank):
    line = bank.open("m1", ROWS, now=T0)
    bank.draw(line.account_id, 365_000, now=datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    bank.draw(line.account_id, 35_000, now=datetime(2026, 3, 3, 9, 0, tzinfo=UTC))
    result = bank.accrue(date(2026, 3, 4), now=datetime(2026, 3, 5, 8, 0, tzinfo=UTC))
    # 9 % a year: 365,000 fen -> 90 fen/day (Mar 1, 2); 400,000 fen -> 98.63 fen/day (Mar 3, 4):
    # 98 posted + 0.63 carried, then 98.63 + 0.63 = 99.26 -> 99 posted
    assert result["posted"] == {line.account_id: 90 + 90 + 98 + 99}
    assert bank.get(line.account_id).interest_fen == 377
    paid = bank.repay(line.account_id, 1_000, now=datetime(2026, 3, 5, 9, 0, tzinfo=UTC))
    assert (paid.interest_fen, paid.principal_fen) == (0, 400_000 - 623)


def test_accrual_twice_posts_nothing_new(bank):
    line = bank.open("m1", ROWS, now=T0)
    bank.draw(line.account_id, 365_000, now=T0)
    now = datetime(2026, 3, 3, 8, 0, tzinfo=UTC)
    bank.accrue(date(2026, 3, 2), now=now)
    assert bank.accrue(date(2026, 3, 2), now=now)["interest_fen"] == 0
    assert bank.get(line.account_id).interest_fen == 180


def test_accruing_a_day_that_has_not_ended_is_refused(bank):
    bank.open("m1", ROWS, now=T0)
    with pytest.raises(BankError, match="has not ended yet"):
        bank.accrue(date(2026, 3, 1), now=T0)


def test_draw_over_the_limit_is_refused_and_changes_nothing(bank):
    line = bank.open("m1", ROWS, now=T0)
    bank.draw(line.account_id, 300_000, now=T0)
    before = (bank.get(line.account_id), _counts(bank))
    with pytest.raises(BankError, match="draw of 100001 fen exceeds the available 100000 fen") as info:
        bank.draw(line.account_id, 100_001, now=T0)
    assert info.value.kind == "refused"
    assert (bank.get(line.account_id), _counts(bank)) == before


def test_repay_on_unknown_account_is_refused_and_changes_nothing(bank):
    bank.open("m1", ROWS, now=T0)
    before = _counts(bank)
    with pytest.raises(BankError, match="credit account 'CL-nope' not found") as info:
        bank.repay("CL-nope", 100, now=T0)
    assert info.value.kind == "not_found"
    assert _counts(bank) == before


def test_overpayment_and_non_positive_amounts_are_refused(bank):
    line = bank.open("m1", ROWS, now=T0)
    bank.draw(line.account_id, 1_000, now=T0)
    with pytest.raises(BankError, match="exceeds the 1000 fen owed"):
        bank.repay(line.account_id, 1_001, now=T0)
    with pytest.raises(BankError, match="positive whole number"):
        bank.draw(line.account_id, 0, now=T0)
    assert bank.get(line.account_id).principal_fen == 1_000


def test_score_or_open_without_consent_is_refused_and_stores_nothing(bank, db_url):
    report_consent(db_url, ["m2"], granted=False)
    before = _counts(bank)
    with pytest.raises(BankError, match="merchant 'm2' has not consented") as info:
        bank.open("m2", ROWS, now=T0)
    assert info.value.kind == "refused"
    with pytest.raises(BankError, match="merchant 'never' has not consented"):
        Scorer(bank.engine, registry=bank._registry).score("never", ROWS)
    assert _counts(bank) == before
    assert bank.list() == []


def test_second_line_for_a_merchant_is_refused(bank):
    bank.open("m1", ROWS, now=T0)
    with pytest.raises(BankError, match="already has credit account"):
        bank.open("m1", ROWS, now=T0)


def test_promotion_re_evaluates_open_lines(bank, make_model, db_url):
    line = bank.open("m1", ROWS, now=T0)
    bank.draw(line.account_id, 100_000, now=T0)
    withdrawn = bank.open("m2", ROWS, now=T0)
    report_consent(db_url, ["m2"], granted=False)
    registry = bank._registry
    registry.register(make_model(0.01), anchor=False)  # PD 1 %: band A, 3 x turnover, 6 %
    result = promote(registry, "v2", now=datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    updated = bank.get(line.account_id)
    assert (updated.limit_fen, updated.band, updated.annual_rate_bp, updated.model_version) == (600_000, "A", 600, "v2")
    assert updated.principal_fen == 100_000
    assert bank.entries(line.account_id)[-1].kind == "limit"
    assert bank.entries(line.account_id)[-1].amount_fen == 200_000
    changes = {c["account_id"]: c for c in result["reevaluated"]}
    assert changes[line.account_id]["new_limit_fen"] == 600_000
    assert "has not consented" in changes[withdrawn.account_id]["reason"]
    assert bank.get(withdrawn.account_id).limit_fen == 400_000


def test_a_promotion_never_cuts_a_limit_below_what_is_drawn(bank, make_model):
    line = bank.open("m1", ROWS, now=T0)  # PD 3 %: band B, 2 x 200,000 turnover
    bank.draw(line.account_id, 350_000, now=T0)
    registry = bank._registry
    registry.register(make_model(0.08), anchor=False)  # PD 8 %: band C, 1 x turnover = 200,000
    result = promote(registry, "v2", now=datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    updated = bank.get(line.account_id)
    assert (updated.limit_fen, updated.principal_fen, updated.band, updated.annual_rate_bp) == (
        350_000,
        350_000,
        "C",
        1400,
    )
    assert updated.available_fen == 0
    entry = bank.entries(line.account_id)[-1]
    assert (entry.kind, entry.amount_fen, entry.limit_after) == ("limit", -50_000, 350_000)
    assert "held at what is drawn; the policy's limit is 200000" in entry.note
    (change,) = result["reevaluated"]
    assert (change["old_limit_fen"], change["new_limit_fen"]) == (400_000, 350_000)
    with session_scope(bank.engine) as session:
        record = session.scalars(select(LimitChange).where(LimitChange.kind == "promotion")).one()
        assert (record.action, record.target_limit_fen, record.new_limit_fen) == ("cut", 200_000, 350_000)
        assert [r["code"] for r in record.reasons][-1] == "CUT_HELD_AT_DRAWN"


def test_a_promotion_to_a_model_that_declines_keeps_the_rate_on_what_is_drawn(bank, make_model):
    # Reproduction: a promoted model whose band lends nothing (rate 0) set the line's rate to 0,
    # so what was drawn stopped accruing interest.
    line = bank.open("m1", ROWS, now=T0)
    bank.draw(line.account_id, 100_000, now=T0)
    registry = bank._registry
    registry.register(make_model(0.5), anchor=False)  # the decline band: no limit, rate 0
    promote(registry, "v2", now=datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    updated = bank.get(line.account_id)
    assert (updated.band, updated.limit_fen, updated.annual_rate_bp) == ("decline", 100_000, 900)
    bank.accrue(date(2026, 3, 11), now=datetime(2026, 3, 12, 1, 0, tzinfo=UTC))
    # March 1..11 at 9 % on 100,000 fen: 11 x 24.657 = 271.2 -> 271 fen
    assert bank.get(line.account_id).interest_fen == 271


def test_a_promotion_dates_its_records_on_the_banks_clock(bank, make_model):
    # Reproduction: a promotion dated its ledger entries and decisions by the wall clock while
    # its limit records said the bank's business date, so a line's ledger left the order of
    # its days once an operator had set the clock.
    eod.set_date(bank, date(2026, 3, 1), "test")
    line = bank.open("m1", ROWS)
    eod.advance(bank, 4, "test")  # 2026-03-05: interest accrued through 03-04
    bank._registry.register(make_model(0.01), anchor=False)
    promote(bank._registry, "v2")
    entry = bank.entries(line.account_id)[-1]
    assert (entry.kind, entry.at[:10]) == ("limit", "2026-03-05")
    with session_scope(bank.engine) as session:
        record = session.scalars(select(LimitChange).where(LimitChange.kind == "promotion")).one()
        decision = session.get(Decision, record.decision_id)
        assert (record.on, record.at.date(), decision.created_at.date()) == (date(2026, 3, 5),) * 3


def test_changes_dated_on_a_day_already_accrued_are_refused_and_change_nothing(bank, make_model):
    # Reproduction: an unfreeze or a promotion given a time on a day whose interest was posted
    # already was written there, before entries of later days: the end of day reads a line's
    # principal from the entries in the order of their days.
    referring = CreditBook(
        bank.engine,
        registry=bank._registry,
        policy=CreditPolicy(bands=bank.policy.bands, referral=ReferralRules(refer_limit_from_fen=1)),
    )
    line = referring.open("m1", ROWS, now=T0)  # referred: new draws frozen
    referring.accrue(date(2026, 3, 5), now=datetime(2026, 3, 6, 1, 0, tzinfo=UTC))
    entries = referring.entries(line.account_id)
    past = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
    with pytest.raises(BankError, match="already accrued through 2026-03-05"):
        referring.unfreeze(line.account_id, now=past)
    bank._registry.register(make_model(0.01), anchor=False)
    with pytest.raises(BankError, match="already accrued through 2026-03-05"):
        promote(bank._registry, "v2", now=past)
    assert referring.entries(line.account_id) == entries
    assert referring.get(line.account_id).frozen.startswith("referred")
    assert bank._registry.promoted().version == "v1"


def test_an_accrual_run_late_posts_the_interest_of_each_days_principal(bank):
    # The end of day reads only the entries since the last accrual: here the first run was
    # late (its entry is dated 03-20, not 03-06), so the second reads the entry before too.
    line = bank.open("m1", ROWS, now=T0)
    bank.draw(line.account_id, 100_000, now=T0)  # 03-01
    first = bank.accrue(date(2026, 3, 5), now=datetime(2026, 3, 20, 9, 0, tzinfo=UTC))
    bank.draw(line.account_id, 200_000, now=datetime(2026, 3, 21, 9, 0, tzinfo=UTC))
    second = bank.accrue(date(2026, 3, 25), now=datetime(2026, 3, 26, 1, 0, tzinfo=UTC))
    # 9 % a year: 24.6575 fen a day on 100,000 (03-01..03-20), 73.9726 on 300,000 (03-21..03-25)
    # 5 days: 123.29 -> 123 posted; then 15 x 24.6575 + 5 x 73.9726 + 0.29 = 740.01 -> 740
    assert (first["posted"][line.account_id], second["posted"][line.account_id]) == (123, 740)
    assert bank.get(line.account_id).interest_fen == 863


def test_credit_accounts_survive_reopening_the_database(bank, db_url, tmp_path):
    line = bank.open("m1", ROWS, now=T0)
    bank.draw(line.account_id, 365_000, now=T0)
    bank.accrue(date(2026, 3, 1), now=datetime(2026, 3, 2, 1, 0, tzinfo=UTC))
    before = (bank.get(line.account_id), bank.entries(line.account_id))
    forget_engine(db_url)  # the bank restarts
    reopened = CreditBook(db_url, registry=Registry(db_url, tmp_path / "store"))
    assert (reopened.get(line.account_id), reopened.entries(line.account_id)) == before
    assert reopened.get(line.account_id).interest_fen == 90


def test_concurrent_draws_never_exceed_the_limit(bank):
    from concurrent.futures import ThreadPoolExecutor

    line = bank.open("m1", ROWS, now=T0)

    def draw(_: int) -> bool:
        try:
            bank.draw(line.account_id, 50_000)
            return True
        except BankError:
            return False

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(draw, range(10)))
    assert results.count(True) == 8  # 8 x 50,000 = the 400,000 fen limit
    assert bank.get(line.account_id).principal_fen == 400_000


@pytest.mark.parametrize(
    ("amount", "problem"),
    [
        (1e300, "is 1e+300; expected 0 to 1e+12"),
        (-1e6, "is -1e+06; expected 0 to 1e+12"),
        (float("nan"), "is nan; expected a finite number"),
        (float("-inf"), "is -inf; expected a finite number"),
    ],
)
def test_scoring_refuses_an_implausible_amount_naming_merchant_row_and_feature(bank, amount, problem):
    from server.scoring import Scorer

    rows = merchant_rows([1000.0, amount, 3000.0])
    with pytest.raises(BankError) as refused:
        Scorer(bank.engine, registry=bank._registry).score("m1", rows)
    assert str(refused.value) == f"merchant 'm1', row 2: feature 'amount' {problem}"
    assert refused.value.kind == "invalid"
    with pytest.raises(BankError):
        bank.open("m1", rows, now=T0)
    assert bank.list() == []


def test_in_a_batch_a_merchants_unusable_rows_fail_that_merchant_alone(bank):
    """`evaluate` checks each merchant against the model and the policy: a feature missing from
    the newest row, text where the model reads a number, a month without its turnover each
    refuse that merchant by name; the others in the same call are scored."""
    good = merchant_rows([1000.0, 2000.0, 3000.0])
    missing = [dict(r) for r in good]
    del missing[-1]["growth"]
    text = [dict(r) for r in good]
    text[-1]["count"] = "many"
    no_amount = [dict(r) for r in good]
    del no_amount[0]["amount"]
    requests = [("m1", missing), ("m2", text), ("m3", no_amount), ("m4", good)]
    results = bank.scorer.evaluate(requests, consented=True)
    refused = [str(r) if isinstance(r, BankError) else "" for r in results]
    assert refused[0].startswith("merchant 'm1': feature 'growth' missing; model v1 expects [")
    assert refused[1] == "merchant 'm2': feature 'count' is 'many'; expected a number"
    assert refused[2] == "merchant 'm3': every row needs 'amount' (monthly turnover) for the limit"
    assert refused[3] == "" and results[3].limit_fen == 400_000  # 2 x the mean of 200,000 fen
