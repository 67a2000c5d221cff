"""Opening many credit lines at once (a batch of onboarded merchants): what `CreditBook.open`
does for one — score, application with reasons, line, ledger entry, limit record, hold for a
referral — for thousands, with bulk inserts, a chunk per transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from federation.collector import collector_paused
from federation.storage import insert_rows, write_transaction
from server.credit.accounts import Account, AccountView, CreditBook, Entry
from server.credit.errors import BankError
from server.loanbook import freezes
from server.loanbook.applications import Application
from server.loanbook.changes import LimitChange
from server.loanbook.decide import REFERRED
from server.scoring import Decision, Outcome, Row

CHUNK = 10_000


@collector_paused()  # millions of live objects: see federation.collector
def open_many(
    book: CreditBook,
    requests: Sequence[tuple[str, Sequence[Row]]],
    version: str | None = None,
    *,
    now: datetime | None = None,
    chunk: int = CHUNK,
) -> list[AccountView | BankError]:
    """Open a line for each (merchant, rows); per merchant its line or why not (no consent,
    bad rows, a line already open)."""
    evaluated = book.scorer.evaluate(requests, version)
    results: dict[int, AccountView | BankError] = {i: r for i, r in enumerate(evaluated) if isinstance(r, BankError)}
    scored: list[tuple[int, Outcome]] = []
    seen: set[str] = set()
    for i, r in enumerate(evaluated):
        if isinstance(r, BankError):
            continue
        if r.merchant_id in seen:
            results[i] = BankError(f"merchant '{r.merchant_id}' appears twice in one batch")
        else:
            seen.add(r.merchant_id)
            scored.append((i, r))
    now = now or book.clock.now()
    step = max(chunk, 1)
    for start in range(0, len(scored), step):
        part = scored[start : start + step]
        with write_transaction(book.engine) as session:
            merchants = [o.merchant_id for _, o in part]
            query = select(Account.merchant_id, Account.id).where(Account.merchant_id.in_(merchants))
            existing = {merchant: account for merchant, account in session.execute(query)}
            fresh: list[tuple[int, Outcome, str]] = []
            for i, outcome in part:
                if outcome.merchant_id in existing:
                    results[i] = BankError(
                        f"merchant '{outcome.merchant_id}' already has credit account '{existing[outcome.merchant_id]}'",
                        "refused",
                    )
                else:
                    fresh.append((i, outcome, "CL-" + uuid.uuid4().hex[:10]))
            if fresh:
                decisions = _store(session, fresh, now)
                for (i, outcome, account), decision in zip(fresh, decisions, strict=True):
                    results[i] = _view(outcome, account, decision, now)
    return [results[i] for i in range(len(evaluated))]


def _store(session: Any, fresh: list[tuple[int, Outcome, str]], now: datetime) -> list[int]:
    """Decisions, applications, lines, ledger entries, limit records and holds; the decision ids."""
    decision_rows = [o.decision_values("open", account, now) for _, o, account in fresh]
    decision_ids = insert_rows(session, Decision, decision_rows, ids=True, key="account_id")
    insert_rows(
        session,
        Application,
        [
            replace(o, decision_id=decision).application_values("open", account, now)
            for (_, o, account), decision in zip(fresh, decision_ids, strict=True)
        ],
    )
    insert_rows(
        session,
        Account,
        [
            {
                "id": account,
                "merchant_id": o.merchant_id,
                "status": "open",
                "limit_fen": o.limit_fen,
                "principal_fen": 0,
                "interest_fen": 0,
                "interest_remainder": 0,
                "annual_rate_bp": o.annual_rate_bp,
                "band": o.band,
                "pd": o.pd,
                "model_version": o.model_version,
                "decision_id": decision,
                "opened_at": now,
                "accrued_through": now.date() - timedelta(days=1),
                "updated_at": now,
            }
            for (_, o, account), decision in zip(fresh, decision_ids, strict=True)
        ],
    )
    insert_rows(
        session,
        Entry,
        [
            {
                "account_id": account,
                "kind": "open",
                "amount_fen": 0,
                "principal_after": 0,
                "interest_after": 0,
                "limit_after": o.limit_fen,
                "model_version": o.model_version,
                "decision_id": decision,
                "at": now,
                "note": f"band {o.band}, PD {o.pd:.4f}, {o.outcome}",
            }
            for (_, o, account), decision in zip(fresh, decision_ids, strict=True)
        ],
    )
    insert_rows(
        session,
        LimitChange,
        [
            {
                "account_id": account,
                "merchant_id": o.merchant_id,
                "kind": "open",
                "review_month": None,
                "on": now.date(),
                "at": now,
                "action": "open",
                "old_limit_fen": 0,
                "target_limit_fen": o.limit_fen,
                "new_limit_fen": o.limit_fen,
                "principal_fen": 0,
                "frozen": o.outcome == REFERRED,
                "decision_id": decision,
                "model_version": o.model_version,
                "pd": o.pd,
                "band": o.band,
                "turnover_fen": o.turnover_fen,
                "reasons": [r.to_dict() for r in o.reasons],
                "contributions": o.contributions,
            }
            for (_, o, account), decision in zip(fresh, decision_ids, strict=True)
        ],
    )
    for _, o, account in fresh:
        if o.outcome == REFERRED:
            freezes.freeze(session, account, "referred", o.reasons[0].text_en, now.date(), now)
    return decision_ids


def _view(o: Outcome, account: str, decision: int, now: datetime) -> AccountView:
    return AccountView(
        account_id=account,
        merchant_id=o.merchant_id,
        status="open",
        limit_fen=o.limit_fen,
        principal_fen=0,
        interest_fen=0,
        available_fen=o.limit_fen,
        annual_rate_bp=o.annual_rate_bp,
        band=o.band,
        pd=o.pd,
        model_version=o.model_version,
        decision_id=decision,
        accrued_through=(now.date() - timedelta(days=1)).isoformat(),
        frozen=f"referred since {now.date().isoformat()}: {o.reasons[0].text_en}" if o.outcome == REFERRED else "",
    )
