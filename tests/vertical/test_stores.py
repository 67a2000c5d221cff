"""Each side's vertical tables on SQLite and PostgreSQL through the same code."""

from __future__ import annotations

import pytest

from clients.vertical.store import SessionBook, SessionError
from federation.psi.protocol import PsiResult
from server.vertical.ledger import LabelBudgetExceeded, LabelLedger
from server.vertical.store import PsiStore, PsiStoreError


def test_psi_results_are_stored_once_and_read_back(db_url: str) -> None:
    store = PsiStore(db_url)
    matches = tuple((f"M{i}", i * 3) for i in range(1000))
    store.save("a1" * 16, "shop-a", PsiResult(1000, 5000, 4000, matches))
    store.save("b2" * 16, "shop-a", PsiResult(7, 10, 10, None))
    run = store.get("a1" * 16)
    assert (run.platform, run.cardinality, run.matches) == ("shop-a", 1000, matches)
    assert store.get("b2" * 16).matches is None
    with pytest.raises(PsiStoreError, match="already stored"):
        store.save("a1" * 16, "shop-a", PsiResult(0, 1, 1, ()))
    with pytest.raises(PsiStoreError, match="not stored at this bank"):
        store.get("c3" * 16)


def test_a_platform_keeps_its_session_order(db_url: str) -> None:
    book = SessionBook(db_url)
    order = [f"M{i:05d}" for i in range(20_000)]
    book.save("d4" * 16, "bank:50061", order, 30_000, 12_000)
    assert book.get("d4" * 16).order == order
    with pytest.raises(SessionError, match="run `yinqi psi run` first"):
        book.get("e5" * 16)


def test_the_label_ledger_refuses_a_run_past_the_budget_and_records_nothing(db_url: str) -> None:
    ledger = LabelLedger(db_url)
    common = {"session_id": "s", "platform": "shop-a", "mechanism": "rr", "delta": 0.0, "rows": 10, "budget": 5.0}
    assert ledger.charge(run_id="1", epsilon=2.0, **common) == pytest.approx(2.0)
    assert ledger.charge(run_id="2", epsilon=2.0, **common) == pytest.approx(4.0)
    with pytest.raises(LabelBudgetExceeded, match=r"spent 4\.000 in earlier runs"):
        ledger.charge(run_id="3", epsilon=2.0, **common)
    assert [e.run_id for e in ledger.entries()] == ["1", "2"]
