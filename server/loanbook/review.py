"""The monthly review: limits that follow each month's data.

`review(book, "2026-03")` takes every open line whose merchant's consent is in force, the
merchant's rows through 2026-03 as its platform reported them (`server.feature_store`: sent over
`PlatformService.ReportFeatures` with the platform's certificate), re-scores them with the
promoted model (or a named one), and moves each limit within the review rules
(`server.loanbook.decide.review_limit`): raised at most so far per review, never cut below what
is drawn, a cut freezes new draws, no raise while a draw is past due. Every reviewed line gets a
`LimitChange` with its reason codes (what moved since the line's last decision: turnover, risk
band, the features whose contributions changed most) and a `Decision` with the inputs' sha256;
a changed limit also gets a ledger entry.

A line is reviewed once per month: a second run, or a run resumed after a crash, reviews only
the lines not reviewed yet. Lines are written in chunks, each chunk in one transaction. A line
whose merchant withdrew consent, or whose platform has not reported that month, keeps its limit
and is counted as skipped with the reason.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Engine, select

from federation.collector import collector_paused
from federation.explain import top_features
from federation.reasons import TREND_MONTHS, Reason
from federation.storage import in_batches, insert_rows, session_scope, update_rows, write_transaction
from server.consent import ReportedConsent
from server.credit.accounts import Account, CreditBook, Entry
from server.credit.errors import BankError
from server.feature_store import ReportedFeatures
from server.loanbook import draws as draw_book
from server.loanbook import freezes, wording
from server.loanbook.changes import LimitChange, Previous, ReviewRun, latest, reviewed
from server.loanbook.clock import month_of
from server.loanbook.decide import CUT, KEEP, RAISE, ReviewStep, limit_reason, review_limit
from server.scoring import Decision, Explainer, Outcome, Row

MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
CHUNK = 10_000  # lines per transaction
EXAMPLES = 20  # changed lines echoed in the result
Progress = Callable[[int, int], None]


@dataclass
class ReviewResult:
    """What a review run did."""

    month: str
    on: str
    model_version: str
    lines: int = 0  # open lines
    already: int = 0  # reviewed for this month by an earlier run
    reviewed: int = 0
    raised: int = 0
    cut: int = 0
    kept: int = 0
    frozen: int = 0  # lines whose new draws this run froze
    unfrozen: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # reason code -> lines
    seconds: float = 0.0
    examples: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_month(month: str) -> str:
    if not isinstance(month, str) or not MONTH.match(month):
        raise BankError(f"month {str(month)[:20]!r}: expected YYYY-MM, e.g. 2026-03")
    return month


def consent_in_force(engine: Engine) -> dict[str, bool]:
    """merchant id -> whether its latest reported consent event is a grant (one pass)."""
    latest_event: dict[str, bool] = {}
    with session_scope(engine) as session:
        query = select(ReportedConsent.merchant_id, ReportedConsent.granted).order_by(
            ReportedConsent.at, ReportedConsent.id
        )
        for merchant, granted in session.execute(query):
            latest_event[merchant] = bool(granted)
    return latest_event


def reported_rows(engine: Engine, merchants: Sequence[str]) -> dict[str, list[Row]]:
    """merchant id -> its reported rows, read in one pass for many merchants."""
    wanted = set(merchants)
    found: dict[str, list[Row]] = {}
    with session_scope(engine) as session:
        if len(wanted) > 5_000:
            query = select(ReportedFeatures.merchant_id, ReportedFeatures.rows)
            found = {m: list(rows) for m, rows in session.execute(query) if m in wanted}
        else:
            for batch in in_batches(sorted(wanted)):
                query = select(ReportedFeatures.merchant_id, ReportedFeatures.rows).where(
                    ReportedFeatures.merchant_id.in_(batch)
                )
                found.update((m, list(rows)) for m, rows in session.execute(query))
    return found


def rows_through(rows: Sequence[Row], month: str, keep: int) -> tuple[list[Row], str]:
    """The latest `keep` rows up to `month`, and the latest month reported at all."""
    dated = [r for r in rows if isinstance(r.get("month"), str)]
    latest_month = str(dated[-1]["month"]) if dated else ""
    upto = [r for r in dated if str(r["month"]) <= month]
    return upto[-keep:], latest_month


def moved_features(
    steps: Sequence[ReviewStep],
    outcomes: Sequence[Outcome],
    previous: Sequence[Previous | None],
    features: Sequence[str],
    k: int = 3,
) -> np.ndarray:
    """Per line, the `k` features whose contributions moved most the way its limit did since
    its last decision (towards risk for a cut, away from it for a raise), as indices into
    `features`; -1 where fewer moved that way, and for kept lines. One call for a whole chunk."""
    if not steps:
        return np.full((0, k), -1)
    width = len(features)
    moved = np.zeros((len(steps), width))
    for line, (step, outcome, before) in enumerate(zip(steps, outcomes, previous, strict=True)):
        if step.action == KEEP:
            continue
        now = np.fromiter((outcome.contributions[f] for f in features), float, width)
        if before is not None and set(before.contributions) == set(features):
            now = now - np.fromiter((before.contributions[f] for f in features), float, width)
        moved[line] = now if step.action == CUT else -now
    return top_features(moved, k)


def review_reasons(
    step: ReviewStep,
    outcome: Outcome,
    previous: Previous | None,
    book: CreditBook,
    chosen: Sequence[int],
    explainer: Explainer,
) -> tuple[Reason, ...]:
    """Why a limit moved: turnover and band since the last decision when they moved the way
    the limit did (turnover that fell does not explain a raise), the model's features whose
    contributions moved most that way (`chosen`, from `moved_features`), then the policy's
    rules; the policy's limit itself when nothing else does."""
    policy = book.policy
    if step.action == KEEP:
        return step.reasons
    up = step.action == RAISE
    found: list[Reason] = []
    if previous is not None and previous.turnover_fen is not None:
        old, new = previous.turnover_fen, outcome.turnover_fen
        enough = abs(new - old) * 100 >= max(old, 1) * policy.review.min_change_pct
        if old != new and enough and (new > old) == up:
            found.append(wording.turnover_moved(old, new, policy.turnover_months))
    if previous is not None and previous.band and previous.band != outcome.band and previous.pd is not None:
        safer = outcome.pd < previous.pd
        if safer == up:
            found.append(wording.band_moved(previous.band, outcome.band, previous.pd, outcome.pd))
    found.extend(book.scorer.model_reasons(outcome.inputs, outcome.contributions, explainer, chosen))
    if not found and not step.reasons:
        found.append(limit_reason(book.scorer.limit_of(outcome), policy))
    return (*found, *step.reasons)


@collector_paused()  # millions of live objects: see federation.collector
def review(
    book: CreditBook,
    month: str,
    version: str | None = None,
    *,
    now: datetime | None = None,
    chunk: int = CHUNK,
    progress: Progress | None = None,
    monitor: bool = True,
) -> ReviewResult:
    """Review every open line for `month` (YYYY-MM); see the module docstring."""
    started = time.perf_counter()
    month = check_month(month)
    now = now or book.clock.now()
    today = now.date()
    if month > month_of(today):
        raise BankError(
            f"month {month} has not begun on the bank's clock (business date {today.isoformat()})", "refused"
        )
    scorer, policy, engine = book.scorer, book.policy, book.engine
    name, _, _ = scorer.model(version)
    result = ReviewResult(month, today.isoformat(), name)
    with session_scope(engine) as session:
        accounts = list(session.execute(select(Account.id, Account.merchant_id).where(Account.status == "open")))
        done = reviewed(session, month)
        previous = latest(session)
    result.lines = len(accounts)
    todo = sorted((a, m) for a, m in accounts if a not in done)
    result.already = len(accounts) - len(todo)
    consent = consent_in_force(engine)
    reported = reported_rows(engine, [m for _, m in todo])
    keep = max(policy.turnover_months, TREND_MONTHS + 1)
    skipped: Counter[str] = Counter()
    written: dict[int, tuple[Row, float]] = {}  # decision id -> (newest row, PD): for the monitoring
    for start in range(0, len(todo), max(chunk, 1)):
        part = todo[start : start + chunk]
        requests: list[tuple[str, str, list[Row]]] = []
        for account, merchant in part:
            if not consent.get(merchant, False):
                skipped["NO_CONSENT"] += 1
                continue
            rows, _latest = rows_through(reported.get(merchant, []), month, keep)
            if not rows or rows[-1].get("month") != month:
                skipped["NO_FEATURES"] += 1
                continue
            requests.append((account, merchant, rows))
        outcomes = scorer.evaluate([(m, r) for _, m, r in requests], name, explain=False, checked=True, consented=True)
        scored = []
        for (account, _merchant, _rows), outcome in zip(requests, outcomes, strict=True):
            if isinstance(outcome, BankError):
                skipped["NOT_SCORED"] += 1
            else:
                scored.append((account, outcome))
        if scored:
            _write(book, scored, previous, month, now, result, written)
        if progress is not None:
            progress(min(start + chunk, len(todo)), len(todo))
    result.skipped = dict(sorted(skipped.items()))
    if monitor and result.reviewed:
        from server.monitoring import refresh

        found = refresh(engine, book.scorer, name, month_of(today), known=written)
        result.alerts = [a.to_dict() for a in found if a.alert]
    result.seconds = time.perf_counter() - started
    with session_scope(engine) as session:
        counts = {k: v for k, v in result.to_dict().items() if k not in ("examples", "alerts", "seconds")}
        session.add(
            ReviewRun(review_month=month, on=today, at=now, model_version=name, counts=counts, seconds=result.seconds)
        )
    return result


def _write(
    book: CreditBook,
    scored: list[tuple[str, Outcome]],
    previous: dict[str, Previous],
    month: str,
    now: datetime,
    result: ReviewResult,
    written: dict[int, tuple[Row, float]],
) -> None:
    """Decide and store one chunk of reviewed lines in one transaction; `written` gets each
    stored decision's newest row and PD (the monitoring refresh need not read them back)."""
    policy, today = book.policy, now.date()
    ids = [account for account, _ in scored]
    explainer = book.scorer.explainer(scored[0][1].model_version)  # one version per review
    with write_transaction(book.engine) as session:
        state = {
            row.id: row
            for row in session.execute(
                select(
                    Account.id, Account.limit_fen, Account.principal_fen, Account.interest_fen, Account.annual_rate_bp
                )
                .where(Account.id.in_(ids))
                .with_for_update()
            )
        }
        if reviewed(session, month, ids):  # another run got here first: leave it to that run
            raise BankError(f"another review of {month} is running; try again when it has finished", "refused")
        overdue: dict[str, int] = {}
        for draw in draw_book.owing(session, ids):
            dpd = draw_book.days_past_due(draw.due_on, draw.settled_on, today)
            overdue[draw.account_id] = max(overdue.get(draw.account_id, 0), dpd)
        frozen = freezes.frozen(session, ids)
        decision_rows = [o.decision_values("review", account, now) for account, o in scored]
        decision_ids = insert_rows(session, Decision, decision_rows, ids=True, key="account_id")
        chunk_written = {i: (o.inputs[-1], o.pd) for (_, o), i in zip(scored, decision_ids, strict=True)}
        features = list(scored[0][1].contributions)
        account_updates, entries, changes, to_freeze, to_lift = [], [], [], [], []
        steps = []
        for account, o in scored:
            current, freeze = state[account], frozen.get(account)
            kind = freeze.kind if freeze else None
            steps.append(
                review_limit(
                    current.limit_fen, current.principal_fen, o.limit_fen, overdue.get(account, 0), kind, policy
                )
            )
        before = [previous.get(account) for account, _ in scored]
        chosen = moved_features(steps, [o for _, o in scored], before, features)
        for line, ((account, o), decision_id, step) in enumerate(zip(scored, decision_ids, steps, strict=True)):
            current, freeze = state[account], frozen.get(account)
            reasons = review_reasons(step, o, before[line], book, chosen[line], explainer)
            account_updates.append(
                {
                    "id": account,
                    "limit_fen": step.new_limit_fen,
                    # a line the policy no longer lends to (rate 0) keeps charging its rate on
                    # what is drawn: a worse risk never makes the debt free
                    "annual_rate_bp": o.annual_rate_bp or current.annual_rate_bp,
                    "band": o.band,
                    "pd": o.pd,
                    "model_version": o.model_version,
                    "decision_id": decision_id,
                    "updated_at": now,
                }
            )
            if step.freeze:
                to_freeze.append((account, reasons))
            if step.unfreeze:
                to_lift.append(account)
            still_frozen = step.freeze or (freeze is not None and not step.unfreeze)
            if step.new_limit_fen != current.limit_fen or step.freeze or step.unfreeze:
                entries.append(
                    {
                        "account_id": account,
                        "kind": "limit",
                        "amount_fen": step.new_limit_fen - current.limit_fen,
                        "principal_after": current.principal_fen,
                        "interest_after": current.interest_fen,
                        "limit_after": step.new_limit_fen,
                        "model_version": o.model_version,
                        "decision_id": decision_id,
                        "at": now,
                        "note": (
                            f"review {month}: {step.action} {current.limit_fen} -> {step.new_limit_fen}"
                            + ("; draws frozen" if step.freeze else "; freeze lifted" if step.unfreeze else "")
                        )[:256],
                    }
                )
            changes.append(
                {
                    "account_id": account,
                    "merchant_id": o.merchant_id,
                    "kind": "review",
                    "review_month": month,
                    "on": today,
                    "at": now,
                    "action": step.action,
                    "old_limit_fen": current.limit_fen,
                    "target_limit_fen": o.limit_fen,
                    "new_limit_fen": step.new_limit_fen,
                    "principal_fen": current.principal_fen,
                    "frozen": still_frozen,
                    "decision_id": decision_id,
                    "model_version": o.model_version,
                    "pd": o.pd,
                    "band": o.band,
                    "turnover_fen": o.turnover_fen,
                    "reasons": [r.to_dict() for r in reasons],
                    "contributions": o.contributions,
                }
            )
            result.reviewed += 1
            if step.action == RAISE:
                result.raised += 1
            elif step.action == CUT:
                result.cut += 1
            else:
                result.kept += 1
            if step.action != KEEP and len(result.examples) < EXAMPLES:
                result.examples.append(
                    {
                        "account_id": account,
                        "merchant_id": o.merchant_id,
                        "action": step.action,
                        "old_limit_fen": current.limit_fen,
                        "new_limit_fen": step.new_limit_fen,
                        "band": o.band,
                        "pd": o.pd,
                        "reasons": [r.to_dict() for r in reasons],
                    }
                )
        update_rows(session, Account, account_updates)
        insert_rows(session, Entry, entries)
        insert_rows(session, LimitChange, changes)
        cut_reasons = {
            account: f"review {month} cut the limit: " + "; ".join(r.text_en for r in reasons[:2])
            for account, reasons in to_freeze
            if account not in frozen or frozen[account].kind == "cut"  # a referral's hold stays as it is
        }
        result.frozen += freezes.freeze_many(session, "cut", cut_reasons, today, now, frozen)
        lifted = [a for a in to_lift if a in frozen and frozen[a].kind == "cut"]
        freezes.lift(session, lifted)
        result.unfrozen += len(lifted)
    written.update(chunk_written)  # committed
