"""Bulk onboarding (`server.loanbook.onboard.open_many`, what the bank bench sets up its book
with) stores what `CreditBook.open` stores for one merchant, and refuses per merchant."""

from __future__ import annotations

from datetime import date

import pytest

from server.credit.accounts import CreditBook
from server.credit.errors import BankError
from server.credit.policy import CreditPolicy
from server.credit.promotion import promote
from server.credit.rules import ReferralRules
from server.loanbook import eod
from server.loanbook.book import LoanBook
from server.loanbook.changes import history
from server.loanbook.onboard import open_many
from server.registry import Registry
from tests.bank.test_review import rows
from tests.consent_helpers import report_consent


@pytest.fixture
def book(db_url, make_model, tmp_path) -> CreditBook:
    registry = Registry(db_url, tmp_path / "store")
    registry.register(make_model(0.03), anchor=False)
    promote(registry, "v1")
    report_consent(db_url, ["m1", "m2", "m3", "m4", "m5"])
    policy = CreditPolicy(bands=CreditPolicy.load().bands, referral=ReferralRules(0.0, 1_000_000))
    book = CreditBook(db_url, registry=registry, policy=policy)
    eod.set_date(book, date(2026, 1, 1), "test")
    return book


def _same(entries: list) -> list:
    return [(e.kind, e.amount_fen, e.principal_after, e.limit_after, e.model_version, e.note) for e in entries]


def test_open_many_stores_what_open_stores_and_refuses_per_merchant(book: CreditBook) -> None:
    one = book.open("m5", rows([2000, 2000, 2000]))  # limit 400,000 at band B
    results = open_many(
        book,
        [
            ("m1", rows([2000, 2000, 2000])),  # the same as m5's: approved, 400,000
            ("m3", rows([0, 0, 0])),  # no turnover: a line with limit 0
            ("m4", rows([9000, 9000, 9000])),  # 1,800,000 >= 1,000,000: referred, draws frozen
            ("m2", rows([1000, 1000, 1000])),
            ("m2", rows([1000, 1000, 1000])),  # twice in one batch
            ("m5", rows([2000, 2000, 2000])),  # has a line already
            ("stranger", rows([2000, 2000, 2000])),  # no consent
        ],
        chunk=2,  # several transactions
    )
    m1, m3, m4, m2, twice, again, stranger = results
    assert not isinstance(m1, BankError) and not isinstance(m3, BankError) and not isinstance(m4, BankError)
    assert not isinstance(m2, BankError)
    assert isinstance(twice, BankError) and "appears twice in one batch" in str(twice)
    assert isinstance(again, BankError) and f"already has credit account '{one.account_id}'" in str(again)
    assert isinstance(stranger, BankError) and "stranger" in str(stranger)

    assert (m1.limit_fen, m3.limit_fen, m4.limit_fen, m2.limit_fen) == (400_000, 0, 1_800_000, 200_000)
    assert m4.frozen.startswith("referred since 2026-01-01: a limit of 18,000.00 yuan needs a credit officer")
    for view in (m1, m3, m4, m2):  # what was returned is what the bank now reads back
        assert book.get(view.account_id) == view
    # the same ledger, limit record and application as a line opened one at a time
    assert _same(book.entries(m1.account_id)) == _same(book.entries(one.account_id))
    assert history(book.engine, m1.account_id) == history(book.engine, one.account_id)
    with pytest.raises(BankError, match="new draws are frozen"):
        book.draw(m4.account_id, 100)
    january = LoanBook(book).metrics()["months"][-1]
    assert (january["applications"], january["approved"], january["declined"], january["referred"]) == (5, 3, 1, 1)
