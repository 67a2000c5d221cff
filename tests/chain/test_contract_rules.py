"""Contract rules a bank would sign (issue 11), each reproduction as a test: defaults only by
the bank or its servicer after a grace period, late repayment of a defaulted receivable,
approval within the limit or by a logged override, terms before funding, bounded amounts and
dates, values beyond their ABI types and arithmetic panics as one readable line."""

from __future__ import annotations

import pytest
from eth_utils import keccak
from web3.logs import DISCARD

from contracts import receivables as rv
from contracts.errors import ChainError, decode_revert
from contracts.roles import add_party

DAY = 86400


def _refused(error_name: str, fn, *args, **kwargs) -> ChainError:  # type: ignore[no-untyped-def]
    with pytest.raises(ChainError) as info:
        fn(*args, **kwargs)
    assert info.value.error_name == error_name, str(info.value)
    assert "\n" not in str(info.value)
    return info.value


def _financed(chain, amount: int = 1_000_000, days: int = 30, doc: bytes = b"inv") -> int:  # type: ignore[no-untyped-def]
    rv.set_limit(chain, "debtor", 10_000_000, max_tenor_days=90, advance_bps=9_000, discount_bps_per_year=500)
    rid = rv.create(chain, "supplier", amount, chain.now() + days * DAY, keccak(doc))
    assert rv.apply(chain, rid, sender="supplier") is True
    rv.fund(chain, rid)
    return rid


def test_a_default_one_second_after_the_due_date_is_refused_to_anyone(chain) -> None:  # type: ignore[no-untyped-def]
    # Reproduction: anyone could mark a receivable defaulted one second after its due date.
    rid = _financed(chain)
    due = rv.get(chain, rid).due_date
    chain.time_travel(due + 1)
    _refused("AccessControlUnauthorizedAccount", rv.mark_defaulted, chain, rid, sender="auditor")
    _refused("AccessControlUnauthorizedAccount", rv.mark_defaulted, chain, rid, sender="supplier")
    err = _refused("NotOverdue", rv.mark_defaulted, chain, rid, sender="bank")
    assert err.error_args["defaultableAfter"] == due + rv.grace_period(chain) == due + 30 * DAY
    assert rv.get(chain, rid).state == "Financed"


def test_after_the_grace_period_the_bank_or_an_appointed_servicer_may_declare_it(chain) -> None:  # type: ignore[no-untyped-def]
    first = _financed(chain, doc=b"a")
    second = rv.create(chain, "supplier", 5_000, chain.now() + 30 * DAY, keccak(b"b"))
    add_party(chain, "auditor", "servicer", "collections agent")  # the bank appoints a servicer
    due = max(rv.get(chain, first).due_date, rv.get(chain, second).due_date)
    chain.time_travel(due + rv.grace_period(chain) + 1)
    rv.mark_defaulted(chain, first, sender="auditor")
    rv.mark_defaulted(chain, second, sender="bank")
    assert rv.get(chain, first).state == rv.get(chain, second).state == "Defaulted"
    defaulted = [e for e in rv.events(chain) if e["event"] == "Defaulted"]
    assert [(e["args"]["id"], e["args"]["by"]) for e in defaulted] == [
        (first, chain.address("auditor")),
        (second, chain.address("bank")),
    ]


def test_the_grace_period_is_set_by_the_admin(chain) -> None:  # type: ignore[no-untyped-def]
    rv.set_grace_period(chain, 3 * DAY)
    assert rv.grace_period(chain) == 3 * DAY
    rid = _financed(chain)
    due = rv.get(chain, rid).due_date
    chain.time_travel(due + 3 * DAY - 1)  # the next block is at due + 3 days: not after it
    _refused("NotOverdue", rv.mark_defaulted, chain, rid)
    chain.time_travel(due + 3 * DAY)
    rv.mark_defaulted(chain, rid)
    assert rv.get(chain, rid).state == "Defaulted"


def test_a_defaulted_receivable_can_be_repaid_late_and_the_event_says_so(chain) -> None:  # type: ignore[no-untyped-def]
    # Reproduction: late repayment of a defaulted receivable was refused with WrongState(Defaulted).
    rid = _financed(chain)
    chain.time_travel(rv.get(chain, rid).due_date + rv.grace_period(chain) + 1)
    rv.mark_defaulted(chain, rid)
    assert rv.repay(chain, rid) == (chain.address("bank"), True)  # the financier is paid, late
    assert rv.get(chain, rid).state == "Repaid"
    repaid = [e["args"] for e in rv.events(chain) if e["event"] == "Repaid"]
    assert repaid == [{"id": rid, "payee": chain.address("bank"), "amount": 1_000_000, "afterDefault": True}]
    _refused("WrongState", rv.repay, chain, rid)
    assert rv.remaining_limit(chain, "debtor") == 10_000_000  # the default released the limit once


def test_approve_stays_within_the_debtors_limit(chain) -> None:  # type: ignore[no-untyped-def]
    # Reproduction: approve used 900,000,000 against a 500,000,000 limit, blocking later automatic approvals.
    rv.set_limit(chain, "debtor", 500_000_000, max_tenor_days=30, advance_bps=9_500)
    big = rv.create(chain, "supplier", 900_000_000, chain.now() + 60 * DAY, keccak(b"big"))
    rv.apply(chain, big, sender="supplier")
    err = _refused("LimitExceeded", rv.approve, chain, big)
    assert (err.error_args["amount"], err.error_args["remaining"]) == (900_000_000, 500_000_000)
    assert rv.remaining_limit(chain, "debtor") == 500_000_000
    assert rv.get(chain, big).state == "FinancingRequested"
    small = rv.create(chain, "supplier", 100_000_000, chain.now() + 20 * DAY, keccak(b"small"))
    assert rv.apply(chain, small, sender="supplier") is True  # automatic approvals still work


def test_an_over_limit_approval_needs_the_admin_and_a_reason_and_is_logged(chain) -> None:  # type: ignore[no-untyped-def]
    rv.set_limit(chain, "debtor", 500_000_000, max_tenor_days=30, advance_bps=9_500)
    add_party(chain, "supplier3", "financier", "branch financier")  # a financier, not the admin
    big = rv.create(chain, "supplier", 900_000_000, chain.now() + 60 * DAY, keccak(b"big"))
    rv.apply(chain, big, sender="supplier")
    _refused("LimitExceeded", rv.approve, chain, big, sender="supplier3")
    _refused("AccessControlUnauthorizedAccount", rv.approve_over_limit, chain, big, "board 2026-11", sender="supplier3")
    with pytest.raises(ChainError, match="give --reason"):
        rv.approve_over_limit(chain, big, "")
    rv.approve_over_limit(chain, big, "board 2026-11")
    assert rv.get(chain, big).state == "Approved"
    logged = chain.financing.events.LimitOverridden().get_logs(from_block=0)
    assert len(logged) == 1
    args = logged[0]["args"]
    assert (args["id"], args["by"], args["amount"], args["remaining"]) == (
        big,
        chain.address("bank"),
        900_000_000,
        500_000_000,
    )
    assert args["reason"].rstrip(b"\0") == b"board 2026-11"
    assert rv.remaining_limit(chain, "debtor") == 0


def test_terms_are_required_before_funding(chain) -> None:  # type: ignore[no-untyped-def]
    # Reproduction: a debtor with no terms was funded 100 % with no discount.
    rid = rv.create(chain, "supplier", 1_000_000, chain.now() + 30 * DAY, keccak(b"no-terms"))
    rv.apply(chain, rid, sender="supplier")
    _refused("LimitExceeded", rv.approve, chain, rid)  # no terms: no limit to approve within
    rv.approve_over_limit(chain, rid, "pilot")
    err = _refused("NoTerms", rv.fund, chain, rid)
    assert err.error_args["debtor"] == chain.address("debtor")
    assert rv.get(chain, rid).state == "Approved"


def test_a_discount_that_eats_the_advance_is_refused(chain) -> None:  # type: ignore[no-untyped-def]
    rv.set_limit(chain, "debtor", 10_000_000, max_tenor_days=800, advance_bps=5_000, discount_bps_per_year=10_000)
    rid = rv.create(chain, "supplier", 1_000_000, chain.now() + 730 * DAY, keccak(b"long"))
    assert rv.apply(chain, rid, sender="supplier") is True
    err = _refused("DiscountExceedsAdvance", rv.fund, chain, rid)
    assert err.error_args["gross"] == 500_000 and err.error_args["discount"] >= 500_000


def test_values_beyond_their_abi_type_are_one_line_errors_and_change_nothing(chain) -> None:  # type: ignore[no-untyped-def]
    # Reproduction: values ≥ 2**256 gave MismatchedABI tracebacks.
    count = chain.financing.functions.receivableCount().call()
    cases = [
        (lambda: rv.create(chain, "supplier", 2**256, chain.now() + DAY, keccak(b"x")), "amount=", "uint256"),
        (lambda: rv.create(chain, "supplier", 1, 2**64, keccak(b"x")), "dueDate=", "uint64"),
        (lambda: rv.get(chain, 2**256), "id=", "uint256"),
        (lambda: rv.fund(chain, -1), "id=", "uint256"),
        (lambda: rv.set_limit(chain, "debtor", 1, 30, advance_bps=2**16), "advanceBps=", "uint16"),
        (lambda: rv.set_limit(chain, "debtor", 1, 2**40), "maxTenor=", "uint32"),
        (lambda: rv.reject(chain, 1, "x" * 33), "--reason", "32 bytes"),
    ]
    for action, field, kind in cases:
        with pytest.raises(ChainError) as info:
            action()
        assert field in str(info.value) and kind in str(info.value), str(info.value)
        assert "\n" not in str(info.value) and "MismatchedABI" not in str(info.value)
    assert chain.financing.functions.receivableCount().call() == count


def test_an_arithmetic_panic_is_decoded_and_named(chain) -> None:  # type: ignore[no-untyped-def]
    # Reproduction: an arithmetic overflow was shown as raw revert bytes. A minimal contract that
    # reverts with Panic(0x11), as checked arithmetic does, hand-assembled:
    runtime = "634e487b7160e01b60005260116004526024" + "6000fd"
    init = "601560" + "0c" + "60003960156000f3"
    abi = [{"type": "function", "name": "boom", "inputs": [], "outputs": [], "stateMutability": "nonpayable"}]
    factory = chain.w3.eth.contract(abi=abi, bytecode="0x" + init + runtime)
    receipt = chain.transact(factory.constructor(), "bank", gas=100_000, action="deploy boom")
    boom = chain.w3.eth.contract(address=receipt["contractAddress"], abi=abi)
    err = _refused("Panic", chain.transact, boom.functions.boom(), "bank", action="boom")
    assert str(err) == "boom: reverted: Panic(0x11): arithmetic overflow or underflow"


def test_revert_reasons_and_unknown_data_decode_to_one_line() -> None:
    from eth_abi import encode

    error_string = keccak(text="Error(string)")[:4] + encode(["string"], ["too late"])
    assert str(decode_revert(error_string)) == "reverted: too late"
    panic = keccak(text="Panic(uint256)")[:4] + encode(["uint256"], [0x12])
    assert str(decode_revert("0x" + panic.hex())) == "reverted: Panic(0x12): division or modulo by zero"
    assert decode_revert(b"\x01\x02\x03\x04garbage") is None
    assert decode_revert(keccak(text="Panic(uint256)")[:4] + b"\x01") is None  # truncated: not decodable


def test_a_revoked_supplier_can_neither_receive_nor_apply(chain) -> None:  # type: ignore[no-untyped-def]
    from contracts.roles import revoke_party

    rid = rv.create(chain, "supplier", 1_000, chain.now() + 10 * DAY, keccak(b"r"))
    revoke_party(chain, "supplier2", "supplier")
    _refused("NotParty", rv.transfer, chain, rid, "supplier2", sender="supplier")
    revoke_party(chain, "supplier", "supplier")
    _refused("NotParty", rv.apply, chain, rid, sender="supplier")
    rv.repay(chain, rid)  # the debtor still pays what it owes
    with pytest.raises(ChainError, match="does not hold the supplier role"):
        revoke_party(chain, "supplier", "supplier")


def test_a_supplier_revoked_after_approval_is_not_funded(chain) -> None:  # type: ignore[no-untyped-def]
    # Reproduction: an application approved (automatically) before the bank revoked the
    # supplier was still funded, paying the advance to a party the bank had removed.
    from contracts.roles import revoke_party

    rv.set_limit(chain, "debtor", 10_000_000, max_tenor_days=90, advance_bps=9_000, discount_bps_per_year=500)
    approved = rv.create(chain, "supplier", 1_000_000, chain.now() + 30 * DAY, keccak(b"approved"))
    assert rv.apply(chain, approved, sender="supplier") is True
    pending = rv.create(chain, "supplier", 20_000_000, chain.now() + 30 * DAY, keccak(b"pending"))
    assert rv.apply(chain, pending, sender="supplier") is False  # over the limit: left to the bank
    revoke_party(chain, "supplier", "supplier")
    err = _refused("NotParty", rv.fund, chain, approved)
    assert err.error_args["account"] == chain.address("supplier")
    _refused("NotParty", rv.approve_over_limit, chain, pending, "board")
    assert [rv.get(chain, rid).state for rid in (approved, pending)] == ["Approved", "FinancingRequested"]
    rv.reject(chain, pending, "revoked")
    rv.repay(chain, approved)  # the debtor still pays what it owes, which frees the limit
    assert rv.remaining_limit(chain, "debtor") == 10_000_000


def test_every_state_change_emits_an_event_with_indexed_parties(chain) -> None:  # type: ignore[no-untyped-def]
    rid = _financed(chain)
    receipt_logs = chain.financing.events.Financed().get_logs(
        from_block=0, argument_filters={"holder": chain.address("supplier")}
    )
    assert [log["args"]["id"] for log in receipt_logs] == [rid]
    onboarded = chain.financing.events.PartyOnboarded().process_receipt(
        chain.transact(
            chain.fn(chain.financing, "onboard", chain.address("auditor"), keccak(text="SUPPLIER_ROLE"), "Aud Co"),
            "bank",
        ),
        errors=DISCARD,
    )
    assert onboarded[0]["args"]["name"] == "Aud Co"
