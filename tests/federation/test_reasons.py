"""Reasons kept as their facts (`DeferredReason`) read back in the very words the eager wording
gives, through a JSON round trip as the database stores them; rows worded by older code, and
rows naming a wording this code does not know, still read."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from federation.reasons import (
    FEATURE_CODES,
    DeferredReason,
    Reason,
    deferred_feature_reason,
    feature_reason,
    from_stored,
    stored_as_read,
    words,
)
from server.loanbook import wording


def through_json(reason: DeferredReason) -> Reason:
    """As stored in a JSON column, then read."""
    return from_stored(orjson.loads(orjson.dumps(reason.to_stored())))


numbers = st.floats(min_value=-1e7, max_value=1e7, allow_nan=False)
values = st.one_of(numbers, st.integers(-1000, 1000), st.sampled_from(["food", "toys", "n/a"]), st.none())


@st.composite
def merchant_rows(draw: st.DrawFn) -> list[dict]:
    count = draw(st.integers(1, 7))
    return [
        {
            "month": f"2026-{i + 1:02d}",
            "amount": draw(st.one_of(numbers, st.none())),
            "growth": draw(numbers),
            "avg_rating": draw(values),
            "inventory_turnover": draw(values),
            "count": draw(values),
            "past_defaults": draw(values),
            "first_month": draw(values),
            "category": draw(values),
        }
        for i in range(count)
    ]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    rows=merchant_rows(),
    feature=st.sampled_from([*FEATURE_CODES, "unknown feature"]),
    contribution=st.one_of(st.just(0.0), numbers),
    mean=st.one_of(st.none(), numbers),
)
# Found by Hypothesis: a starting turnover of 5e-324 made the trend infinite, stored as null.
@example(
    rows=[{"month": f"2026-0{i + 1}", "amount": a} for i, a in enumerate([5e-324, None, 0.0, 1.0])],
    feature="amount",
    contribution=0.0,
    mean=None,
)
def test_a_feature_reason_kept_as_facts_reads_as_the_worded_one(
    rows: list[dict], feature: str, contribution: float, mean: float | None
) -> None:
    means = {} if mean is None else {feature: mean}
    worded = feature_reason(feature, contribution, rows, means)
    deferred = deferred_feature_reason(feature, contribution, rows, means)
    assert through_json(deferred) == worded
    assert deferred.to_dict() == worded.to_dict()
    assert (deferred.code, deferred.text_en, deferred.text_zh) == (worded.code, worded.text_en, worded.text_zh)


@pytest.mark.parametrize(
    ("later", "eager"),
    [
        (wording.turnover_moved_later(267_246, 233_334, 3), wording.turnover_moved(267_246, 233_334, 3)),
        (wording.turnover_moved_later(86_402, 103_321, 3), wording.turnover_moved(86_402, 103_321, 3)),
        (
            wording.band_moved_later("D", "decline", 0.151, 0.256),
            wording.band_moved("D", "decline", 0.151, 0.256),
        ),
        (wording.raise_capped_later(50, 660_000), wording.raise_capped(50, 660_000)),
        (wording.cut_held_at_drawn_later(500_000, 420_000), wording.cut_held_at_drawn(500_000, 420_000)),
        (wording.draws_frozen_later(), wording.draws_frozen()),
    ],
)
def test_a_policy_reason_kept_as_facts_reads_as_the_worded_one(later: DeferredReason, eager: Reason) -> None:
    assert through_json(later) == eager
    assert later.code == eager.code
    stored = later.to_stored()
    assert "text_en" not in stored and "text_zh" not in stored  # the facts only


def test_facts_take_less_room_than_words() -> None:
    rows = [{"month": "2026-01", "amount": 3000.0}, {"month": "2026-04", "amount": 1900.0}]
    facts = [
        wording.turnover_moved_later(267_246, 233_334, 3),
        wording.band_moved_later("D", "decline", 0.151, 0.256),
        deferred_feature_reason("amount", 0.8, rows, {"amount": 2500.0}),
        wording.draws_frozen_later(),
    ]
    stored = len(orjson.dumps([r.to_stored() for r in facts]))
    worded = len(orjson.dumps([r.to_dict() for r in facts]))
    assert stored * 2 < worded


def test_reasons_stored_in_words_by_earlier_code_read_unchanged() -> None:
    old = wording.turnover_moved(100_000, 50_000, 3).to_dict()
    assert stored_as_read([old]) == [old]
    assert stored_as_read(None) == []


@pytest.mark.parametrize(
    "stored",
    [
        {"code": "SOMETHING_NEW", "words": "a wording from a later version", "args": [1, "x"]},
        {"code": "TURNOVER_DOWN", "words": "turnover_moved", "args": ["not", "numbers", "here"]},
        {"code": "TURNOVER_DOWN", "words": "turnover_moved", "args": [1]},  # too few
        {"code": "TURNOVER_DOWN", "words": "turnover_moved", "args": "not a list"},
        {
            "code": "TURNOVER",
            "words": "feature",
            "args": [1.0, None, ["x", 3]],
            "feature": "amount",
            "contribution": "?",
        },
    ],
)
def test_a_stored_reason_that_cannot_be_worded_reads_as_its_code_and_facts(stored: dict) -> None:
    (read,) = stored_as_read([stored])
    assert read["code"] == stored["code"]
    assert read["text_en"].startswith(stored["code"]) and read["text_zh"].startswith(stored["code"])


def test_a_wording_name_is_registered_once() -> None:
    with pytest.raises(ValueError, match="registered already"):
        words("turnover_moved")(lambda *args: Reason("X", "x", "x"))


def test_an_entry_that_is_not_a_reason_at_all_is_shown_not_dropped() -> None:
    read = stored_as_read([{"code": "DRAWS_FROZEN", "words": "draws_frozen", "args": []}, "text", 7])
    assert [r["code"] for r in read] == ["DRAWS_FROZEN", "UNREADABLE", "UNREADABLE"]
    assert "text" in read[1]["text_en"]
