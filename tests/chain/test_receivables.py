"""The receivable lifecycle on the embedded EVM: roles, automatic approval, circulation,
refusals by named custom error, due dates and double financing."""

from __future__ import annotations

import pytest
from eth_utils import keccak

from contracts import receivables as rv
from contracts.errors import ChainError

DAY = 86400


def _create(chain, amount: int = 1_000_000, days: int = 60, doc: bytes = b"invoice-1") -> int:  # type: ignore[no-untyped-def]
    return rv.create(chain, "supplier", amount, chain.now() + days * DAY, keccak(doc))


def _refused(error_name: str, action, *args, **kwargs) -> ChainError:  # type: ignore[no-untyped-def]
    with pytest.raises(ChainError) as info:
        action(*args, **kwargs)
    assert info.value.error_name == error_name, str(info.value)
    assert error_name in str(info.value)
    return info.value


def _terms(chain, limit: int = 10_000_000, **kwargs) -> None:  # type: ignore[no-untyped-def]
    """Terms without automatic approval (tenor 0): the bank decides within `limit`."""
    rv.set_limit(chain, "debtor", limit, max_tenor_days=kwargs.pop("max_tenor_days", 0), **kwargs)


def test_full_lifecycle_create_apply_approve_fund_repay(chain) -> None:  # type: ignore[no-untyped-def]
    _terms(chain)
    rid = _create(chain)
    assert rv.get(chain, rid).state == "Created"
    assert rv.apply(chain, rid, sender="supplier") is False  # outside the automatic tenor: the bank decides
    assert rv.get(chain, rid).state == "FinancingRequested"
    rv.approve(chain, rid)
    assert rv.get(chain, rid).state == "Approved"
    advance, discount = rv.fund(chain, rid)
    funded = rv.get(chain, rid)
    assert (funded.state, funded.advance, funded.discount) == ("Financed", advance, discount)
    assert funded.financier == chain.address("bank")
    assert funded.turnaround_seconds is not None and funded.turnaround_seconds >= 0
    assert rv.repay(chain, rid) == (chain.address("bank"), False)  # financed: the bank is paid
    assert rv.get(chain, rid).state == "Repaid"


def test_rejected_application_can_be_made_again(chain) -> None:  # type: ignore[no-untyped-def]
    rid = _create(chain)
    rv.apply(chain, rid, sender="supplier")
    rv.reject(chain, rid, "documents incomplete")
    assert rv.get(chain, rid).state == "Rejected"
    rv.apply(chain, rid, sender="supplier")
    assert rv.get(chain, rid).state == "FinancingRequested"


def test_application_within_limit_and_terms_is_approved_by_the_contract(chain) -> None:  # type: ignore[no-untyped-def]
    rv.set_limit(chain, "debtor", 1_500_000, max_tenor_days=90, advance_bps=9_000, discount_bps_per_year=730)
    first = _create(chain, 1_000_000, doc=b"a")
    second = _create(chain, 1_000_000, doc=b"b")  # would exceed the remaining 500,000
    long_dated = _create(chain, 100_000, days=200, doc=b"c")  # outside the 90-day terms
    assert rv.apply(chain, first, sender="supplier") is True
    assert rv.get(chain, first).state == "Approved"
    assert rv.remaining_limit(chain, "debtor") == 500_000
    assert rv.apply(chain, second, sender="supplier") is False
    assert rv.apply(chain, long_dated, sender="supplier") is False
    assert rv.get(chain, second).state == "FinancingRequested"
    advance, discount = rv.fund(chain, first)
    # 90 % advanced, 7.3 %/yr discount for the ~60 days left.
    assert advance + discount == 900_000
    assert 10_700 <= discount <= 10_800
    rv.repay(chain, first)
    assert rv.remaining_limit(chain, "debtor") == 1_500_000  # repayment frees the limit


def test_transfer_and_split_conserve_amounts_and_keep_title_history(chain) -> None:  # type: ignore[no-untyped-def]
    rid = _create(chain, 1_000_000)
    child = rv.split(chain, rid, "supplier2", 300_000, sender="supplier")
    grandchild = rv.split(chain, child, "supplier3", 100_000, sender="supplier2")
    rv.transfer(chain, rid, "supplier3", sender="supplier")
    amounts = [rv.get(chain, i).amount for i in (rid, child, grandchild)]
    assert amounts == [700_000, 200_000, 100_000]
    assert sum(amounts) == 1_000_000
    name = chain.name_of
    assert [name(a) for a in rv.title_history(chain, rid)] == ["supplier", "supplier3"]
    assert [name(a) for a in rv.title_history(chain, child)] == ["supplier", "supplier2"]
    assert [name(a) for a in rv.title_history(chain, grandchild)] == ["supplier", "supplier2", "supplier3"]
    assert rv.children(chain, rid) == [child] and rv.get(chain, grandchild).parent_id == child
    # financing follows the current holder
    _terms(chain)
    _refused("NotHolder", rv.apply, chain, rid, sender="supplier")
    assert rv.apply(chain, grandchild, sender="supplier3") is False
    rv.approve(chain, grandchild)
    rv.fund(chain, grandchild)
    assert rv.get(chain, grandchild).state == "Financed"
    assert rv.get(chain, child).state == "Created"


def test_events_record_each_state_change_in_order(chain) -> None:  # type: ignore[no-untyped-def]
    _terms(chain)
    rid = _create(chain)
    rv.transfer(chain, rid, "supplier2", sender="supplier")
    rv.apply(chain, rid, sender="supplier2")
    rv.approve(chain, rid)
    rv.fund(chain, rid)
    rv.repay(chain, rid)
    names = [e["event"] for e in rv.events(chain) if e["args"].get("id") == rid]
    assert names == [
        "ReceivableCreated",
        "Transferred",
        "FinancingRequested",
        "FinancingApproved",
        "Financed",
        "Repaid",
    ]


def test_double_financing_is_impossible(chain) -> None:  # type: ignore[no-untyped-def]
    _terms(chain)
    rid = _create(chain, doc=b"invoice-77")
    rv.apply(chain, rid, sender="supplier")
    rv.approve(chain, rid)
    rv.fund(chain, rid)
    _refused("AlreadyFinanced", rv.fund, chain, rid)
    _refused("AlreadyFinanced", rv.apply, chain, rid, sender="supplier")
    _refused("AlreadyFinanced", rv.approve, chain, rid)
    _refused("AlreadyFinanced", rv.split, chain, rid, "supplier2", 1, sender="supplier")
    _refused("AlreadyFinanced", rv.transfer, chain, rid, "supplier2", sender="supplier")
    # the same invoice cannot be recorded again to be financed a second time
    _refused("DocumentAlreadyUsed", _create, chain, doc=b"invoice-77")


UNAUTHORIZED = "AccessControlUnauthorizedAccount"


@pytest.mark.parametrize(
    ("error_name", "scenario"),
    [
        (UNAUTHORIZED, lambda c, r: rv.fund(c, r, sender="supplier")),
        (UNAUTHORIZED, lambda c, r: rv.approve(c, r, sender="debtor")),
        (UNAUTHORIZED, lambda c, r: rv.set_limit(c, "debtor", 1, 30, sender="debtor")),
        (UNAUTHORIZED, lambda c, r: rv.set_grace_period(c, 0, sender="supplier")),
        (UNAUTHORIZED, lambda c, r: rv.approve_over_limit(c, r, "board", sender="supplier")),
        (UNAUTHORIZED, lambda c, r: rv.create(c, "supplier", 1, c.now() + DAY, keccak(b"z"), sender="auditor")),
        (UNAUTHORIZED, lambda c, r: rv.mark_defaulted(c, r, sender="supplier2")),
        ("NotParty", lambda c, r: rv.create(c, "auditor", 1, c.now() + DAY, keccak(b"z"))),
        ("NotParty", lambda c, r: rv.transfer(c, r, "auditor", sender="supplier")),
        ("NotParty", lambda c, r: rv.set_limit(c, "auditor", 1, 30)),
        ("NotHolder", lambda c, r: rv.apply(c, r, sender="supplier2")),
        ("NotHolder", lambda c, r: rv.transfer(c, r, "supplier2", sender="debtor")),
        ("NotHolder", lambda c, r: rv.split(c, r, "supplier2", 5, sender="supplier2")),
        ("NotDebtor", lambda c, r: rv.repay(c, r, sender="supplier")),
        ("UnknownReceivable", lambda c, r: rv.apply(c, 999, sender="supplier")),
        ("WrongState", lambda c, r: rv.fund(c, r)),
        ("WrongState", lambda c, r: rv.approve(c, r)),
        ("WrongState", lambda c, r: rv.reject(c, r)),
        ("AmountOutOfRange", lambda c, r: rv.create(c, "supplier", 0, c.now() + DAY, keccak(b"z"))),
        ("AmountOutOfRange", lambda c, r: rv.create(c, "supplier", 10**15 + 1, c.now() + DAY, keccak(b"z"))),
        ("DueDateNotInFuture", lambda c, r: rv.create(c, "supplier", 1, c.now() - 1, keccak(b"z"))),
        ("DueDateTooFar", lambda c, r: rv.create(c, "supplier", 1, c.now() + 99_999_999_999 * DAY, keccak(b"z"))),
        ("EmptyDocument", lambda c, r: rv.create(c, "supplier", 1, c.now() + DAY, bytes(32))),
        ("InvalidSplit", lambda c, r: rv.split(c, r, "supplier2", 1_000_000, sender="supplier")),
        ("InvalidSplit", lambda c, r: rv.split(c, r, "supplier2", 0, sender="supplier")),
        ("InvalidRecipient", lambda c, r: rv.transfer(c, r, "debtor", sender="supplier")),
        ("InvalidRecipient", lambda c, r: rv.create(c, "debtor", 1, c.now() + DAY, keccak(b"z"))),
        ("InvalidTerms", lambda c, r: rv.set_limit(c, "debtor", 1, 30, advance_bps=10_001)),
        ("InvalidTerms", lambda c, r: rv.set_limit(c, "debtor", 1, 30, discount_bps_per_year=10_001)),
        ("LimitOutOfRange", lambda c, r: rv.set_limit(c, "debtor", 10**18 + 1, 30)),
        ("GracePeriodTooLong", lambda c, r: rv.set_grace_period(c, 366 * DAY)),
        ("NotOverdue", lambda c, r: rv.mark_defaulted(c, r, sender="bank")),
    ],
)
def test_every_refusal_reverts_with_its_named_error(chain, error_name: str, scenario) -> None:  # type: ignore[no-untyped-def]
    rid = _create(chain)
    err = _refused(error_name, scenario, chain, rid)
    assert str(err).count("\n") == 0  # one line for the user


def test_repaid_receivable_cannot_be_repaid_or_defaulted(chain) -> None:  # type: ignore[no-untyped-def]
    rid = _create(chain)
    rv.repay(chain, rid)
    _refused("WrongState", rv.repay, chain, rid)
    _refused("WrongState", rv.mark_defaulted, chain, rid, sender="bank")


def test_past_the_due_date_it_cannot_be_financed_or_moved(chain) -> None:  # type: ignore[no-untyped-def]
    rid = _create(chain, days=30)
    chain.time_travel(rv.get(chain, rid).due_date + 1)
    _refused("Expired", rv.apply, chain, rid, sender="supplier")
    _refused("Expired", rv.transfer, chain, rid, "supplier2", sender="supplier")


def test_approved_application_expires_at_the_due_date(chain) -> None:  # type: ignore[no-untyped-def]
    _terms(chain)
    rid = _create(chain, days=10)
    rv.apply(chain, rid, sender="supplier")
    rv.approve(chain, rid)
    chain.time_travel(rv.get(chain, rid).due_date)
    _refused("Expired", rv.fund, chain, rid)
