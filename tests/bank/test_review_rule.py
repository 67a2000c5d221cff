"""The monthly review's rule (`server.loanbook.decide.review_limit`) over every kind of line:
what each action may do to a limit, whatever the line's state, the target and the policy."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from server.credit.policy import Band, CreditPolicy
from server.credit.rules import ReviewRules
from server.loanbook.decide import CUT, KEEP, RAISE, review_limit

BANDS = (Band("A", 0.05, 200, 900), Band("decline", 1.0, 0, 0))
FEN = st.integers(min_value=0, max_value=10**9)


@st.composite
def policies(draw: st.DrawFn) -> CreditPolicy:
    rules = ReviewRules(
        max_raise_pct=draw(st.integers(0, 300)),
        min_change_pct=draw(st.integers(0, 60)),
        no_raise_when_overdue=draw(st.booleans()),
    )
    return CreditPolicy(bands=BANDS, limit_step_fen=draw(st.sampled_from([1, 100, 10_000])), review=rules)


@settings(max_examples=2000, deadline=None)
@given(
    current=FEN,
    principal=FEN,
    target=FEN,
    overdue=st.integers(0, 400),
    frozen=st.sampled_from([None, "cut", "referred"]),
    policy=policies(),
)
# drawn above the limit (a promotion's new model may set a limit below what is drawn): a cut
# held at what is drawn would have raised the limit
@example(current=100_000, principal=150_000, target=50_000, overdue=0, frozen=None, policy=CreditPolicy(bands=BANDS))
# 1 fen on 15 is under 10 %: a tolerance rounded down to a fen let it through
@example(
    current=15,
    principal=0,
    target=16,
    overdue=0,
    frozen=None,
    policy=CreditPolicy(bands=BANDS, limit_step_fen=1, review=ReviewRules(max_raise_pct=50, min_change_pct=10)),
)
def test_each_action_moves_a_limit_only_as_the_review_rules_allow(
    current: int, principal: int, target: int, overdue: int, frozen: str | None, policy: CreditPolicy
) -> None:
    rules = policy.review
    step = review_limit(current, principal, target, overdue, frozen, policy)
    new = step.new_limit_fen
    assert step.action in (RAISE, CUT, KEEP)
    if step.action == KEEP:
        assert new == current and not step.freeze
    elif step.action == RAISE:
        assert current < new <= target and not step.freeze
        assert not (overdue > 0 and rules.no_raise_when_overdue), "raised while a draw is past due"
        if current > 0:
            assert new * 100 <= current * (100 + rules.max_raise_pct), "raised by more than max_raise_pct"
            assert (new - current) * 100 >= current * rules.min_change_pct, "raised by less than min_change_pct"
    else:
        assert target < current, "cut towards a target that is not lower"
        assert target <= new <= current, "a cut that is not one"
        assert new >= min(principal, current), "cut below what is drawn"
        assert step.freeze and not step.unfreeze, "a cut freezes new draws"
        assert (current - target) * 100 >= current * rules.min_change_pct, "cut towards a change too small to make"
    # a review lifts only a cut's freeze (a referral's waits for an officer), never as it cuts
    assert not step.unfreeze or (frozen == "cut" and step.action != CUT)
