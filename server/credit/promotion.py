"""Promoting a model version: it becomes the scoring default and every open credit line is
re-evaluated with it, in one transaction (either all limits change or none)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from federation.storage import write_transaction
from server.credit.accounts import CreditBook
from server.credit.policy import CreditPolicy
from server.registry import Registry


def promote(
    registry: Registry, version: str, *, policy: CreditPolicy | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """Make `version` the scoring default and re-evaluate every open line with it.

    Dated on the bank's business date (`server.loanbook.clock`) unless `now` is given; a `now`
    on a day whose interest is accrued already is refused (`CreditBook.apply_reevaluation`).
    Returns the version and the re-evaluated lines (old and new limits).
    """
    target = registry.get(version)
    book = CreditBook(registry.engine, registry=registry, policy=policy)
    plans = book.plan_reevaluation(target.version)  # scores every open line before writing
    now = now or book.clock.now()
    with write_transaction(registry.engine) as session:
        registry.mark_promoted(session, target.version, now)
        changes = book.apply_reevaluation(session, plans, now=now)
    return {"version": target.version, "reevaluated": changes}
