"""The lending policy's decisions, as pure functions of numbers: an application's outcome
(approved, declined, referred) and what a monthly review does to a limit."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from federation.reasons import AnyReason, Reason
from server.credit.policy import CreditPolicy, LimitDecision
from server.loanbook import wording

APPROVED, DECLINED, REFERRED = "approved", "declined", "referred"
RAISE, CUT, KEEP = "raise", "cut", "keep"


def limit_reason(limit: LimitDecision, policy: CreditPolicy) -> Reason:
    """The policy's limit in words: a multiple of the recent turnover, in the merchant's band."""
    band = next(b for b in policy.bands if b.name == limit.band)
    return wording.limit_turnover(
        band.turnover_multiple_pct, limit.turnover_fen, policy.turnover_months, band.name, limit.pd
    )


def application_outcome(limit: LimitDecision, policy: CreditPolicy) -> tuple[str, tuple[Reason, ...]]:
    """Approved with the policy's limit and rate, declined (limit 0), or referred to a person."""
    band = next(b for b in policy.bands if b.name == limit.band)
    if band.turnover_multiple_pct == 0:
        lends_up_to = max((b.max_pd for b in policy.bands if b.turnover_multiple_pct > 0), default=0.0)
        return DECLINED, (wording.decline_band(limit.pd, lends_up_to),)
    if limit.limit_fen <= 0:
        return DECLINED, (wording.no_turnover(policy.turnover_months),)
    reasons = [limit_reason(limit, policy)]
    if (
        limit.limit_fen == policy.max_limit_fen
        and limit.turnover_fen * band.turnover_multiple_pct // 100 > policy.max_limit_fen
    ):
        reasons.append(wording.limit_cap(policy.max_limit_fen))
    rules = policy.referral
    if rules.refer_pd_from > 0 and limit.pd >= rules.refer_pd_from:
        return REFERRED, (wording.refer_pd(limit.pd, rules.refer_pd_from), *reasons)
    if rules.refer_limit_from_fen > 0 and limit.limit_fen >= rules.refer_limit_from_fen:
        return REFERRED, (wording.refer_limit(limit.limit_fen, rules.refer_limit_from_fen), *reasons)
    return APPROVED, tuple(reasons)


@dataclass(frozen=True)
class ReviewStep:
    """What a review does to one line: the action, the new limit, the freeze, and why."""

    action: str  # raise | cut | keep
    new_limit_fen: int
    freeze: bool  # a cut freezes new draws
    unfreeze: bool  # a review that keeps or raises lifts a cut's freeze
    reasons: tuple[AnyReason, ...]  # a moved line's kept as facts (`wording.*_later`)


@lru_cache(maxsize=16)
def _too_small(min_change_pct: int) -> tuple[Reason, ...]:
    """A kept line's usual reasons: one tuple shared by every such line of a review, which
    words and stores it once (`server.loanbook.review`)."""
    return (wording.change_too_small(min_change_pct),)


def cut_limit(target_fen: int, principal_fen: int, current_fen: int) -> int:
    """Where a cut towards `target_fen` lands: never below what is drawn, and never above the
    current limit (a line drawn above its limit keeps the limit: a cut does not raise it). A
    target at or above the current limit is where it lands."""
    return max(target_fen, min(principal_fen, current_fen))


def _below_min_change(change_fen: int, current_fen: int, min_change_pct: int) -> bool:
    """Whether a change is too small to make: under `min_change_pct` % of the current limit,
    compared exactly (a rounded-down tolerance would let a change of a fen under it through)."""
    return change_fen < 1 or change_fen * 100 < current_fen * min_change_pct


def review_limit(
    current_fen: int,
    principal_fen: int,
    target_fen: int,
    overdue_days: int,
    frozen_kind: str | None,
    policy: CreditPolicy,
) -> ReviewStep:
    """The review rule (`server.credit.rules.ReviewRules`) for one line.

    `target_fen` is the policy's limit for the merchant's new month; `frozen_kind` the line's
    freeze (`cut`, `referred`) or None. A referral's freeze stays until an operator lifts it.
    """
    rules = policy.review
    lifts = frozen_kind == "cut"
    if target_fen > current_fen:
        if overdue_days > 0 and rules.no_raise_when_overdue:
            return ReviewStep(KEEP, current_fen, False, False, (wording.overdue_no_raise(overdue_days),))
        if current_fen > 0:
            cap = current_fen * (100 + rules.max_raise_pct) // 100
            cap = max(cap // policy.limit_step_fen * policy.limit_step_fen, current_fen)
        else:
            cap = target_fen
        new = min(target_fen, cap)
        if current_fen > 0 and _below_min_change(new - current_fen, current_fen, rules.min_change_pct):
            return ReviewStep(KEEP, current_fen, False, lifts, _too_small(rules.min_change_pct))
        capped = (wording.raise_capped_later(rules.max_raise_pct, target_fen),) if new < target_fen else ()
        return ReviewStep(RAISE, new, False, lifts, capped)
    if target_fen < current_fen:
        if _below_min_change(current_fen - target_fen, current_fen, rules.min_change_pct):
            return ReviewStep(KEEP, current_fen, False, lifts, _too_small(rules.min_change_pct))
        new = cut_limit(target_fen, principal_fen, current_fen)
        reasons: tuple[AnyReason, ...] = (wording.draws_frozen_later(),)
        if new > target_fen:
            reasons = (wording.cut_held_at_drawn_later(new, target_fen), *reasons)
        return ReviewStep(CUT, new, True, False, reasons)
    return ReviewStep(KEEP, current_fen, False, lifts, ())
