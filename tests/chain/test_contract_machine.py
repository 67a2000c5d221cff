"""`ReceivableFinancing` driven by random calls from every party (the right one or not), moves
of the chain's clock and suppliers revoked and onboarded again, each checked against a model of
the contract's rules written out here: who may do what in which state, the debtor's limit
taken and given back, amounts conserved across splits, and the state, holder and amount of
every receivable after every step. Calls whose outcome hangs on a second (a due date reached
as the block is mined) are not made."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from itertools import count

import pytest
from eth_utils import keccak
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from contracts import receivables as rv
from contracts.errors import ChainError
from contracts.roles import add_party, revoke_party

DAY = 86400
SUPPLIERS = ("supplier", "supplier2", "supplier3")
CALLERS = (*SUPPLIERS, "debtor", "bank")
# who calls: half the time the party the call is for (None: the holder, the bank, the debtor)
BY = st.one_of(st.none(), st.sampled_from(CALLERS))
OPEN = ("Created", "Rejected")
NEAR = 120  # seconds either side of a time limit in which the outcome is not predicted
DONE: Counter[str] = Counter()  # calls that succeeded, by function: the run reached them


@dataclass
class _Receivable:
    holder: str
    amount: int
    due: int
    document: int
    state: str = "Created"


@pytest.mark.slow
def test_the_contract_keeps_to_its_rules_under_random_calls(chain) -> None:  # type: ignore[no-untyped-def]
    documents = count()
    base = chain.w3.testing.snapshot()

    class Financing(RuleBasedStateMachine):
        @initialize(
            limit=st.integers(0, 3_000_000),
            tenor_days=st.integers(1, 90),
            grace_days=st.integers(0, 40),
        )
        def terms(self, limit: int, tenor_days: int, grace_days: int) -> None:
            chain.w3.testing.revert(base)
            rv.set_limit(chain, "debtor", limit, tenor_days, advance_bps=9_000, discount_bps_per_year=500)
            rv.set_grace_period(chain, grace_days * DAY)
            self.limit, self.tenor, self.grace = limit, tenor_days * DAY, grace_days * DAY
            self.used = 0
            self.revoked: set[str] = set()
            self.receivables: dict[int, _Receivable] = {}
            self.face: dict[int, int] = {}  # document -> face value at creation

        def teardown(self) -> None:
            chain.w3.testing.revert(base)

        # -- helpers ---------------------------------------------------------------------
        def near(self, *limits: int) -> bool:
            now = chain.now()
            return any(abs(now - at) <= NEAR for at in limits)

        def pick(self, index: int) -> tuple[int, _Receivable]:
            rid = sorted(self.receivables)[index % len(self.receivables)]
            return rid, self.receivables[rid]

        def attempt(self, allowed: bool, call, *args, **kwargs):  # type: ignore[no-untyped-def]
            """Make the call, which must succeed exactly when the rules allow it; its result,
            or None when refused."""
            try:
                result = call(chain, *args, **kwargs)
            except ChainError as exc:
                assert not allowed, f"{call.__name__}{args} refused: {exc}"
                assert "\n" not in str(exc)
                return None
            assert allowed, f"{call.__name__}{args} {kwargs} allowed against the rules"
            DONE[call.__name__] += 1
            return True if result is None else result

        def supplier(self, name: str) -> bool:
            return name in SUPPLIERS and name not in self.revoked

        def release(self, r: _Receivable) -> None:
            if r.state in ("Approved", "Financed"):
                self.used = max(self.used - r.amount, 0)

        # -- calls -----------------------------------------------------------------------
        @rule(
            to=st.one_of(st.sampled_from(SUPPLIERS), st.sampled_from(CALLERS)),
            amount=st.integers(1, 2_000_000),
            days=st.integers(1, 120),
        )
        def create(self, to: str, amount: int, days: int) -> None:
            due, document = chain.now() + days * DAY, next(documents)
            allowed = self.supplier(to)
            rid = self.attempt(allowed, rv.create, to, amount, due, keccak(f"doc-{document}".encode()))
            if rid is not None:
                self.receivables[rid] = _Receivable(to, amount, due, document)
                self.face[document] = amount

        @rule(index=st.integers(0, 50), by=BY, to=st.sampled_from(CALLERS), part=st.integers(0, 2_000_001))
        @precondition(lambda self: self.receivables)
        def transfer_or_split(self, index: int, by: str | None, to: str, part: int) -> None:
            picked = self.pick(index)
            if self.near(picked[1].due):
                return
            rid, r = picked
            by = by or r.holder
            allowed = (
                by == r.holder
                and r.state in OPEN
                and chain.now() < r.due
                and to not in (r.holder, "debtor")
                and self.supplier(to)
            )
            if part >= r.amount:  # the whole of it
                if self.attempt(allowed, rv.transfer, rid, to, sender=by):
                    r.holder = to
                return
            child = self.attempt(allowed and part > 0, rv.split, rid, to, part, sender=by)
            if child is not None:
                r.amount -= part
                self.receivables[child] = _Receivable(to, part, r.due, r.document)

        @rule(index=st.integers(0, 50), by=BY)
        @precondition(lambda self: self.receivables)
        def apply(self, index: int, by: str | None) -> None:
            picked = self.pick(index)
            if self.near(picked[1].due, picked[1].due - self.tenor):
                return
            rid, r = picked
            by = by or r.holder
            allowed = by == r.holder and self.supplier(by) and r.state in OPEN and chain.now() < r.due
            automatic = self.limit > 0 and self.used + r.amount <= self.limit and r.due - chain.now() <= self.tenor
            approved = self.attempt(allowed, rv.apply, rid, sender=by)
            if approved is None:
                return
            assert approved is automatic
            r.state = "Approved" if automatic else "FinancingRequested"
            self.used += r.amount if automatic else 0

        @rule(index=st.integers(0, 50), by=BY, over_limit=st.booleans())
        @precondition(lambda self: self.receivables)
        def approve(self, index: int, by: str | None, over_limit: bool) -> None:
            picked = self.pick(index)
            if self.near(picked[1].due):
                return
            rid, r = picked
            by = by or "bank"
            pending = r.state == "FinancingRequested" and chain.now() < r.due and self.supplier(r.holder)
            within = self.limit > 0 and r.amount <= max(self.limit - self.used, 0)
            if over_limit:
                done = self.attempt(by == "bank" and pending, rv.approve_over_limit, rid, "board", sender=by)
            else:
                done = self.attempt(by == "bank" and pending and within, rv.approve, rid, sender=by)
            if done:
                r.state = "Approved"
                self.used += r.amount

        @rule(index=st.integers(0, 50), by=BY)
        @precondition(lambda self: self.receivables)
        def reject(self, index: int, by: str | None) -> None:
            picked = self.pick(index)
            rid, r = picked
            by = by or "bank"
            allowed = by == "bank" and r.state == "FinancingRequested"
            if self.attempt(allowed, rv.reject, rid, "no", sender=by):
                r.state = "Rejected"

        @rule(index=st.integers(0, 50), by=BY)
        @precondition(lambda self: self.receivables)
        def fund(self, index: int, by: str | None) -> None:
            picked = self.pick(index)
            if self.near(picked[1].due):
                return
            rid, r = picked
            by = by or "bank"
            something_to_advance = r.amount * 9_000 // 10_000 > 0  # an advance of 0 is refused
            allowed = (
                by == "bank"
                and r.state == "Approved"
                and chain.now() < r.due
                and self.supplier(r.holder)
                and something_to_advance
            )
            funded = self.attempt(allowed, rv.fund, rid, sender=by)
            if funded is not None:
                advance, discount = funded
                assert advance + discount == r.amount * 9_000 // 10_000 and advance > 0
                r.state = "Financed"

        @rule(index=st.integers(0, 50), by=BY)
        @precondition(lambda self: self.receivables)
        def repay(self, index: int, by: str | None) -> None:
            picked = self.pick(index)
            rid, r = picked
            by = by or "debtor"
            allowed = by == "debtor" and r.state != "Repaid"
            paid = self.attempt(allowed, rv.repay, rid, sender=by)
            if paid is not None:
                payee, late = paid
                assert late is (r.state == "Defaulted")
                financed = r.state == "Financed" or (late and payee == chain.address("bank"))
                assert payee == chain.address("bank" if financed else r.holder)
                self.release(r)
                r.state = "Repaid"

        @rule(index=st.integers(0, 50), by=BY)
        @precondition(lambda self: self.receivables)
        def default(self, index: int, by: str | None) -> None:
            picked = self.pick(index)
            if self.near(picked[1].due + self.grace):
                return
            rid, r = picked
            by = by or "bank"
            allowed = by == "bank" and r.state not in ("Repaid", "Defaulted") and chain.now() > r.due + self.grace
            if self.attempt(allowed, rv.mark_defaulted, rid, sender=by):
                self.release(r)
                r.state = "Defaulted"

        @rule(index=st.integers(0, 50))
        @precondition(lambda self: self.receivables)
        def next_step(self, index: int) -> None:
            """The right party moves a receivable one step along the usual path."""
            _, r = self.pick(index)
            if r.state in OPEN:
                self.apply(index, None)
            elif r.state == "FinancingRequested":
                self.approve(index, None, over_limit=r.amount > max(self.limit - self.used, 0))
            elif r.state == "Approved":
                self.fund(index, None)
            elif r.state == "Financed":
                self.repay(index, None)

        @rule(who=st.sampled_from(SUPPLIERS))
        def revoke_or_onboard(self, who: str) -> None:
            if who in self.revoked:
                add_party(chain, who, "supplier")
                self.revoked.discard(who)
            else:
                revoke_party(chain, who, "supplier")
                self.revoked.add(who)

        @rule(days=st.integers(1, 30), hours=st.integers(0, 23))
        def time_passes(self, days: int, hours: int) -> None:
            chain.time_travel(chain.now() + days * DAY + hours * 3600)

        # -- what must hold after every step ------------------------------------------------
        @invariant()
        def every_receivable_is_as_the_rules_left_it(self) -> None:
            for rid, r in self.receivables.items():
                got = rv.get(chain, rid)
                assert (got.state, got.holder, got.amount) == (r.state, chain.address(r.holder), r.amount), rid
            assert rv.remaining_limit(chain, "debtor") == max(self.limit - self.used, 0)

        @invariant()
        def splits_conserve_each_documents_face_value(self) -> None:
            total: dict[int, int] = {}
            for r in self.receivables.values():
                total[r.document] = total.get(r.document, 0) + r.amount
            assert total == self.face

    DONE.clear()
    run_state_machine_as_test(
        Financing, settings=settings(max_examples=20, stateful_step_count=40, deadline=None, database=None)
    )
    # the runs went past the first steps: receivables were financed and repaid
    assert {"create", "apply", "fund", "repay"} <= set(DONE), dict(DONE)
