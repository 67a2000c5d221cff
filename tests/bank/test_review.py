"""Limits that follow the data: monthly reviews raise and cut limits within the policy's rules,
with reason codes, on SQLite and PostgreSQL. Hand-computed with a model whose PD is 3 % for
every merchant (band B: limit = 2 x the mean of the latest 3 months' turnover, 9 % a year)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from federation.model import write_report
from federation.storage import session_scope
from server.credit.accounts import CreditBook, Entry
from server.credit.errors import BankError
from server.credit.policy import Band, CreditPolicy
from server.credit.promotion import promote
from server.feature_store import FeatureStore
from server.loanbook import changes, eod, fanout, wording
from server.loanbook import review as review_module
from server.loanbook.changes import Previous
from server.loanbook.decide import CUT, KEEP, RAISE, ReviewStep
from server.loanbook.review import moved_features, review, review_reasons, review_workers
from server.monitoring import MonitorRecord
from server.registry import Registry
from server.scoring import Decision
from tests.bank.conftest import training_report
from tests.consent_helpers import report_consent


def rows(amounts: list[float], first: str = "2026-01") -> list[dict]:
    """One row per month from `first`, with the given monthly turnover (yuan)."""
    year, month = int(first[:4]), int(first[5:])
    out = []
    for i, amount in enumerate(amounts):
        y, m = year + (month - 1 + i) // 12, (month - 1 + i) % 12 + 1
        out.append(
            {
                "month": f"{y}-{m:02d}",
                "category": "food",
                "amount": amount,
                "count": 10,
                "avg_rating": 4.5,
                "inventory_turnover": 2.0,
                "growth": 0.0,
                "first_month": int(i == 0),
                "past_defaults": 0,
            }
        )
    return out


@pytest.fixture
def book(db_url, make_model, tmp_path):
    registry = Registry(db_url, tmp_path / "store")
    registry.register(make_model(0.03), anchor=False)
    promote(registry, "v1")
    report_consent(db_url, ["m1", "m2", "m3"])
    book = CreditBook(db_url, registry=registry)
    eod.set_date(book, date(2026, 4, 1), "test")
    return book


def report(book: CreditBook, merchant: str, month_rows: list[dict]) -> None:
    FeatureStore(book.engine).report("platform-1", {merchant: month_rows})


def test_limit_goes_up_then_down_then_up_again_across_reviews(book) -> None:
    # Jan-Mar 1,000 / 2,000 / 3,000 yuan: turnover 200,000 fen -> limit 400,000
    report(book, "m1", rows([1000, 2000, 3000]))
    line = book.open("m1", rows([1000, 2000, 3000]))
    assert line.limit_fen == 400_000

    # April 5,000 -> Feb-Apr 2,000 / 3,000 / 5,000: turnover 333,333 -> policy 660,000 (666,666
    # floored to the 10,000 step); a review raises at most 50 %: 400,000 x 1.5 = 600,000
    report(book, "m1", rows([1000, 2000, 3000, 5000]))
    eod.advance(book, 30, "test")  # 2026-05-01
    april = review(book, "2026-04")
    assert (april.reviewed, april.raised, april.cut, april.kept) == (1, 1, 0, 0)
    assert book.get(line.account_id).limit_fen == 600_000
    assert [r["code"] for r in april.examples[0]["reasons"]] == ["TURNOVER_UP", "RAISE_CAPPED"]
    assert april.examples[0]["reasons"][0]["text_en"] == (
        "average monthly turnover over 3 months rose from 2,000.00 to 3,333.33 yuan"
    )

    # The merchant draws 250,000 (30 days) and repays it on the due day.
    drawn = book.draw(line.account_id, 250_000, 30)
    assert drawn.draws[0].due_on == "2026-05-31"
    eod.advance(book, 30, "test")  # 2026-05-31: interest accrued for May 1..30
    owed = book.get(line.account_id)
    book.repay(line.account_id, owed.interest_fen + owed.principal_fen)
    book.draw(line.account_id, 250_000, 60)  # and draws again, due 2026-07-30

    # May 600 yuan -> Mar-May 3,000 / 5,000 / 600: turnover 286,666 -> policy 570,000: less
    # than 10 % below 600,000: kept
    report(book, "m1", rows([1000, 2000, 3000, 5000, 600]))
    eod.advance(book, 1, "test")  # 2026-06-01
    may = review(book, "2026-05")
    assert (may.raised, may.cut, may.kept) == (0, 0, 1)

    # June 100 yuan -> Apr-Jun 5,000 / 600 / 100: turnover 190,000 -> policy 380,000; a cut, but
    # never below the 250,000 drawn; new draws freeze
    report(book, "m1", rows([1000, 2000, 3000, 5000, 600, 100]))
    eod.advance(book, 30, "test")  # 2026-07-01
    june = review(book, "2026-06")
    assert (june.cut, june.frozen) == (1, 1)
    cut = book.get(line.account_id)
    assert (cut.limit_fen, cut.principal_fen, cut.available_fen) == (380_000, 250_000, 130_000)
    assert [r["code"] for r in june.examples[0]["reasons"]] == ["TURNOVER_DOWN", "DRAWS_FROZEN"]
    # the freeze names the cut's first two reasons, in the words the limit record gives them
    worded = "; ".join(r["text_en"] for r in june.examples[0]["reasons"][:2])
    assert cut.frozen == f"cut since 2026-07-01: review 2026-06 cut the limit: {worded}"
    with pytest.raises(BankError, match="new draws are frozen"):
        book.draw(line.account_id, 1)

    # July 100 yuan -> May-Jul 600 / 100 / 100: turnover 26,666 -> policy 50,000; cut, but held
    # at the 150,000 still owed after a partial repayment on the due day
    report(book, "m1", rows([1000, 2000, 3000, 5000, 600, 100, 100]))
    eod.advance(book, 29, "test")  # 2026-07-30, the draw's due day
    owed = book.get(line.account_id)
    book.repay(line.account_id, owed.interest_fen + 100_000)
    eod.advance(book, 2, "test")  # 2026-08-01: 150,000 is 2 days past due
    july = review(book, "2026-07")
    held = book.get(line.account_id)
    assert (july.cut, july.frozen, held.limit_fen, held.available_fen) == (1, 0, 150_000, 0)
    assert (held.days_past_due, held.tier) == (2, "special_mention")
    assert held.frozen.startswith("cut since 2026-07-01: review 2026-07 cut the limit")
    assert [r["code"] for r in july.examples[0]["reasons"]] == ["TURNOVER_DOWN", "CUT_HELD_AT_DRAWN", "DRAWS_FROZEN"]


def test_a_moved_line_stores_its_reasons_as_facts_and_its_history_words_them(book) -> None:
    report(book, "m1", rows([3000, 3000, 3000]))
    line = book.open("m1", rows([3000, 3000, 3000]))
    book.draw(line.account_id, 500_000, 90)
    report(book, "m1", rows([3000, 3000, 3000, 300]))
    eod.advance(book, 30, "test")
    cut = review(book, "2026-04")
    with session_scope(book.engine) as session:
        stored = session.scalars(
            select(changes.LimitChange.reasons).where(changes.LimitChange.review_month == "2026-04")
        ).one()
    assert [r["code"] for r in stored] == ["TURNOVER_DOWN", "CUT_HELD_AT_DRAWN", "DRAWS_FROZEN"]
    assert all("words" in r and "text_en" not in r for r in stored)  # facts, not words
    reviewed = [e for e in changes.history(book.engine, line.account_id) if e["kind"] == "review"]
    assert reviewed[0]["reasons"] == cut.examples[0]["reasons"]
    assert reviewed[0]["reasons"][1]["text_en"] == (
        "limit not cut below the 5,000.00 yuan already drawn (the policy's limit is 4,200.00 yuan)"
    )


def test_a_cut_is_held_at_what_is_drawn_and_a_later_raise_lifts_the_freeze(book) -> None:
    report(book, "m1", rows([3000, 3000, 3000]))
    line = book.open("m1", rows([3000, 3000, 3000]))  # turnover 300,000 -> limit 600,000
    book.draw(line.account_id, 500_000, 90)  # due 2026-06-30
    report(book, "m1", rows([3000, 3000, 3000, 300]))  # Feb-Apr: turnover 210,000 -> policy 420,000
    eod.advance(book, 30, "test")
    cut = review(book, "2026-04")
    after = book.get(line.account_id)
    assert (cut.cut, after.limit_fen, after.available_fen) == (1, 500_000, 0)
    reasons = [r["code"] for r in cut.examples[0]["reasons"]]
    assert reasons == ["TURNOVER_DOWN", "CUT_HELD_AT_DRAWN", "DRAWS_FROZEN"]
    assert cut.examples[0]["reasons"][1]["text_zh"] == "额度不低于已支用的5,000.00元（政策额度4,200.00元）"

    book.repay(line.account_id, book.get(line.account_id).interest_fen + 400_000)  # 100,000 owed
    report(book, "m1", rows([3000, 3000, 3000, 300, 6000]))  # Mar-May: 310,000 -> policy 620,000
    eod.advance(book, 31, "test")
    raised = review(book, "2026-05")
    after = book.get(line.account_id)
    # 500,000 x 1.5 = 750,000 > 620,000: raised to the policy's 620,000, freeze lifted
    assert (raised.raised, raised.unfrozen, after.limit_fen, after.frozen) == (1, 1, 620_000, "")
    book.draw(line.account_id, 10_000)


def test_a_line_reviewed_into_the_decline_band_keeps_its_rate_on_what_is_drawn(book) -> None:
    report(book, "m1", rows([3000, 3000, 3000]))
    line = book.open("m1", rows([3000, 3000, 3000]))  # PD 0.03: band B, 9 %
    book.draw(line.account_id, 365_000, 90)
    stricter = CreditPolicy(bands=(Band("A", 0.02, 300, 600), Band("decline", 1.0, 0, 0)))
    strict = CreditBook(book.engine, registry=book.scorer.registry, policy=stricter)
    report(book, "m1", rows([3000, 3000, 3000, 3000]))
    eod.advance(book, 1, "test")
    result = review(strict, "2026-04")
    after = book.get(line.account_id)
    assert (result.cut, after.band, after.limit_fen, after.annual_rate_bp) == (1, "decline", 365_000, 900)
    moved = eod.advance(book, 10, "test")
    assert moved["interest_fen"] == 10 * 90  # 365,000 fen at 9 %: 90 fen a day


def test_no_raise_while_a_draw_is_past_due(book) -> None:
    report(book, "m1", rows([1000, 1000, 1000]))
    line = book.open("m1", rows([1000, 1000, 1000]))  # limit 200,000
    book.draw(line.account_id, 100_000, 10)  # due 2026-04-11, never repaid
    report(book, "m1", rows([1000, 1000, 1000, 9000]))
    eod.advance(book, 30, "test")
    result = review(book, "2026-04")
    assert (result.kept, book.get(line.account_id).limit_fen) == (1, 200_000)
    with session_scope(book.engine) as session:
        stored = session.scalars(select(changes.LimitChange).where(changes.LimitChange.kind == "review")).one()
        assert [r["code"] for r in stored.reasons] == ["OVERDUE_NO_RAISE"]
        assert stored.reasons[0]["text_en"] == "no raise while a draw is 20 days past due"


def test_a_consent_withdrawn_during_a_review_counts_for_the_lines_not_read_yet(book) -> None:
    """Consent is read with each chunk: the merchant of the last line (in account order, the
    review's) withdraws while the first chunk of two lines is being stored, and its line, in
    the next chunk, keeps its limit and is skipped."""
    for merchant in ("m1", "m2", "m3"):
        report(book, merchant, rows([1000, 2000, 3000]))
        book.open(merchant, rows([1000, 2000, 3000]))
        report(book, merchant, rows([1000, 2000, 3000, 9000]))
    eod.advance(book, 30, "test")
    last = max(book.list(), key=lambda line: line.account_id)
    withdrawn: list[int] = []

    def after_chunk(done: int, _total: int) -> None:
        if not withdrawn:
            withdrawn.append(done)
            report_consent(book.engine, [last.merchant_id], granted=False)

    result = review(book, "2026-04", chunk=2, workers=1, progress=after_chunk)
    assert withdrawn == [2]
    assert (result.reviewed, result.raised, result.skipped) == (2, 2, {"NO_CONSENT": 1})
    assert book.get(last.account_id).limit_fen == last.limit_fen


def test_every_reviewed_line_is_stored_once_per_month_and_lines_without_data_are_skipped(book) -> None:
    for merchant in ("m1", "m2", "m3"):
        report(book, merchant, rows([1000, 2000, 3000]))
        book.open(merchant, rows([1000, 2000, 3000]))
    report(book, "m1", rows([1000, 2000, 3000, 9000]))  # April reported for m1 only
    report_consent(book.engine, ["m3"], granted=False)  # m3 withdrew consent
    eod.advance(book, 30, "test")
    first = review(book, "2026-04")
    assert (first.lines, first.reviewed, first.skipped) == (3, 1, {"NO_CONSENT": 1, "NO_FEATURES": 1})
    report(book, "m2", rows([1000, 2000, 3000, 1200]))  # late; policy 410,000: within 10 % of 400,000
    second = review(book, "2026-04")
    assert (second.already, second.reviewed, second.kept, second.skipped) == (1, 1, 1, {"NO_CONSENT": 1})
    third = review(book, "2026-04")
    assert (third.already, third.reviewed) == (2, 0)
    with session_scope(book.engine) as session:
        reviews = session.scalar(
            select(func.count()).select_from(changes.LimitChange).where(changes.LimitChange.kind == "review")
        )
        decisions = session.scalar(select(func.count()).select_from(Decision).where(Decision.purpose == "review"))
        limit_entries = session.scalar(select(func.count()).select_from(Entry).where(Entry.kind == "limit"))
        runs = session.scalar(select(func.count()).select_from(changes.ReviewRun))
    assert (reviews, decisions, limit_entries, runs) == (2, 2, 1, 3)


def test_a_chunk_with_a_line_another_run_reviewed_meanwhile_is_refused_and_stores_nothing(book, monkeypatch) -> None:
    lines = {}
    for merchant in ("m1", "m2"):
        report(book, merchant, rows([1000, 2000, 3000]))
        lines[merchant] = book.open(merchant, rows([1000, 2000, 3000])).account_id
        report(book, merchant, rows([1000, 2000, 3000, 5000]))  # both would be raised to 600,000
    eod.advance(book, 30, "test")
    planned = review_module._plan

    def another_run_first(session, *args):  # m2's April record appears while this run plans
        session.add(
            changes.LimitChange(
                account_id=lines["m2"],
                merchant_id="m2",
                kind="review",
                review_month="2026-04",
                on=date(2026, 5, 1),
                at=book.clock.now(),
                action="keep",
                old_limit_fen=400_000,
                new_limit_fen=400_000,
                principal_fen=0,
                reasons=[],
                contributions={},
            )
        )
        session.flush()
        return planned(session, *args)

    monkeypatch.setattr(review_module, "_plan", another_run_first)
    with pytest.raises(BankError, match="another review of 2026-04 stored some of these lines first") as refused:
        review(book, "2026-04", workers=1)
    assert refused.value.kind == "refused"
    with session_scope(book.engine) as session:
        stored = session.scalar(
            select(func.count()).select_from(changes.LimitChange).where(changes.LimitChange.kind == "review")
        )
        decisions = session.scalar(select(func.count()).select_from(Decision).where(Decision.purpose == "review"))
    assert (stored, decisions) == (0, 0)  # the chunk and the injected record rolled back together
    assert [book.get(lines[m]).limit_fen for m in ("m1", "m2")] == [400_000, 400_000]
    monkeypatch.setattr(review_module, "_plan", planned)
    again = review(book, "2026-04", workers=1)
    assert (again.reviewed, again.raised) == (2, 2)
    assert [book.get(lines[m]).limit_fen for m in ("m1", "m2")] == [600_000, 600_000]


def test_a_line_drawn_on_between_the_plan_ahead_and_the_write_turn_is_planned_again(book, monkeypatch) -> None:
    """Where processes take turns to write, a chunk is planned before its turn from a snapshot
    of its lines (`Chunks.takes_turns`); a draw that lands meanwhile must not be cut under."""
    monkeypatch.setattr(fanout.Serial, "takes_turns", property(lambda self: True))
    report(book, "m1", rows([3000, 3000, 3000]))
    line = book.open("m1", rows([3000, 3000, 3000]))  # turnover 300,000 -> limit 600,000
    report(book, "m1", rows([3000, 3000, 3000, 300]))  # Feb-Apr: turnover 210,000 -> policy 420,000
    eod.advance(book, 30, "test")
    planned_limits: list[list[int]] = []
    prepared = review_module._ChunkPlan.prepared

    def a_draw_lands_after_the_plan(plan, dialect):
        planned_limits.append([change["new_limit_fen"] for change in plan.changes])
        if len(planned_limits) == 1:
            book.draw(line.account_id, 500_000, 90)
        return prepared(plan, dialect)

    monkeypatch.setattr(review_module._ChunkPlan, "prepared", a_draw_lands_after_the_plan)
    cut = review(book, "2026-04", workers=1)
    after = book.get(line.account_id)
    assert planned_limits == [[420_000], [500_000]]  # ahead, on the snapshot; again, in the turn
    assert (cut.cut, after.limit_fen, after.principal_fen, after.available_fen) == (1, 500_000, 500_000, 0)
    assert [r["code"] for r in cut.examples[0]["reasons"]] == ["TURNOVER_DOWN", "CUT_HELD_AT_DRAWN", "DRAWS_FROZEN"]


def test_a_chunk_planned_ahead_is_planned_once_when_its_lines_did_not_move(book, monkeypatch) -> None:
    monkeypatch.setattr(fanout.Serial, "takes_turns", property(lambda self: True))
    lines = {}
    for merchant in ("m1", "m2"):
        report(book, merchant, rows([1000, 2000, 3000]))
        lines[merchant] = book.open(merchant, rows([1000, 2000, 3000])).account_id
        report(book, merchant, rows([1000, 2000, 3000, 5000]))  # both raised to 600,000
    eod.advance(book, 30, "test")
    plans = []
    planned = review_module._plan

    def counted(session, *args):
        plans.append(session)
        return planned(session, *args)

    monkeypatch.setattr(review_module, "_plan", counted)
    result = review(book, "2026-04", workers=1)
    assert (len(plans), result.reviewed, result.raised) == (1, 2, 2)
    assert [book.get(lines[m]).limit_fen for m in ("m1", "m2")] == [600_000, 600_000]


def test_a_review_dated_on_a_day_already_accrued_is_refused_and_stores_nothing(book) -> None:
    # Reproduction: a review given a time on a day whose interest was posted already wrote its
    # limit entries there, before entries of later days.
    report(book, "m1", rows([1000, 2000, 3000, 5000]))
    line = book.open("m1", rows([1000, 2000, 3000]))
    eod.advance(book, 30, "test")  # 2026-05-01: accrued through 04-30
    entries = book.entries(line.account_id)
    with pytest.raises(BankError, match="already accrued through 2026-04-30"):
        review(book, "2026-04", now=datetime(2026, 4, 20, 9, 0, tzinfo=UTC))
    assert book.entries(line.account_id) == entries
    assert review(book, "2026-04").reviewed == 1  # on the clock's date


def test_an_end_of_day_run_during_a_review_stops_it_before_a_line_accrued_since(book) -> None:
    # Reproduction: the bank's clock advanced while a review ran; its later chunks still wrote
    # their limit entries on the review's date, a day the end of day had just accrued.
    for merchant in ("m1", "m2"):
        report(book, merchant, rows([1000, 2000, 3000]))
        book.open(merchant, rows([1000, 2000, 3000]))
        report(book, merchant, rows([1000, 2000, 3000, 9000]))
    eod.advance(book, 30, "test")  # 2026-05-01
    first, second = sorted(line.account_id for line in book.list())
    advanced: list[int] = []

    def after_chunk(done: int, _total: int) -> None:
        if not advanced:
            advanced.append(done)
            eod.advance(book, 1, "test")  # 2026-05-02: April 30 and May 1 accrued

    with pytest.raises(BankError, match="the end of day ran during this review"):
        review(book, "2026-04", chunk=1, workers=1, progress=after_chunk)
    assert [(e.kind, e.at[:10]) for e in book.entries(first)][-2:] == [
        ("limit", "2026-05-01"),  # reviewed in the first chunk
        ("interest", "2026-05-02"),  # then the night's end of day
    ]
    assert "limit" not in [e.kind for e in book.entries(second)]
    again = review(book, "2026-04")  # on the new date: the line not stored yet
    assert (again.already, again.reviewed, again.raised) == (1, 1, 1)
    assert (book.entries(second)[-1].kind, book.entries(second)[-1].at[:10]) == ("limit", "2026-05-02")


def test_a_review_of_a_month_the_clock_has_not_reached_is_refused(book) -> None:
    with pytest.raises(BankError, match="month 2026-05 has not begun on the bank's clock"):
        review(book, "2026-05")
    with pytest.raises(BankError, match="expected YYYY-MM"):
        review(book, "2026-13")


def test_reasons_name_only_what_moved_the_way_the_limit_did(book) -> None:
    """Turnover that fell does not explain a raise, a safer band does not explain a cut; when
    nothing moved the limit's way, the policy's limit itself is the reason."""
    [scored] = book.scorer.evaluate([("m1", rows([1000, 2000, 3000]))], consented=True)
    features = list(scored.contributions)
    explainer = book.scorer.explainer(None)
    safe_band, risky_band = book.policy.bands[0], book.policy.bands[1]
    before = Previous(risky_band.max_pd, risky_band.name, 340_000, dict(scored.contributions))
    now = replace(scored, pd=safe_band.max_pd / 2, band=safe_band.name, turnover_fen=300_000)

    def codes(step: ReviewStep, outcome=now, previous=before) -> list[str]:
        [chosen] = moved_features([step], [outcome], [previous], features)
        reasons = review_reasons(step, outcome, previous, book, chosen, explainer)
        return [r.code for r in reasons]

    assert codes(ReviewStep(RAISE, 700_000, False, False, ())) == ["BAND_CHANGE"]
    cut = ReviewStep(CUT, 500_000, True, False, (wording.draws_frozen(),))
    assert codes(cut) == ["TURNOVER_DOWN", "DRAWS_FROZEN"]
    same_band = replace(now, band=risky_band.name, pd=risky_band.max_pd)
    assert codes(ReviewStep(RAISE, 700_000, False, False, ()), same_band) == ["LIMIT_TURNOVER"]


def test_the_features_named_are_those_that_moved_the_limits_way(book) -> None:
    """Contributions a 0.1 -> 0.4, b 0.5 -> 0.3, c -0.2 -> -0.1 moved by (+0.3, -0.2, +0.1): a
    cut is explained by a then c (towards risk), a raise by b alone, a kept line by none; a line
    with no earlier decision by its contributions now."""
    [scored] = book.scorer.evaluate([("m1", rows([1000, 2000, 3000]))], consented=True)
    outcome = replace(scored, contributions={"a": 0.4, "b": 0.3, "c": -0.1})
    before = Previous(0.1, "A", 1, {"a": 0.1, "b": 0.5, "c": -0.2})
    cut = ReviewStep(CUT, 1, True, False, ())
    raise_ = ReviewStep(RAISE, 2, False, False, ())
    keep = ReviewStep(KEEP, 1, False, False, ())
    chosen = moved_features([cut, raise_, keep, cut], [outcome] * 4, [before, before, before, None], ["a", "b", "c"])
    assert chosen.tolist() == [[0, 2, -1], [1, -1, -1], [-1, -1, -1], [0, 1, -1]]
    # an earlier decision by a model of other features is no baseline: the contributions now are
    other_model = Previous(0.1, "A", 1, {"a": 0.1, "z": 0.5})
    assert moved_features([cut], [outcome], [other_model], ["a", "b", "c"]).tolist() == [[0, 1, -1]]
    assert moved_features([], [], [], ["a", "b", "c"]).shape == (0, 3)


def _book_of_forty(url: str, make_model, store: Path, run_report: dict | None = None) -> CreditBook:
    """Forty lines opened on Jan-Mar (limit 400,000), then April reported: 9,000 or 3,000 (a
    raise), 300 (a cut to 350,000, held at 380,000 where drawn) or 1,200 (kept); every fifth
    line drawn, m00's draw past due (its raise is refused). `run_report`: the model's run
    report (its training population, for the monitoring)."""
    registry = Registry(url, store)
    model_dir = make_model(0.03)
    if run_report is not None:
        write_report(model_dir, run_report)
    registry.register(model_dir, anchor=False)
    promote(registry, "v1")
    merchants = [f"m{i:02d}" for i in range(40)]
    report_consent(url, merchants)
    book = CreditBook(url, registry=registry)
    eod.set_date(book, date(2026, 4, 1), "test")
    for i, merchant in enumerate(merchants):
        report(book, merchant, rows([1000, 2000, 3000]))
        line = book.open(merchant, rows([1000, 2000, 3000]))  # limit 400,000
        if i % 5 == 0:
            book.draw(line.account_id, 380_000, 90 if i else 10)  # m00's is due 2026-04-11
        report(book, merchant, rows([1000, 2000, 3000, [9000, 300, 3000, 1200][i % 4]]))
    eod.advance(book, 30, "test")
    return book


def _stored(book: CreditBook) -> list[tuple]:
    """Each review record, in account order: (account, merchant, action, old, new, frozen, reason codes)."""
    LimitChange = changes.LimitChange
    with session_scope(book.engine) as session:
        reviews = session.scalars(
            select(LimitChange).where(LimitChange.kind == "review").order_by(LimitChange.account_id)
        )
        return [
            (
                c.account_id,
                c.merchant_id,
                c.action,
                c.old_limit_fen,
                c.new_limit_fen,
                c.frozen,
                [r["code"] for r in c.reasons],
            )
            for c in reviews
        ]


def test_a_review_shared_by_two_processes_stores_what_one_process_does(db_url, make_model, tmp_path) -> None:
    """Chunks of 3 lines over this process and a worker; the same limits, reasons and freezes
    as a review in one process of an identical book (a SQLite file)."""
    alone = _book_of_forty(
        f"sqlite:///{tmp_path / 'alone.db'}", make_model, tmp_path / "alone-store", training_report()
    )
    shared = _book_of_forty(db_url, make_model, tmp_path / "store", training_report())
    one = review(alone, "2026-04", chunk=3, workers=1)
    two = review(shared, "2026-04", chunk=3, workers=2)
    assert (two.reviewed, two.raised, two.cut, two.kept, two.frozen) == (
        one.reviewed,
        one.raised,
        one.cut,
        one.kept,
        one.frozen,
    )
    assert (two.reviewed, two.raised, two.cut, two.kept, two.frozen) == (40, 19, 10, 11, 10)
    stored = _stored(shared)
    assert sorted(r[1:] for r in stored) == sorted(r[1:] for r in _stored(alone))  # line by line, by merchant
    changed = [r[0] for r in stored if r[2] != KEEP]
    assert [e["account_id"] for e in two.examples] == changed[:20]  # the first changed lines, as alone
    with session_scope(shared.engine) as session:
        decisions = session.scalars(select(Decision.account_id).where(Decision.purpose == "review")).all()
    assert len(decisions) == len(set(decisions)) == 40  # one decision per line, none twice
    # the monitoring of the month from each process's samples, as from one process's
    monitored = _monitoring(shared)
    assert monitored == _monitoring(alone) and monitored["psi:score"][1] == 40 and len(monitored) > 5
    assert review(shared, "2026-04", chunk=3, workers=2).already == 40


def _monitoring(book: CreditBook) -> dict[str, tuple[float | None, int]]:
    with session_scope(book.engine) as session:
        query = select(MonitorRecord.metric, MonitorRecord.value, MonitorRecord.population)
        return {metric: (value, population) for metric, value, population in session.execute(query)}


def test_how_many_processes_a_review_uses(book, monkeypatch) -> None:
    monkeypatch.delenv("YINQI_REVIEW_WORKERS", raising=False)
    monkeypatch.setattr(fanout, "usable_cores", lambda: 4)
    assert review_workers(book, 100_000, 10_000) == 4  # auto: every core
    assert review_workers(book, 30_000, 10_000) == 1  # auto: fewer than two chunks a process
    assert review_workers(book, 30_000, 10_000, asked=3) == 3
    monkeypatch.setenv("YINQI_REVIEW_WORKERS", "2")
    assert review_workers(book, 100_000, 10_000) == 2
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("YINQI_REVIEW_WORKERS", bad)
        with pytest.raises(BankError, match="expected a whole number of processes, at least 1, or 'auto'"):
            review_workers(book, 100_000, 10_000)
    memory = CreditBook("sqlite://", registry=book.scorer.registry)
    assert review_workers(memory, 100_000, 10, asked=4) == 1  # no other process can open it


def test_a_server_warms_review_workers_only_for_a_book_whose_review_would_use_them(book, monkeypatch) -> None:
    warmed: list[bool] = []
    monkeypatch.setattr(fanout, "warm_workers", lambda: warmed.append(True))
    monkeypatch.delenv("YINQI_REVIEW_WORKERS", raising=False)
    assert review_module.warm_workers(book) == 1  # a small book: reviewed in one process
    assert warmed == []
    monkeypatch.setenv("YINQI_REVIEW_WORKERS", "2")
    assert review_module.warm_workers(book) == 2
    assert warmed == [True]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.one_of(st.sampled_from(["2026-01", "2026-02", "2026-03", "2026-04"]), st.none(), st.just(7))),
    st.sampled_from(["2025-12", "2026-02", "2026-03", "2026-05"]),
    st.integers(min_value=1, max_value=4),
)
def test_a_line_is_reviewed_on_its_latest_rows_up_to_the_month(months: list, month: str, keep: int) -> None:
    """`rows_through` keeps the newest `keep` rows dated up to `month`, in their order, and
    names the newest month reported; rows without a month (or with a number) are passed over."""
    reported = [{"n": i} if m is None else {"n": i, "month": m} for i, m in enumerate(months)]
    dated = [r for r in reported if isinstance(r.get("month"), str)]
    kept, latest = review_module.rows_through(reported, month, keep)
    assert kept == [r for r in dated if r["month"] <= month][-keep:]
    assert latest == (dated[-1]["month"] if dated else "")


def test_a_shared_review_ends_on_smaller_chunks() -> None:
    """Two processes: full chunks while each has at least two left, then half of what is left
    per process, down to an eighth of a chunk; one process: full chunks to the end."""
    sizes = [end - start for start, end in review_module.chunk_bounds(100_000, 10_000, 2)]
    assert sizes == [10_000] * 7 + [7_500, 5_625, 4_219, 3_164, 2_373, 1_780, 1_335, 1_250, 1_250, 1_250, 254]
    assert review_module.chunk_bounds(100_000, 10_000, 1) == [(k, k + 10_000) for k in range(0, 100_000, 10_000)]
    assert review_module.chunk_bounds(0, 10_000, 2) == []


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 5_000), st.integers(1, 600), st.integers(1, 8))
def test_chunks_cover_every_line_once_in_order(lines: int, chunk: int, workers: int) -> None:
    bounds = review_module.chunk_bounds(lines, chunk, workers)
    sizes = [end - start for start, end in bounds]
    assert all(end == start for (_, end), (start, _) in pairwise(bounds))  # each starts where the last ended
    assert bounds[:1] == ([(0, sizes[0])] if lines else [])
    assert all(0 < size <= chunk for size in sizes)
    assert sum(sizes) == lines
    assert sizes[:-1] == sorted(sizes[:-1], reverse=True)  # never growing again


def test_a_cut_leaves_a_referral_hold_as_it_is(book) -> None:
    from server.loanbook import freezes

    report(book, "m1", rows([1000, 2000, 3000]))
    line = book.open("m1", rows([1000, 2000, 3000]))
    with session_scope(book.engine) as session:  # an officer's hold, as a referral leaves it
        freezes.freeze(
            session, line.account_id, "referred", "referred: officer to check", date(2026, 4, 1), book.clock.now()
        )
    report(book, "m1", rows([1000, 2000, 3000, 100]))  # Feb-Apr 2,000 / 3,000 / 100: a cut
    eod.advance(book, 30, "test")  # 2026-05-01
    april = review(book, "2026-04")
    assert april.cut == 1
    assert book.get(line.account_id).frozen == "referred since 2026-04-01: referred: officer to check"
