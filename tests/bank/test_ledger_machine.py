"""A credit line driven by random draws, repayments, monthly reviews, promotions of models in
every band and moves of the bank's clock, checked after every step against a model of the
rules written out here: what is refused, where each repayment goes (interest, then the oldest
due draw), the interest each day's end posts at the line's rate, days past due and tiers, what
a review or a promotion does to the limit, the rate and the freeze (`review_limit`'s own rule
is tested in `test_review_rule`), a limit never under what is drawn, the metrics' stocks today
and at each month end, and a ledger whose entries add up to the line's balances and follow the
order of the bank's days."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import count

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from federation.storage import forget_engine
from server.credit.accounts import CreditBook
from server.credit.errors import BankError
from server.credit.interest import accrue_day
from server.credit.promotion import promote
from server.credit.rules import NPL_TIERS, TIERS, Classification
from server.feature_store import FeatureStore
from server.loanbook import eod
from server.loanbook.clock import month_of
from server.loanbook.decide import CUT, KEEP, RAISE, cut_limit, review_limit
from server.loanbook.metrics import metrics
from server.loanbook.review import review
from server.registry import Registry
from tests.bank.conftest import merchant_rows
from tests.consent_helpers import report_consent

ROWS = merchant_rows([1000.0, 2000.0, 3000.0])  # turnover 200,000 fen: band B, limit 400,000 at 9 %


@dataclass
class _Draw:
    id: str
    drawn_on: date
    due_on: date
    owed: int


@dataclass
class _Line:
    """What the line should hold, by the rules."""

    limit: int
    rate_bp: int
    frozen: bool = False  # a review's cut froze new draws
    reviewed: set[str] = field(default_factory=set)  # months
    principal: int = 0
    interest: int = 0
    remainder: int = 0  # the interest's fraction of a fen carried between days
    draws: list[_Draw] = field(default_factory=list)

    def balances(self, on: date, rules: Classification) -> dict[str, int]:
        """Principal owed by tier on `on` (the five tiers, by each draw's days past due)."""
        owed = dict.fromkeys(TIERS, 0)
        for d in self.draws:
            owed[rules.tier_for(max((on - d.due_on).days, 0))] += d.owed
        return owed

    def overdue(self, today: date) -> int:
        return max([0, *((today - d.due_on).days for d in self.draws if d.owed)])


PDS = (0.01, 0.03, 0.08, 0.5)  # bands A, B, C and the decline band of the shipped policy


def test_a_line_under_random_draws_repayments_and_days_keeps_to_the_rules(tmp_path, make_model) -> None:
    models = {pd: make_model(pd) for pd in PDS}
    books = count()
    amounts = st.one_of(st.integers(1, 450_000), st.sampled_from([1, 399_999, 400_000, 400_001]))

    class Line(RuleBasedStateMachine):
        @initialize()
        def open_line(self) -> None:
            """A bank of its own for each run of steps: its clock starts on 2026-01-01."""
            number = next(books)
            self.url = url = f"sqlite:///{tmp_path / f'machine-{number}.db'}"
            self.registry = registry = Registry(url, tmp_path / f"store-{number}")
            registry.register(models[0.03], anchor=False)
            promote(registry, "v1")
            self.pd, self.amounts = 0.03, [1000.0, 2000.0, 3000.0]  # the last decision's PD and turnover
            report_consent(url, ["m1"])
            self.book = book = CreditBook(url, registry=registry)
            eod.set_date(book, date(2026, 1, 1), "test")
            self.rules = book.policy.classification
            view = book.open("m1", ROWS)
            self.account = view.account_id
            self.model = _Line(view.limit_fen, view.annual_rate_bp)
            self.month_ends: dict[str, tuple[str, int, dict[str, int]]] = {}  # month -> (day, drawn, by tier)
            assert (view.limit_fen, view.annual_rate_bp) == (400_000, 900)

        def teardown(self) -> None:
            if hasattr(self, "url"):
                forget_engine(self.url)

        @property
        def today(self) -> date:
            return self.book.clock.today()

        @rule(amount=amounts, term=st.sampled_from([0, 1, 7, 30, 90]))
        def draw(self, amount: int, term: int) -> None:
            line, today = self.model, self.today
            allowed = not line.frozen and line.overdue(today) == 0 and amount <= line.limit - line.principal
            try:
                view = self.book.draw(self.account, amount, term)
            except BankError as exc:
                assert not allowed, f"draw of {amount} refused: {exc}"
                return
            assert allowed, f"draw of {amount} allowed with {line.principal} drawn, {line.overdue(today)} days past due"
            known = {d.id for d in line.draws}
            (new,) = [d for d in view.draws if d.draw_id not in known]
            due = today + timedelta(days=term or self.book.policy.draw.default_term_days)
            assert (new.amount_fen, new.due_on) == (amount, due.isoformat())
            line.principal += amount
            line.draws.append(_Draw(new.draw_id, today, due, amount))

        @rule(share=st.floats(0.0, 1.2), extra=st.integers(-2, 2))
        def repay(self, share: float, extra: int) -> None:
            line = self.model
            owed = line.interest + line.principal
            amount = int(owed * share) + extra
            try:
                self.book.repay(self.account, amount)
            except BankError as exc:
                assert not 0 < amount <= owed, f"repayment of {amount} of {owed} owed refused: {exc}"
                return
            assert 0 < amount <= owed, f"repayment of {amount} allowed with {owed} owed"
            to_interest = min(amount, line.interest)
            line.interest -= to_interest
            left = amount - to_interest
            line.principal -= left
            for d in sorted(line.draws, key=lambda d: (d.due_on, d.drawn_on, d.id)):
                part = min(left, d.owed)
                d.owed -= part
                left -= part
            line.draws = [d for d in line.draws if d.owed]

        @rule(days=st.sampled_from([1, 2, 13, 29, 31, 60, 95, 180]))
        def advance(self, days: int) -> None:
            line, today = self.model, self.today
            for k in range(days):  # the stocks of each month end passed, as they were that day
                day = today + timedelta(days=k)
                if (day + timedelta(days=1)).day == 1:
                    self.month_ends[month_of(day)] = (day.isoformat(), line.principal, line.balances(day, self.rules))
            for _ in range(days):  # each day ends on the principal it ended with
                fen, line.remainder = accrue_day(line.principal, line.rate_bp, line.remainder)
                line.interest += fen
            eod.advance(self.book, days, "test")

        @rule(amounts=st.lists(st.integers(0, 400_000), min_size=3, max_size=3))
        def review(self, amounts: list[int]) -> None:
            """This month's features reported (three months' turnover, in yuan), then reviewed."""
            line, today, policy = self.model, self.today, self.book.policy
            month = month_of(today)
            first = today.replace(day=1)
            before = (first - timedelta(days=1)).replace(day=1)
            last_three = [month_of((before - timedelta(days=1)).replace(day=1)), month_of(before), month]
            yuan = [float(a) for a in amounts]
            rows = [{**row, "month": when} for row, when in zip(merchant_rows(yuan), last_three, strict=True)]
            FeatureStore(self.url).report("platform-1", {"m1": rows})
            result = review(self.book, month)
            if month in line.reviewed:
                assert (result.already, result.reviewed) == (1, 0)
                return
            decided = policy.decide(self.pd, yuan)
            target = decided.limit_fen
            step = review_limit(
                line.limit, line.principal, target, line.overdue(today), "cut" if line.frozen else None, policy
            )
            assert (result.reviewed, result.raised, result.cut, result.kept) == (
                1,
                step.action == RAISE,
                step.action == CUT,
                step.action == KEEP,
            )
            event(f"review: {step.action}{' (frozen)' if line.frozen else ''}")
            line.reviewed.add(month)
            line.rate_bp = decided.annual_rate_bp or line.rate_bp  # a worse risk never makes the debt free
            self.amounts = yuan
            line.limit = step.new_limit_fen
            line.frozen = step.freeze or (line.frozen and not step.unfreeze)

        @rule(pd=st.sampled_from(PDS))
        def promote_a_model(self, pd: float) -> None:
            """A model giving every merchant `pd` promoted: the line re-scored on its last inputs."""
            line = self.model
            version = self.registry.register(models[pd], anchor=False).version
            promote(self.registry, version)
            decided = self.book.policy.decide(pd, self.amounts)
            target = decided.limit_fen
            line.limit = cut_limit(target, line.principal, line.limit) if target < line.limit else target
            line.rate_bp = decided.annual_rate_bp or line.rate_bp
            self.pd = pd
            event(f"promotion to PD {pd}")

        @invariant()
        def balances_draws_and_tiers_are_the_rules(self) -> None:
            line, today = self.model, self.today
            view = self.book.get(self.account)
            assert (view.limit_fen, view.principal_fen, view.interest_fen) == (
                line.limit,
                line.principal,
                line.interest,
            )
            assert view.annual_rate_bp == line.rate_bp
            assert line.principal <= line.limit, "a limit under what is drawn"
            assert view.available_fen == line.limit - line.principal
            assert view.frozen.startswith("cut") == line.frozen, view.frozen
            expected = sorted((d.id, d.owed, d.due_on.isoformat()) for d in line.draws)
            assert sorted((d.draw_id, d.principal_fen, d.due_on) for d in view.draws) == expected
            for d in view.draws:
                dpd = max((today - date.fromisoformat(d.due_on)).days, 0)
                assert (d.days_past_due, d.tier) == (dpd, self.rules.tier_for(dpd))
            assert view.days_past_due == line.overdue(today)

        @invariant()
        def metrics_show_the_stocks_of_today_and_of_each_month_end(self) -> None:
            line, today = self.model, self.today
            months = {m["month"]: m for m in metrics(self.book.engine, self.rules, months=1_000)["months"]}
            now = months[month_of(today)]
            expected = {
                month_of(today): (today.isoformat(), line.principal, line.balances(today, self.rules)),
                **self.month_ends,
            }
            for month, (day, drawn, by_tier) in expected.items():
                got = months[month]
                assert (got["stocks_as_of"], got["drawn_fen"], got["balances_by_tier_fen"]) == (day, drawn, by_tier)
                npl = sum(by_tier[t] for t in NPL_TIERS)
                assert got["npl_fen"] == npl
                assert got["npl_ratio"] == (npl / drawn if drawn else None)
            assert (now["lines"], now["total_limit_fen"]) == (1, line.limit)

        @invariant()
        def the_ledger_adds_up_to_the_balances(self) -> None:
            entries = self.book.entries(self.account)
            drawn = sum(e.amount_fen for e in entries if e.kind == "draw")
            charged = sum(e.amount_fen for e in entries if e.kind == "interest")
            repaid = sum(e.amount_fen for e in entries if e.kind == "repay")
            assert drawn + charged - repaid == self.model.principal + self.model.interest
            assert entries[-1].principal_after == self.model.principal

        @invariant()
        def the_ledger_is_in_the_order_of_its_days(self) -> None:
            # the end of day reads a line's principal from its entries in the order of their
            # days; a promotion once dated its entries by the wall clock instead of the bank's
            days = [e.at[:10] for e in self.book.entries(self.account)]
            assert days == sorted(days), days
            assert days[-1] <= self.today.isoformat()

    run_state_machine_as_test(
        Line, settings=settings(max_examples=25, stateful_step_count=20, deadline=None, database=None)
    )
