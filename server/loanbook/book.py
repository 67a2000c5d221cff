"""The loan book's front door: reviews, the bank's clock, metrics, applications, monitoring and
lifting a hold, over one `CreditBook`. The gRPC `LoanBookService` and the local CLI both call
this, so the answers do not depend on the path."""

from __future__ import annotations

from datetime import date
from typing import Any

from server.credit.accounts import AccountView, CreditBook
from server.credit.errors import BankError
from server.loanbook import applications, eod
from server.loanbook.clock import month_of
from server.loanbook.metrics import metrics
from server.loanbook.review import Progress, ReviewResult, check_month, review
from server.monitoring import MonitorRow, refresh, stored, versions_scoring

OUTCOMES = ("approved", "declined", "referred")
MAX_LISTED = 2_000  # a reply of about 0.8 kB an application stays within 2 MiB


class LoanBook:
    """Operations on the loan book of the bank's database (see the module docstring)."""

    def __init__(self, book: CreditBook) -> None:
        self.book = book
        self.engine = book.engine

    def review(self, month: str, version: str | None = None, progress: Progress | None = None) -> ReviewResult:
        return review(self.book, month, version or None, progress=progress)

    def clock(self) -> dict[str, Any]:
        return {
            **self.book.clock.state().to_dict(),
            "moved_from": "",
            "interest_fen": 0,
            "tier_changes": 0,
            "months_closed": [],
        }

    def advance(self, days: int, who: str) -> dict[str, Any]:
        return self._moved(eod.advance(self.book, days, who))

    def set_date(self, day: str, who: str) -> dict[str, Any]:
        try:
            target = date.fromisoformat(day)
        except (TypeError, ValueError):
            raise BankError(f"date {str(day)[:40]!r}: expected YYYY-MM-DD") from None
        return self._moved(eod.set_date(self.book, target, who))

    @staticmethod
    def _moved(result: dict[str, Any]) -> dict[str, Any]:
        keys = ("today", "month", "source", "changed_at", "changed_by", "interest_fen", "tier_changes", "months_closed")
        return {"moved_from": result["from"], **{k: result[k] for k in keys}}

    def metrics(self, month: str | None = None, months: int = 12) -> dict[str, Any]:
        if month:
            check_month(month)
        if not 0 <= months <= 120:
            raise BankError(f"months {months}: expected 1 to 120 (0: 12)")
        return metrics(self.engine, self.book.policy.classification, month or None, months or 12)

    def applications(
        self, month: str | None = None, merchant: str | None = None, outcome: str | None = None, limit: int = 50
    ) -> list[applications.ApplicationView]:
        if month:
            check_month(month)
        if outcome and outcome not in OUTCOMES:
            raise BankError(f"outcome {outcome[:20]!r}: expected one of {', '.join(OUTCOMES)}")
        if not 0 <= limit <= MAX_LISTED:
            raise BankError(f"limit {limit}: expected 0 to {MAX_LISTED} (0: 50)")
        return applications.listing(self.engine, month or None, merchant or None, outcome or None, limit or 50)

    def monitor(
        self, month: str | None = None, version: str | None = None, *, refresh_now: bool = False
    ) -> list[MonitorRow]:
        month = check_month(month) if month else month_of(self.book.clock.today())
        if not refresh_now:
            return stored(self.engine, month, version or None)
        versions = [self.book.scorer.model(version)[0]] if version else versions_scoring(self.engine, month)
        found: list[MonitorRow] = []
        for name in versions:
            found.extend(refresh(self.engine, self.book.scorer, name, month))
        return found

    def unfreeze(self, account_id: str) -> AccountView:
        return self.book.unfreeze(account_id)
