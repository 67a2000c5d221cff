"""The monthly review: limits that follow each month's data.

`review(book, "2026-03")` takes every open line whose merchant's consent is in force, the
merchant's rows through 2026-03 as its platform reported them (`server.feature_store`: sent over
`PlatformService.ReportFeatures` with the platform's certificate), re-scores them with the
promoted model (or a named one), and moves each limit within the review rules
(`server.loanbook.decide.review_limit`): raised at most so far per review, never cut below what
is drawn, a cut freezes new draws, no raise while a draw is past due. Every reviewed line gets a
`LimitChange` with its reason codes (what moved since the line's last decision: turnover, risk
band, the features whose contributions changed most; a moved line's kept as their facts and
worded when read, `federation.reasons.DeferredReason`) and a `Decision` with the inputs' sha256
and their canonical JSON; a changed limit also gets a ledger entry.

A line is reviewed once per month: a second run, or a run resumed after a crash, reviews only
the lines not reviewed yet. Lines are written in chunks, each chunk in one transaction. An end
of day that runs meanwhile stops the review at its next chunk (whose entries would go before
the days just accrued): the chunks stored stay, and a run on the new date reviews the rest. A line
whose merchant withdrew consent (as its platform had reported when the line's chunk is read, so
a withdrawal during a long review counts for the lines not read yet), or whose platform has not
reported that month, keeps its limit and is counted as skipped with the reason.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any, NamedTuple

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from federation.collector import collector_paused
from federation.config import setting
from federation.explain import top_features
from federation.reasons import TREND_MONTHS, AnyReason
from federation.storage import (
    BackgroundCheckpoints,
    BulkRows,
    batch_param,
    each_batch,
    insert_rows,
    prepare_rows,
    session_scope,
    update_rows,
    values_at,
    write_transaction,
)
from server.consent import ConsentRegistry
from server.credit.accounts import Account, CreditBook, Entry
from server.credit.errors import BankError
from server.feature_store import FeatureStore
from server.loanbook import draws as draw_book
from server.loanbook import fanout, freezes, wording
from server.loanbook.changes import LimitChange, Previous, ReviewRun, latest, reviewed
from server.loanbook.clock import month_of
from server.loanbook.decide import CUT, KEEP, RAISE, ReviewStep, limit_reason, review_limit
from server.monitoring import Sample, TrainingPopulation, monitored_columns, refresh
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
    workers: int = 1  # processes that shared the chunks
    seconds: float = 0.0
    examples: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_month(month: str) -> str:
    if not isinstance(month, str) or not MONTH.match(month):
        raise BankError(f"month {str(month)[:20]!r}: expected YYYY-MM, e.g. 2026-03")
    return month


def rows_through(rows: Sequence[Row], month: str, keep: int) -> tuple[list[Row], str]:
    """The latest `keep` rows up to `month`, and the latest month reported at all (rows
    without a month are passed over). One pass from the newest: most rows are kept."""
    latest_month = ""
    picked: list[Row] = []
    for row in reversed(rows):
        when = row.get("month")
        if not isinstance(when, str):
            continue
        latest_month = latest_month or when
        if when <= month:
            picked.append(row)
            if len(picked) == keep:
                break
    picked.reverse()
    return picked, latest_month


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
    width, named = len(features), set(features)
    pick = values_at(features)
    zero = (0.0,) * width
    now, then, way = [], [], []
    for step, outcome, before in zip(steps, outcomes, previous, strict=True):
        moving = step.action != KEEP
        now.append(pick(outcome.contributions) if moving else zero)
        if moving and before is not None and before.contributions.keys() == named:
            then.append(pick(before.contributions))
        else:
            then.append(zero)
        way.append(1.0 if step.action == CUT else -1.0 if moving else 0.0)
    shape = (len(steps), width)
    moved = (np.array(now, float).reshape(shape) - np.array(then, float).reshape(shape)) * np.array(way)[:, None]
    return top_features(moved, k)


def review_reasons(
    step: ReviewStep,
    outcome: Outcome,
    previous: Previous | None,
    book: CreditBook,
    chosen: Sequence[int],
    explainer: Explainer,
) -> tuple[AnyReason, ...]:
    """Why a limit moved: turnover and band since the last decision when they moved the way
    the limit did (turnover that fell does not explain a raise), the model's features whose
    contributions moved most that way (`chosen`, from `moved_features`), then the policy's
    rules; the policy's limit itself when nothing else does. A moved line's reasons are kept
    as facts (`DeferredReason`), worded when read."""
    policy = book.policy
    if step.action == KEEP:
        return step.reasons
    up = step.action == RAISE
    found: list[AnyReason] = []
    if previous is not None and previous.turnover_fen is not None:
        old, new = previous.turnover_fen, outcome.turnover_fen
        enough = abs(new - old) * 100 >= max(old, 1) * policy.review.min_change_pct
        if old != new and enough and (new > old) == up:
            found.append(wording.turnover_moved_later(old, new, policy.turnover_months))
    if previous is not None and previous.band and previous.band != outcome.band and previous.pd is not None:
        safer = outcome.pd < previous.pd
        if safer == up:
            found.append(wording.band_moved_later(previous.band, outcome.band, previous.pd, outcome.pd))
    found.extend(book.scorer.model_reasons_later(outcome.inputs, outcome.contributions, explainer, chosen))
    if not found and not step.reasons:
        found.append(limit_reason(book.scorer.limit_of(outcome), policy))
    return (*found, *step.reasons)


@dataclass(frozen=True)
class _Plan:
    """What every process of one review needs (picklable: it is sent to the workers)."""

    month: str
    version: str  # the model version, pinned for the whole run
    now: datetime
    bounds: list[tuple[int, int]]  # each chunk's (start, end) in `todo` (`chunk_bounds`)
    todo: list[tuple[str, str]]  # (account, merchant), in account order
    keep: int  # rows per merchant the review looks at
    monitored: tuple[list[str], list[str]] | None  # columns the monitoring compares; None: not run

    @property
    def chunks(self) -> int:
        return len(self.bounds)

    def lines(self, number: int) -> list[tuple[str, str]]:
        """The (account, merchant) lines of chunk `number`."""
        start, end = self.bounds[number]
        return self.todo[start:end]


def chunk_bounds(lines: int, chunk: int, workers: int) -> list[tuple[int, int]]:
    """Each chunk of a review of `lines` as (start, end): chunks of `chunk` lines, but where
    several processes share them, the last ones shrink to half of what is left per process,
    down to an eighth of `chunk`, so that the processes finish about together rather than one
    idling while another writes a whole last chunk."""
    smallest = max(1, chunk // 8)
    bounds, start = [], 0
    while start < lines:
        left = lines - start
        size = chunk if workers <= 1 else min(chunk, max(smallest, -(-left // (2 * workers))))
        bounds.append((start, min(start + size, lines)))
        start += size
    return bounds


@dataclass
class _Part:
    """What one process's chunks did; the parts of a run are added up by `review`."""

    counts: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    examples: list[dict[str, Any]] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)  # the stored decisions, for the monitoring


@dataclass(frozen=True)
class _BookSpec:
    """How a worker process opens the same book: database, model store and policy."""

    url: str
    store: str
    policy: Any

    @classmethod
    def of(cls, book: CreditBook) -> _BookSpec:
        return cls(book.engine.url.render_as_string(hide_password=False), str(book.scorer.registry.store), book.policy)

    def open(self) -> CreditBook:
        from server.registry import Registry

        return CreditBook(self.url, registry=Registry(self.url, self.store), policy=self.policy)


def review_workers(book: CreditBook, lines: int, chunk: int, asked: int | None = None) -> int:
    """Processes for a review of `lines`: `asked`, else the bank's `review_workers` setting
    (`YINQI_REVIEW_WORKERS` or `[bank] review_workers`: a number, or `auto`), else auto: one
    per usable core while each gets at least two chunks (a worker's start-up, a second or two,
    must pay for itself). Always one for an in-memory SQLite database, which no other process
    can open."""
    url = book.engine.url
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        return 1
    if asked is None:
        configured = str(setting("review_workers", "auto", section_name="bank")).strip()
        if configured.lower() != "auto":
            try:
                asked = int(configured)
            except ValueError:
                asked = 0
            if asked < 1:
                raise BankError(
                    f"review_workers {configured[:20]!r} (YINQI_REVIEW_WORKERS or [bank] review_workers): "
                    "expected a whole number of processes, at least 1, or 'auto'"
                )
    if asked is not None:
        if asked < 1:
            raise BankError(f"workers {asked}: expected at least 1 process")
        return asked
    return max(1, min(fanout.usable_cores(), lines // (2 * max(chunk, 1))))


def warm_workers(book: CreditBook) -> int:
    """In a process that runs threads (the bank's gRPC server): start the fork server now if
    a review of this book's open lines would use more than one process
    (`fanout.warm_workers`), so that its workers start at once when a review comes; a small
    book's review runs in one process, and nothing is started. The processes a review would
    use now."""
    with session_scope(book.engine) as session:
        lines = session.scalar(select(func.count()).select_from(Account).where(Account.status == "open")) or 0
    count = review_workers(book, lines, CHUNK)
    if count > 1:
        fanout.warm_workers()
    return count


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
    workers: int | None = None,
) -> ReviewResult:
    """Review every open line for `month` (YYYY-MM); see the module docstring. `now`: the
    time its records are dated (default the bank's clock; a day already accrued is refused).
    `workers`: processes sharing the chunks (`server.loanbook.fanout`; default `review_workers`)."""
    started = time.perf_counter()
    month = check_month(month)
    now = now or book.clock.now()
    today = now.date()
    if month > month_of(today):
        raise BankError(
            f"month {month} has not begun on the bank's clock (business date {today.isoformat()})", "refused"
        )
    scorer, policy, engine = book.scorer, book.policy, book.engine
    name, _, model = scorer.model(version)
    result = ReviewResult(month, today.isoformat(), name)
    with session_scope(engine) as session:
        query = select(Account.id, Account.merchant_id).where(Account.status == "open")
        accounts = session.connection().execute(query).all()
        done = reviewed(session, month)
    result.lines = len(accounts)
    todo = sorted((a, m) for a, m in accounts if a not in done)
    result.already = len(accounts) - len(todo)
    chunk = max(chunk, 1)
    count = result.workers = review_workers(book, len(todo), chunk, workers)
    plan = _Plan(
        month,
        name,
        now,
        chunk_bounds(len(todo), chunk, count),
        todo,
        max(policy.turnover_months, TREND_MONTHS + 1),
        monitored_columns(TrainingPopulation.from_report(model.report)) if monitor else None,
    )
    parts = fanout.run_chunks(
        plan.chunks,
        count,
        lambda chunks: _review_chunks(book, plan, chunks),
        _review_in_worker,
        (_BookSpec.of(book), plan),
        write_lock=engine.dialect.name == "sqlite",
        progress=None if progress is None else lambda lines: progress(lines, len(todo)),
    )
    skipped: Counter[str] = Counter()
    for part in parts:
        for key, value in part.counts.items():
            setattr(result, key, getattr(result, key) + value)
        skipped.update(part.skipped)
    result.examples = sorted((e for part in parts for e in part.examples), key=lambda e: e["account_id"])[:EXAMPLES]
    result.skipped = dict(sorted(skipped.items()))
    if monitor and result.reviewed:
        known = Sample.joined([sample for part in parts for sample in part.samples])
        found = refresh(engine, book.scorer, name, month_of(today), known=known)
        result.alerts = [a.to_dict() for a in found if a.alert]
    result.seconds = time.perf_counter() - started
    with session_scope(engine) as session:
        counts = {k: v for k, v in result.to_dict().items() if k not in ("examples", "alerts", "seconds")}
        session.add(
            ReviewRun(review_month=month, on=today, at=now, model_version=name, counts=counts, seconds=result.seconds)
        )
    return result


def _review_in_worker(payload: tuple[_BookSpec, _Plan], chunks: fanout.Chunks) -> _Part:
    spec, plan = payload
    with collector_paused():
        return _review_chunks(spec.open(), plan, chunks)


def _review_chunks(book: CreditBook, plan: _Plan, chunks: fanout.Chunks) -> _Part:
    """Review the chunks this process takes: each chunk's consent and rows are read (in the
    processes, side by side, not for the whole book before they start), its lines scored,
    then decided and stored in one transaction (`_write`)."""
    part = _Part()
    features, consents = FeatureStore(book.engine), ConsentRegistry(book.engine)
    # where processes take turns to write, each copies the log it wrote into the database
    # while it scores its next chunk (on SQLite; `write_transaction`'s `checkpoint_later`)
    with BackgroundCheckpoints(book.engine) if chunks.takes_turns else nullcontext() as checkpoints:
        while (number := chunks.take()) is not None:
            lines = plan.lines(number)
            with session_scope(book.engine) as session:  # one read: consent in force, rows reported
                granted = consents.consented([m for _, m in lines], session).tolist()
                reported = features.rows([m for (_, m), ok in zip(lines, granted, strict=True) if ok], session)
            requests: list[tuple[str, str, list[Row]]] = []
            for (account, merchant), consented in zip(lines, granted, strict=True):
                if not consented:
                    part.skipped["NO_CONSENT"] += 1
                    continue
                rows, _latest = rows_through(reported.get(merchant, []), plan.month, plan.keep)
                if not rows or rows[-1].get("month") != plan.month:
                    part.skipped["NO_FEATURES"] += 1
                    continue
                requests.append((account, merchant, rows))
            outcomes = book.scorer.evaluate(
                [(m, r) for _, m, r in requests], plan.version, explain=False, checked=True, consented=True
            )
            scored = []
            for (account, _merchant, _rows), outcome in zip(requests, outcomes, strict=True):
                if isinstance(outcome, BankError):
                    part.skipped["NOT_SCORED"] += 1
                else:
                    scored.append((account, outcome))
            if scored:
                decision_ids = _write(book, scored, plan.month, plan.now, part, chunks, checkpoints)
                if plan.monitored is not None:  # made here, side by side, not by the monitoring alone
                    newest = [o.inputs[-1] for _, o in scored]
                    part.samples.append(Sample.of(newest, [o.pd for _, o in scored], *plan.monitored, decision_ids))
            chunks.finished(len(lines))
    return part


class _LineState(NamedTuple):
    """What a line's review step depends on, besides its new score."""

    limit_fen: int
    principal_fen: int
    interest_fen: int
    annual_rate_bp: int
    overdue_days: int
    freeze: str | None  # the kind of its freeze, if frozen
    decision_id: int | None  # its last decision: a promotion's re-evaluation moves it
    accrued_through: date  # the end of day's: moved on if it ran during the review


def _line_states(
    session: Session, ids: Sequence[str], today: date
) -> tuple[dict[str, _LineState], dict[str, freezes.LineFreeze]]:
    """The lines' states, their rows locked where the database can, and their freezes."""
    columns = (
        Account.id,
        Account.limit_fen,
        Account.principal_fen,
        Account.interest_fen,
        Account.annual_rate_bp,
        Account.decision_id,
        Account.accrued_through,
    )
    owing = (draw_book.Draw.account_id, draw_book.Draw.due_on, draw_book.Draw.settled_on)
    if session.get_bind().dialect.name == "sqlite":
        accounts, draws, frozen = _states_in_range(session, ids, columns, owing)
    else:
        query = select(*columns).where(Account.id.in_(batch_param())).with_for_update()
        accounts = list(each_batch(session, query, ids))
        draws = [(d.account_id, d.due_on, d.settled_on) for d in draw_book.owing(session, ids)]
        frozen = freezes.frozen(session, ids)
    overdue: dict[str, int] = {}
    for account, due_on, settled_on in draws:
        overdue[account] = max(overdue.get(account, 0), draw_book.days_past_due(due_on, settled_on, today))
    states = {
        account: _LineState(
            limit,
            principal,
            interest,
            rate,
            overdue.get(account, 0),
            frozen[account].kind if account in frozen else None,
            decision_id,
            accrued_through,
        )
        for account, limit, principal, interest, rate, decision_id, accrued_through in accounts
    }
    return states, frozen


def _states_in_range(
    session: Session, ids: Sequence[str], columns: tuple[Any, ...], owing: tuple[Any, ...]
) -> tuple[list[Any], list[Any], dict[str, freezes.LineFreeze]]:
    """`_line_states`' reads on SQLite: a chunk's lines are neighbours in account order, so
    each table is read once over the chunk's range of ids, and the rows of other lines in it
    (closed, reviewed already) are dropped. One query where ten thousand ids take twenty of
    five hundred parameters each. SQLite compares text bytewise, which is Python's order, so
    the range holds every id; a server database's collation may order them otherwise."""
    wanted = set(ids)
    first, last = min(wanted), max(wanted)
    # plain rows (none of the ORM's loading), each range read whole: iterating a result
    # fetches it a row per driver call, which for ten thousand lines costs more than the query
    read = session.connection().execute
    accounts = [row for row in read(select(*columns).where(Account.id.between(first, last))).all() if row[0] in wanted]
    unsettled = select(*owing).where(
        draw_book.Draw.settled_on.is_(None), draw_book.Draw.account_id.between(first, last)
    )
    draws = [row for row in read(unsettled).all() if row[0] in wanted]
    in_range = select(freezes.LineFreeze).where(freezes.LineFreeze.account_id.between(first, last))
    frozen = {f.account_id: f for f in session.scalars(in_range) if f.account_id in wanted}
    return accounts, draws, frozen


@dataclass
class _ChunkPlan:
    """What one chunk will write, before its decisions have ids (`prepared`, then
    `_ChunkRows.with_decisions`)."""

    account_updates: list[dict[str, Any]] = field(default_factory=list)
    entries: list[dict[str, Any]] = field(default_factory=list)
    entry_lines: list[int] = field(default_factory=list)  # the line of each entry
    changes: list[dict[str, Any]] = field(default_factory=list)
    to_freeze: list[tuple[str, str]] = field(default_factory=list)  # (account, the cut's freeze reason)
    to_lift: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    examples: list[dict[str, Any]] = field(default_factory=list)

    def prepared(self, dialect: Dialect) -> _ChunkRows:
        """The rows' driver parameters (`prepare_rows`), worked out before the write turn."""
        return _ChunkRows(
            prepare_rows(dialect, Account, self.account_updates, updating=True),
            prepare_rows(dialect, Entry, self.entries),
            prepare_rows(dialect, LimitChange, self.changes),
            self.entry_lines,
        )


@dataclass(frozen=True)
class _ChunkRows:
    """A chunk plan's rows ready for the driver, but for their new decisions' ids."""

    account_updates: BulkRows
    entries: BulkRows
    changes: BulkRows
    entry_lines: list[int]  # the line of each entry

    def with_decisions(self, decision_ids: Sequence[int]) -> _ChunkRows:
        """Name each line's new decision in its account update, ledger entry and limit record."""
        return _ChunkRows(
            self.account_updates.setting("decision_id", decision_ids),
            self.entries.setting("decision_id", [decision_ids[line] for line in self.entry_lines]),
            self.changes.setting("decision_id", decision_ids),
            self.entry_lines,
        )


def _plan(
    session: Session,
    book: CreditBook,
    scored: list[tuple[str, Outcome]],
    states: dict[str, _LineState],
    month: str,
    now: datetime,
) -> _ChunkPlan:
    """Decide each scored line's step and reasons, and the rows that record them. The last
    decision of a line is read only when its limit moves: a kept line's reasons are the
    policy's, and most lines are kept in most months."""
    policy, today = book.policy, now.date()
    explainer = book.scorer.explainer(scored[0][1].model_version)  # one version per review
    features = list(scored[0][1].contributions)
    plan = _ChunkPlan()
    steps = []
    for account, o in scored:
        current = states[account]
        steps.append(
            review_limit(
                current.limit_fen, current.principal_fen, o.limit_fen, current.overdue_days, current.freeze, policy
            )
        )
    previous = latest(
        session, [account for (account, _), step in zip(scored, steps, strict=True) if step.action != KEEP]
    )
    before = [previous.get(account) for account, _ in scored]
    chosen = moved_features(steps, [o for _, o in scored], before, features)
    # reasons as stored (a moved line's as facts, `DeferredReason.to_stored`), once per tuple:
    # kept lines share one (`decide`), stored as one JSON text; by identity, the tuple held in
    # the value so that no id is reused meanwhile
    stored: dict[int, tuple[tuple[AnyReason, ...], list[dict[str, Any]]]] = {}
    for line, ((account, o), step) in enumerate(zip(scored, steps, strict=True)):
        current = states[account]
        reasons = review_reasons(step, o, before[line], book, chosen[line], explainer)
        if id(reasons) not in stored:
            stored[id(reasons)] = (reasons, [r.to_stored() for r in reasons])
        plan.actions.append(step.action)
        plan.account_updates.append(
            {
                "id": account,
                "limit_fen": step.new_limit_fen,
                # a line the policy no longer lends to (rate 0) keeps charging its rate on
                # what is drawn: a worse risk never makes the debt free
                "annual_rate_bp": o.annual_rate_bp or current.annual_rate_bp,
                "band": o.band,
                "pd": o.pd,
                "model_version": o.model_version,
                "decision_id": None,
                "updated_at": now,
            }
        )
        # worded here, before the turn to write where processes take turns; a referral's hold
        # stays as it is
        if step.freeze and current.freeze in (None, "cut"):
            plan.to_freeze.append(
                (account, f"review {month} cut the limit: " + "; ".join(r.text_en for r in reasons[:2]))
            )
        if step.unfreeze:
            plan.to_lift.append(account)
        still_frozen = step.freeze or (current.freeze is not None and not step.unfreeze)
        if step.new_limit_fen != current.limit_fen or step.freeze or step.unfreeze:
            plan.entry_lines.append(line)
            plan.entries.append(
                {
                    "account_id": account,
                    "kind": "limit",
                    "amount_fen": step.new_limit_fen - current.limit_fen,
                    "principal_after": current.principal_fen,
                    "interest_after": current.interest_fen,
                    "limit_after": step.new_limit_fen,
                    "model_version": o.model_version,
                    "decision_id": None,
                    "at": now,
                    "note": (
                        f"review {month}: {step.action} {current.limit_fen} -> {step.new_limit_fen}"
                        + ("; draws frozen" if step.freeze else "; freeze lifted" if step.unfreeze else "")
                    )[:256],
                }
            )
        plan.changes.append(
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
                "decision_id": None,
                "model_version": o.model_version,
                "pd": o.pd,
                "band": o.band,
                "turnover_fen": o.turnover_fen,
                "reasons": stored[id(reasons)][1],
                "contributions": o.contributions,
            }
        )
        if step.action != KEEP and len(plan.examples) < EXAMPLES:
            plan.examples.append(
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
    return plan


def _check_not_accrued(states: dict[str, _LineState], today: date) -> None:
    """Refuse a chunk whose lines' interest is accrued through the review's date, whose entries
    would go before the days accrued: the end of day ran while the review did, or the review
    was given an earlier time than the bank's clock. Checked in the chunk's write transaction,
    so it holds for both. The chunks stored stay; a run on the clock's date reviews the rest."""
    late = min((account for account, state in states.items() if state.accrued_through >= today), default=None)
    if late is not None:
        raise BankError(
            f"credit account '{late}' is already accrued through {states[late].accrued_through.isoformat()}, "
            f"not before the review's date {today.isoformat()}: the end of day ran during this review, or it "
            "was given an earlier time; the lines stored stay reviewed: run the review again on the bank's "
            "clock to review the rest",
            "refused",
        )


def _insert_reviews(session: Session, changes: BulkRows, month: str) -> None:
    """Store the chunk's limit records. A line has one review record per month (a unique
    key): if another run reviewed one of these lines meanwhile, the whole chunk is refused
    and rolled back, and that run's record stands."""
    try:
        insert_rows(session, LimitChange, changes)
    except IntegrityError as exc:
        if "review_month" not in str(exc.orig) and "uq_bank_limit_review" not in str(exc.orig):
            raise
        raise BankError(
            f"another review of {month} stored some of these lines first; try again when it has finished "
            "(this run's stored chunks stay, and lines reviewed by either run are not reviewed again)",
            "refused",
        ) from None


def _write(
    book: CreditBook,
    scored: list[tuple[str, Outcome]],
    month: str,
    now: datetime,
    part: _Part,
    chunks: fanout.Chunks,
    checkpoints: BackgroundCheckpoints | None = None,
) -> list[int]:
    """Decide and store one chunk of reviewed lines in one transaction (`chunks.writing()`
    held: the turn of this process to write, when others share the run).

    What does not depend on the lines' current state is worked out before: the new decisions'
    driver parameters (JSON of the inputs). Where processes take turns to write, the chunk is
    also planned before its turn, from a snapshot of its lines' states, while another process
    writes; the turn reads the states again and plans anew only if one moved meanwhile (a
    draw, a repayment, a promotion's re-evaluation). With `checkpoints`, the commit leaves the
    write-ahead log to them (copied in the background once the turn is over). Returns the
    lines' new decisions' ids."""
    today = now.date()
    ids = [account for account, _ in scored]
    decision_rows = prepare_rows(
        book.engine.dialect, Decision, [o.decision_values("review", account, now) for account, o in scored]
    )
    dialect, turns = book.engine.dialect, chunks.takes_turns
    ahead: tuple[dict[str, _LineState], _ChunkPlan, _ChunkRows] | None = None
    if turns:
        with session_scope(book.engine) as session:
            snapshot, _ = _line_states(session, ids, today)
            planned = _plan(session, book, scored, snapshot, month, now)
        ahead = (snapshot, planned, planned.prepared(dialect))
    with chunks.writing(), write_transaction(book.engine, checkpoint_later=checkpoints is not None) as session:
        states, frozen = _line_states(session, ids, today)
        _check_not_accrued(states, today)
        if ahead is not None and ahead[0] == states:
            _, plan, rows = ahead
        else:
            plan = _plan(session, book, scored, states, month, now)
            rows = plan.prepared(dialect)
        decision_ids = insert_rows(session, Decision, decision_rows, ids=True, key="account_id")
        rows = rows.with_decisions(decision_ids)
        update_rows(session, Account, rows.account_updates)
        insert_rows(session, Entry, rows.entries)
        _insert_reviews(session, rows.changes, month)
        # the plan's line states are the ones read in this transaction (planned anew otherwise)
        frozen_now = freezes.freeze_many(session, "cut", dict(plan.to_freeze), today, now, frozen)
        lifted = [a for a in plan.to_lift if a in frozen and frozen[a].kind == "cut"]
        freezes.lift(session, lifted)
    if checkpoints is not None:  # the log copied into the database while this process goes on
        checkpoints.request()
    # committed: count what was written
    actions = Counter(plan.actions)
    part.counts.update(
        reviewed=len(plan.actions),
        raised=actions[RAISE],
        cut=actions[CUT],
        kept=actions[KEEP],
        frozen=frozen_now,
        unfrozen=len(lifted),
    )
    part.examples.extend(plan.examples[: EXAMPLES - len(part.examples)])
    return decision_ids
