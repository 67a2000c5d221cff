"""Revolving credit lines: open from a scoring decision, draw and repay any time, accrue daily.

Money is integer fen. The limit caps the principal; interest is simple interest on the
end-of-day principal of each calendar day (UTC), posted to a separate interest balance, and a
repayment pays interest first, then principal, which goes to the line's draws oldest due first
(`server.loanbook.draws`: each draw has a term, a due date, days past due and a tier). Every
change is a ledger `Entry` carrying the model version and the decision that set the limit in
force. Days are the bank's business dates (`server.loanbook.clock`). Every request runs in one
transaction: a refused request (draw over the limit, unknown account, frozen line, ...) changes
nothing.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, Date, Engine, ForeignKey, Integer, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from federation.storage import (
    UtcDateTime,
    batch_param,
    each_batch,
    insert_rows,
    session_scope,
    update_rows,
    write_transaction,
)
from server.credit.errors import BankError
from server.credit.interest import accrue_day
from server.credit.policy import CreditPolicy
from server.credit.rules import Classification
from server.db import BankBase, bank_engine
from server.loanbook import draws as draw_book
from server.loanbook import freezes, wording
from server.loanbook.changes import LimitChange
from server.loanbook.clock import Clock
from server.loanbook.decide import REFERRED, cut_limit


class Account(BankBase):
    """One merchant's credit line."""

    __tablename__ = "bank_credit_accounts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(String(128), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="open")
    limit_fen: Mapped[int] = mapped_column(BigInteger)
    principal_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    interest_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    interest_remainder: Mapped[int] = mapped_column(BigInteger, default=0)  # over interest.DENOMINATOR
    annual_rate_bp: Mapped[int] = mapped_column(Integer)
    band: Mapped[str] = mapped_column(String(32))
    pd: Mapped[float] = mapped_column()
    model_version: Mapped[str] = mapped_column(String(32))
    decision_id: Mapped[int] = mapped_column(Integer)
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime)
    accrued_through: Mapped[date] = mapped_column(Date)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Entry(BankBase):
    """One ledger line of a credit account (append-only)."""

    __tablename__ = "bank_credit_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("bank_credit_accounts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # open | draw | repay | interest | limit
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    principal_after: Mapped[int] = mapped_column(BigInteger)
    interest_after: Mapped[int] = mapped_column(BigInteger)
    limit_after: Mapped[int] = mapped_column(BigInteger)
    model_version: Mapped[str] = mapped_column(String(32))
    decision_id: Mapped[int] = mapped_column(Integer)
    # by time: the end of day reads the entries since the last night's, not the whole ledger
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    note: Mapped[str] = mapped_column(String(256), default="")


@dataclass(frozen=True)
class AccountView:
    """A credit line as a caller sees it."""

    account_id: str
    merchant_id: str
    status: str
    limit_fen: int
    principal_fen: int
    interest_fen: int
    available_fen: int
    annual_rate_bp: int
    band: str
    pd: float
    model_version: str
    decision_id: int
    accrued_through: str
    frozen: str = ""  # why new draws are frozen ("" when they are not)
    days_past_due: int = 0  # of its most overdue draw
    tier: str = "normal"  # the worst tier of the draws it owes
    draws: tuple[draw_book.DrawView, ...] = ()  # the draws it still owes

    @classmethod
    def of(
        cls,
        a: Account,
        today: date | None = None,
        owing: Sequence[draw_book.Draw] = (),
        freeze: freezes.LineFreeze | None = None,
        rules: Classification | None = None,
    ) -> AccountView:
        views = tuple(draw_book.view(d, today, rules or Classification()) for d in owing) if today else ()
        return cls(
            account_id=a.id,
            merchant_id=a.merchant_id,
            status=a.status,
            limit_fen=a.limit_fen,
            principal_fen=a.principal_fen,
            interest_fen=a.interest_fen,
            available_fen=max(a.limit_fen - a.principal_fen, 0),
            annual_rate_bp=a.annual_rate_bp,
            band=a.band,
            pd=a.pd,
            model_version=a.model_version,
            decision_id=a.decision_id,
            accrued_through=a.accrued_through.isoformat(),
            frozen=freezes.describe(freeze),
            days_past_due=max((v.days_past_due for v in views), default=0),
            tier=draw_book.worst(v.tier for v in views),
            draws=views,
        )

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["draws"] = [d.to_dict() for d in self.draws]
        return data


@dataclass(frozen=True)
class EntryView:
    kind: str
    amount_fen: int
    principal_after: int
    interest_after: int
    limit_after: int
    model_version: str
    decision_id: int
    at: str
    note: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _amount(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise BankError(f"{what} amount must be a positive whole number of fen, got {value!r}")
    return value


Timeline = Sequence[tuple[int, date, int]]  # a line's ledger entries: (id, day, principal after)


def _end_of_day(timeline: Timeline, day: date) -> int:
    """A line's principal at the end of `day`: that of its latest entry (by id) dated on or
    before it; 0 before its first."""
    latest, principal = -1, 0
    for entry_id, on, after in timeline:
        if on <= day and entry_id > latest:
            latest, principal = entry_id, after
    return principal


def _principal_timelines(session: Session, accounts: Sequence[tuple[str, date]]) -> Mapping[str, Timeline]:
    """For each (account, day accrued through), the entries its end-of-day principal over the
    days not accrued yet depends on: every entry dated on or after the first of them, and the
    latest dated before it where needed. Read for the whole book at once, from the entries
    since the earliest such day (by time, indexed), not the whole ledger of each line.

    The entry before is needed only for a line with no entry dated on its first day: a line
    accrued last night has that night's interest entry, dated then, with its principal; entries
    are added in the order of their days (no entry is dated on a day accrued already:
    `_check_time`), so no earlier entry can come after it."""
    if not accounts:
        return {}
    starts = {account_id: accrued_through + timedelta(days=1) for account_id, accrued_through in accounts}
    timelines: dict[str, list[tuple[int, date, int]]] = {}
    earliest = datetime.combine(min(starts.values()), datetime.min.time(), UTC)
    later = select(Entry.account_id, Entry.id, Entry.at, Entry.principal_after).where(Entry.at >= earliest)
    if len(starts) == 1:  # one line's accrual (`bank credit accrue --account`): its entries only
        later = later.where(Entry.account_id.in_(list(starts)))
    for account_id, entry_id, at, principal in session.execute(later):  # any order: by id in `_end_of_day`
        if account_id in starts:
            timelines.setdefault(account_id, []).append((entry_id, at.date(), principal))
    unanchored: dict[date, list[str]] = {}
    for account_id, start in starts.items():
        if not any(on == start for _, on, _ in timelines.get(account_id, ())):
            unanchored.setdefault(start, []).append(account_id)
    for start, ids in unanchored.items():
        begin = datetime.combine(start, datetime.min.time(), UTC)
        last = (
            select(Entry.account_id, func.max(Entry.id).label("id"))
            .where(Entry.at < begin, Entry.account_id.in_(batch_param()))
            .group_by(Entry.account_id)
            .subquery()
        )
        before = select(Entry.account_id, Entry.id, Entry.at, Entry.principal_after).join(last, Entry.id == last.c.id)
        for account_id, entry_id, at, principal in each_batch(session, before, ids):
            timelines.setdefault(account_id, []).append((entry_id, at.date(), principal))
    return timelines


class CreditBook:
    """Credit lines on the bank's database.

    Parameters
    ----------
    engine:
        The bank's database (Engine or URL; default: the configured one).
    scorer:
        Scores merchants when a line opens or is re-evaluated (default: a `Scorer` on the same
        engine, registry and policy).
    """

    def __init__(
        self,
        engine: Engine | str | None = None,
        *,
        scorer: Any = None,
        registry: Any = None,
        policy: CreditPolicy | None = None,
    ) -> None:
        self.engine = bank_engine(engine)
        self._scorer = scorer
        self._registry = registry
        self._policy = policy
        self.clock = Clock(self.engine)

    @property
    def scorer(self) -> Any:
        if self._scorer is None:
            from server.scoring import Scorer

            self._scorer = Scorer(self.engine, registry=self._registry, policy=self._policy)
        return self._scorer

    @property
    def policy(self) -> CreditPolicy:
        policy: CreditPolicy = self.scorer.policy
        return policy

    def _view(self, session: Session, account: Account, today: date | None = None) -> AccountView:
        """The line with its owed draws and freeze, as of the business date."""
        today = today or self.clock.today()
        owing = draw_book.owing(session, [account.id])
        freeze = freezes.frozen(session, [account.id]).get(account.id)
        return AccountView.of(account, today, owing, freeze, self.policy.classification)

    # -- helpers -------------------------------------------------------------------------
    @staticmethod
    def _locked(session: Session, account_id: str) -> Account:
        account = session.scalars(select(Account).where(Account.id == account_id).with_for_update()).first()
        if account is None:
            raise BankError(f"credit account '{account_id}' not found", "not_found")
        return account

    @staticmethod
    def _entry(session: Session, account: Account, kind: str, amount: int, at: datetime, note: str = "") -> None:
        session.add(
            Entry(
                account_id=account.id,
                kind=kind,
                amount_fen=amount,
                principal_after=account.principal_fen,
                interest_after=account.interest_fen,
                limit_after=account.limit_fen,
                model_version=account.model_version,
                decision_id=account.decision_id,
                at=at,
                note=note,
            )
        )
        account.updated_at = at

    @staticmethod
    def _check_time(account: Account, at: datetime) -> None:
        if at.date() <= account.accrued_through:
            raise BankError(
                f"credit account '{account.id}': interest is already accrued through {account.accrued_through}; "
                f"a change dated {at.isoformat()} would rewrite it",
                "refused",
            )

    # -- reading -------------------------------------------------------------------------
    def get(self, account_id: str) -> AccountView:
        with session_scope(self.engine) as session:
            account = session.get(Account, account_id)
            if account is None:
                raise BankError(f"credit account '{account_id}' not found", "not_found")
            return self._view(session, account)

    def for_merchant(self, merchant_id: str) -> AccountView:
        with session_scope(self.engine) as session:
            account = session.scalars(select(Account).where(Account.merchant_id == merchant_id)).first()
            if account is None:
                raise BankError(f"merchant '{merchant_id}' has no credit account", "not_found")
            return self._view(session, account)

    def list(self) -> list[AccountView]:
        today = self.clock.today()
        rules = self.policy.classification
        with session_scope(self.engine) as session:
            accounts = list(session.scalars(select(Account).order_by(Account.opened_at, Account.id)))
            owing: dict[str, builtins.list[draw_book.Draw]] = {}
            for d in draw_book.owing(session):
                owing.setdefault(d.account_id, []).append(d)
            frozen = freezes.all_frozen(session)
            return [AccountView.of(a, today, owing.get(a.id, ()), frozen.get(a.id), rules) for a in accounts]

    def entries(self, account_id: str) -> builtins.list[EntryView]:
        self.get(account_id)
        with session_scope(self.engine) as session:
            rows = session.scalars(select(Entry).where(Entry.account_id == account_id).order_by(Entry.id))
            return [
                EntryView(
                    e.kind,
                    e.amount_fen,
                    e.principal_after,
                    e.interest_after,
                    e.limit_after,
                    e.model_version,
                    e.decision_id,
                    e.at.isoformat(),
                    e.note,
                )
                for e in rows
            ]

    # -- requests ------------------------------------------------------------------------
    def open(
        self,
        merchant_id: str,
        rows: Sequence[dict[str, Any]],
        version: str | None = None,
        *,
        now: datetime | None = None,
    ) -> AccountView:
        """Score the merchant and open a line with the policy's limit (0 when declined).

        The opening is an application (outcome and reasons stored); a referred one opens with
        its draws frozen until an operator lifts the hold (`unfreeze`).
        """
        outcome = self.scorer.evaluate([(merchant_id, rows)], version)[0]
        if isinstance(outcome, BankError):
            raise outcome
        now = now or self.clock.now()
        with write_transaction(self.engine) as session:
            existing = session.scalars(select(Account.id).where(Account.merchant_id == outcome.merchant_id)).first()
            if existing is not None:
                raise BankError(f"merchant '{outcome.merchant_id}' already has credit account '{existing}'", "refused")
            account_id = "CL-" + uuid.uuid4().hex[:10]
            decision = self.scorer.record(session, outcome, "open", account_id, now)
            decision = self.scorer.record_applications(session, [decision], "open", now, account_id)[0]
            account = Account(
                id=account_id,
                merchant_id=outcome.merchant_id,
                status="open",
                limit_fen=outcome.limit_fen,
                principal_fen=0,
                interest_fen=0,
                interest_remainder=0,
                annual_rate_bp=outcome.annual_rate_bp,
                band=outcome.band,
                pd=outcome.pd,
                model_version=outcome.model_version,
                decision_id=decision.decision_id,
                opened_at=now,
                accrued_through=now.date() - timedelta(days=1),
                updated_at=now,
            )
            session.add(account)
            session.flush()
            self._entry(
                session, account, "open", 0, now, f"band {outcome.band}, PD {outcome.pd:.4f}, {decision.outcome}"
            )
            session.add(
                LimitChange(
                    account_id=account_id,
                    merchant_id=outcome.merchant_id,
                    kind="open",
                    review_month=None,
                    on=now.date(),
                    at=now,
                    action="open",
                    old_limit_fen=0,
                    target_limit_fen=outcome.limit_fen,
                    new_limit_fen=outcome.limit_fen,
                    principal_fen=0,
                    frozen=decision.outcome == REFERRED,
                    decision_id=decision.decision_id,
                    model_version=outcome.model_version,
                    pd=outcome.pd,
                    band=outcome.band,
                    turnover_fen=outcome.turnover_fen,
                    reasons=[r.to_dict() for r in decision.reasons],
                    contributions=outcome.contributions,
                )
            )
            if decision.outcome == REFERRED:
                freezes.freeze(session, account_id, "referred", decision.reasons[0].text_en, now.date(), now)
            session.flush()
            return self._view(session, account, now.date())

    def draw(
        self, account_id: str, amount_fen: int, term_days: int | None = None, *, now: datetime | None = None
    ) -> AccountView:
        """Borrow `amount_fen` against the line, due in `term_days` (default: the policy's).

        Refused if it would exceed the limit, if the line is frozen (a review cut it, or its
        application was referred), or while one of its draws is past due.
        """
        amount = _amount(amount_fen, "draw")
        terms = self.policy.draw
        term = terms.default_term_days if term_days is None or term_days == 0 else term_days
        if isinstance(term, bool) or not isinstance(term, int) or not 1 <= term <= terms.max_term_days:
            raise BankError(
                f"draw term {term_days!r} days: expected 1 to {terms.max_term_days} (0: the policy's default)"
            )
        now = now or self.clock.now()
        with write_transaction(self.engine) as session:
            account = self._locked(session, account_id)
            self._check_time(account, now)
            freeze = freezes.frozen(session, [account.id]).get(account.id)
            if freeze is not None:
                raise BankError(
                    f"credit account '{account_id}': new draws are frozen ({freezes.describe(freeze)})", "refused"
                )
            overdue = max(
                (
                    draw_book.days_past_due(d.due_on, d.settled_on, now.date())
                    for d in draw_book.owing(session, [account.id])
                ),
                default=0,
            )
            if overdue > 0:
                raise BankError(
                    f"credit account '{account_id}': a draw is {overdue} days past due; repay it before drawing again",
                    "refused",
                )
            available = max(account.limit_fen - account.principal_fen, 0)
            if amount > available:
                raise BankError(
                    f"credit account '{account_id}': draw of {amount} fen exceeds the available {available} fen "
                    f"(limit {account.limit_fen}, drawn {account.principal_fen})",
                    "refused",
                )
            account.principal_fen += amount
            draw = draw_book.add(session, account.id, account.merchant_id, amount, term, now.date())
            self._entry(session, account, "draw", amount, now, f"{draw.id}, {term} days, due {draw.due_on}")
            session.flush()
            return self._view(session, account, now.date())

    def repay(self, account_id: str, amount_fen: int, *, now: datetime | None = None) -> AccountView:
        """Pay back `amount_fen`: accrued interest first, then principal; no overpayment."""
        amount = _amount(amount_fen, "repay")
        now = now or self.clock.now()
        with write_transaction(self.engine) as session:
            account = self._locked(session, account_id)
            self._check_time(account, now)
            owed = account.interest_fen + account.principal_fen
            if amount > owed:
                raise BankError(
                    f"credit account '{account_id}': repayment of {amount} fen exceeds the {owed} fen owed "
                    f"(interest {account.interest_fen}, principal {account.principal_fen})",
                    "refused",
                )
            to_interest = min(amount, account.interest_fen)
            account.interest_fen -= to_interest
            account.principal_fen -= amount - to_interest
            paid = draw_book.allocate(session, account.id, amount - to_interest, now.date())
            to_draws = "".join(f", {draw} {part}" for draw, part in paid)
            self._entry(
                session,
                account,
                "repay",
                amount,
                now,
                f"interest {to_interest}, principal {amount - to_interest}{to_draws}"[:256],
            )
            session.flush()
            return self._view(session, account, now.date())

    def unfreeze(self, account_id: str, *, now: datetime | None = None) -> AccountView:
        """Lift a line's freeze (an operator's decision, e.g. on a referred application)."""
        now = now or self.clock.now()
        with write_transaction(self.engine) as session:
            account = self._locked(session, account_id)
            self._check_time(account, now)
            freeze = freezes.frozen(session, [account.id]).get(account.id)
            if freeze is None:
                raise BankError(f"credit account '{account_id}' is not frozen", "refused")
            freezes.lift(session, [account.id])
            self._entry(session, account, "unfreeze", 0, now, f"lifted: {freezes.describe(freeze)}"[:256])
            session.flush()
            return self._view(session, account, now.date())

    def accrue(
        self, through: date | None = None, account_id: str | None = None, *, now: datetime | None = None
    ) -> dict[str, Any]:
        """Post daily interest for every whole UTC day up to `through` (default: yesterday).

        Each day's interest is on that day's end-of-day principal, read from the ledger, so a
        late run posts exactly what daily runs would have. Running it twice posts nothing new.
        """
        now = now or self.clock.now()
        through = through or (now.date() - timedelta(days=1))
        if through >= now.date():
            raise BankError(
                f"day {through} has not ended yet (UTC); accrue through {now.date() - timedelta(days=1)} at the latest",
                "invalid",
            )
        posted: dict[str, int] = {}
        # plain rows, updated and inserted in bulk (`update_rows`, `insert_rows`): the nightly
        # run touches every open line, where an ORM object and a flush per line took 50 s for
        # 100,000 lines
        columns = (
            Account.id,
            Account.accrued_through,
            Account.annual_rate_bp,
            Account.interest_fen,
            Account.interest_remainder,
            Account.principal_fen,
            Account.limit_fen,
            Account.model_version,
            Account.decision_id,
        )
        with write_transaction(self.engine) as session:
            query = select(*columns).where(Account.status == "open").order_by(Account.id).with_for_update()
            if account_id is not None:
                query = query.where(Account.id == account_id)
            lines = session.execute(query).all()
            if account_id is not None and not lines:
                raise BankError(f"credit account '{account_id}' not found", "not_found")
            due = [line for line in lines if line.accrued_through < through]
            timelines = _principal_timelines(session, [(line.id, line.accrued_through) for line in due])
            updates, entries = [], []
            for line in due:
                total, remainder = 0, line.interest_remainder
                first = day = line.accrued_through + timedelta(days=1)
                timeline = timelines.get(line.id, ())
                while day <= through:
                    fen, remainder = accrue_day(_end_of_day(timeline, day), line.annual_rate_bp, remainder)
                    total += fen
                    day += timedelta(days=1)
                interest = line.interest_fen + total
                updates.append(
                    {
                        "id": line.id,
                        "interest_fen": interest,
                        "interest_remainder": remainder,
                        "accrued_through": through,
                        "updated_at": now,
                    }
                )
                entries.append(
                    {
                        "account_id": line.id,
                        "kind": "interest",
                        "amount_fen": total,
                        "principal_after": line.principal_fen,
                        "interest_after": interest,
                        "limit_after": line.limit_fen,
                        "model_version": line.model_version,
                        "decision_id": line.decision_id,
                        "at": now,
                        "note": f"days {first}..{through}",
                    }
                )
                posted[line.id] = total
            update_rows(session, Account, updates)
            insert_rows(session, Entry, entries)
        return {
            "through": through.isoformat(),
            "accounts": len(posted),
            "interest_fen": sum(posted.values()),
            "posted": posted,
        }

    # -- promotion -----------------------------------------------------------------------
    def plan_reevaluation(self, version: str) -> builtins.list[tuple[str, Any]]:
        """Score every open line's latest inputs with `version` (no writes yet)."""
        from server.scoring import Decision

        with session_scope(self.engine) as session:
            pairs = list(
                session.execute(
                    select(Account.id, Decision.merchant_id, Decision.inputs)
                    .join(Decision, Decision.id == Account.decision_id)
                    .where(Account.status == "open")
                    .order_by(Account.id)
                )
            )
        if not pairs:
            return []
        outcomes = self.scorer.evaluate([(merchant, inputs) for _, merchant, inputs in pairs], version)
        return [(account_id, outcome) for (account_id, _, _), outcome in zip(pairs, outcomes, strict=True)]

    def apply_reevaluation(
        self, session: Session, plans: builtins.list[tuple[str, Any]], *, now: datetime
    ) -> builtins.list[dict[str, Any]]:
        """Write the new limits (in the caller's transaction); a line whose merchant withdrew
        consent or whose inputs no longer fit keeps its limit, and the reason is reported. A
        `now` on a day whose interest is accrued already is refused (`_check_time`)."""
        changes = []
        for account_id, outcome in plans:
            account = self._locked(session, account_id)
            self._check_time(account, now)
            if isinstance(outcome, BankError):
                changes.append(
                    {
                        "account_id": account_id,
                        "merchant_id": account.merchant_id,
                        "kept": account.limit_fen,
                        "reason": str(outcome),
                    }
                )
                continue
            decision = self.scorer.record(session, outcome, "promotion", account_id, now)
            old = account.limit_fen
            new = cut_limit(outcome.limit_fen, account.principal_fen, old)  # a raise: the new limit
            reasons = list(outcome.reasons)
            if new > outcome.limit_fen:
                reasons.append(wording.cut_held_at_drawn(new, outcome.limit_fen))
            session.add(
                LimitChange(
                    account_id=account_id,
                    merchant_id=account.merchant_id,
                    kind="promotion",
                    review_month=None,
                    on=now.date(),
                    at=now,
                    action="raise" if new > old else "cut" if outcome.limit_fen < old else "keep",
                    old_limit_fen=old,
                    target_limit_fen=outcome.limit_fen,
                    new_limit_fen=new,
                    principal_fen=account.principal_fen,
                    frozen=False,
                    decision_id=decision.decision_id,
                    model_version=outcome.model_version,
                    pd=outcome.pd,
                    band=outcome.band,
                    turnover_fen=outcome.turnover_fen,
                    reasons=[r.to_dict() for r in reasons],
                    contributions=outcome.contributions,
                )
            )
            account.limit_fen = new
            # as a review: a line the new model no longer lends to (rate 0) keeps charging its
            # rate on what is drawn; a worse risk never makes the debt free
            account.annual_rate_bp = outcome.annual_rate_bp or account.annual_rate_bp
            account.band = outcome.band
            account.pd = outcome.pd
            account.model_version = outcome.model_version
            account.decision_id = decision.decision_id
            self._entry(
                session,
                account,
                "limit",
                new - old,
                now,
                f"re-evaluated with {outcome.model_version}: {old} -> {new}"
                + (
                    f" (held at what is drawn; the policy's limit is {outcome.limit_fen})"
                    if new > outcome.limit_fen
                    else ""
                ),
            )
            changes.append(
                {
                    "account_id": account_id,
                    "merchant_id": account.merchant_id,
                    "old_limit_fen": old,
                    "new_limit_fen": new,
                    "band": outcome.band,
                    "pd": outcome.pd,
                }
            )
        return changes
