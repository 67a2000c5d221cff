"""Typed wrappers for the receivable lifecycle on `ReceivableFinancing`.

Each function signs as a named role (`bank`, `debtor`, `supplier`, ...) and returns plain
values; refusals raise ChainError carrying the contract's custom error name and arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from contracts.client import Chain
from contracts.errors import STATES, ChainError


@dataclass(frozen=True)
class Receivable:
    """A receivable as recorded on chain (amounts in integer minor units)."""

    id: int
    debtor: str
    holder: str
    amount: int
    due_date: int
    created_at: int
    funded_at: int
    state: str
    financier: str
    advance: int
    discount: int
    document_hash: str
    parent_id: int

    @property
    def turnaround_seconds(self) -> int | None:
        """Create (or split-off) → funded, seconds; None until funded."""
        return self.funded_at - self.created_at if self.funded_at else None

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["due_date_utc"] = _iso(self.due_date)
        d["created_at_utc"] = _iso(self.created_at)
        d["funded_at_utc"] = _iso(self.funded_at) if self.funded_at else None
        d["turnaround_seconds"] = self.turnaround_seconds
        return d


def _iso(ts: int) -> str:
    """ISO time of a block timestamp; a value no calendar holds is said so, not raised."""
    try:
        return datetime.fromtimestamp(ts, tz=UTC).isoformat()
    except (ValueError, OverflowError, OSError):
        return f"{ts} s after 1970 (beyond year 9999)"


def _event(chain: Chain, receipt: Any, name: str) -> Any:
    from web3.logs import DISCARD

    events = getattr(chain.financing.events, name)().process_receipt(receipt, errors=DISCARD)
    if not events:
        raise ChainError(f"transaction {receipt['transactionHash'].hex()} emitted no {name} event")
    return events[0]["args"]


def get(chain: Chain, rid: int) -> Receivable:
    from contracts.errors import from_web3_exception

    call = chain.fn(chain.financing, "receivable", rid)
    chain.sync()
    try:
        r = call.call()
    except Exception as exc:
        raise from_web3_exception(exc, f"receivable {rid}") from None
    (debtor, due, created, state, holder, funded, financier, amount, advance, discount, doc, parent) = r
    return Receivable(
        id=rid,
        debtor=debtor,
        holder=holder,
        amount=amount,
        due_date=due,
        created_at=created,
        funded_at=funded,
        state=STATES[state],
        financier=financier,
        advance=advance,
        discount=discount,
        document_hash="0x" + bytes(doc).hex(),
        parent_id=parent,
    )


def title_history(chain: Chain, rid: int) -> list[str]:
    call = chain.fn(chain.financing, "titleHistory", rid)
    chain.sync()
    return list(call.call())


def children(chain: Chain, rid: int) -> list[int]:
    call = chain.fn(chain.financing, "children", rid)
    chain.sync()
    return list(call.call())


def set_limit(
    chain: Chain,
    debtor: str,
    limit: int,
    max_tenor_days: int,
    advance_bps: int = 10_000,
    discount_bps_per_year: int = 0,
    *,
    sender: str = "bank",
) -> None:
    """Set `debtor`'s limit and terms (the bank's admin only); terms are required before funding."""
    call = chain.fn(
        chain.financing,
        "setLimit",
        chain.address(debtor),
        limit,
        max_tenor_days * 86400,
        advance_bps,
        discount_bps_per_year,
    )
    chain.transact(call, sender, action="limit set")


def set_grace_period(chain: Chain, seconds: int, *, sender: str = "bank") -> None:
    """How long after the due date a default may first be declared (the bank's admin only)."""
    chain.transact(chain.fn(chain.financing, "setGracePeriod", seconds), sender, action="grace period")


def grace_period(chain: Chain) -> int:
    chain.sync()
    return int(chain.financing.functions.gracePeriod().call())


def create(
    chain: Chain, creditor: str, amount: int, due_date: int, document_hash: bytes, *, sender: str = "debtor"
) -> int:
    """The debtor records a receivable owed to `creditor`; returns its id."""
    call = chain.fn(chain.financing, "create", chain.address(creditor), amount, due_date, document_hash)
    receipt = chain.transact(call, sender, action="create")
    return int(_event(chain, receipt, "ReceivableCreated")["id"])


def transfer(chain: Chain, rid: int, to: str, *, sender: str) -> None:
    chain.transact(chain.fn(chain.financing, "transfer", rid, chain.address(to)), sender, action="transfer")


def split(chain: Chain, rid: int, to: str, part: int, *, sender: str) -> int:
    """Pass `part` of receivable `rid` to `to`; returns the new receivable's id."""
    receipt = chain.transact(chain.fn(chain.financing, "split", rid, chain.address(to), part), sender, action="split")
    return int(_event(chain, receipt, "Split")["childId"])


def apply(chain: Chain, rid: int, *, sender: str) -> bool:
    """The holder applies for financing; True when the contract approved it automatically."""
    from web3.logs import DISCARD

    receipt = chain.transact(chain.fn(chain.financing, "applyForFinancing", rid), sender, action="apply")
    return bool(chain.financing.events.FinancingApproved().process_receipt(receipt, errors=DISCARD))


def approve(chain: Chain, rid: int, *, sender: str = "bank") -> None:
    """The bank approves within the debtor's remaining limit (else `LimitExceeded`)."""
    chain.transact(chain.fn(chain.financing, "approve", rid), sender, action="approve")


def approve_over_limit(chain: Chain, rid: int, reason: str, *, sender: str = "bank") -> None:
    """The bank's admin approves beyond the limit; the reason is logged on chain (`LimitOverridden`)."""
    label = _label(reason, "--reason")
    if label == bytes(32):
        raise ChainError("approve --over-limit: give --reason (≤ 32 bytes); an override is logged with its reason")
    chain.transact(chain.fn(chain.financing, "approveOverLimit", rid, label), sender, action="approve over limit")


def reject(chain: Chain, rid: int, reason: str = "", *, sender: str = "bank") -> None:
    chain.transact(chain.fn(chain.financing, "reject", rid, _label(reason, "--reason")), sender, action="reject")


def fund(chain: Chain, rid: int, *, sender: str = "bank") -> tuple[int, int]:
    """The bank funds an approved receivable; returns (advance, discount)."""
    args = _event(chain, chain.transact(chain.fn(chain.financing, "fund", rid), sender, action="fund"), "Financed")
    return int(args["advance"]), int(args["discount"])


def repay(chain: Chain, rid: int, *, sender: str = "debtor") -> tuple[str, bool]:
    """The debtor repays; returns (payee, after_default): the financier if financed, else the holder."""
    args = _event(chain, chain.transact(chain.fn(chain.financing, "repay", rid), sender, action="repay"), "Repaid")
    return str(args["payee"]), bool(args["afterDefault"])


def mark_defaulted(chain: Chain, rid: int, *, sender: str = "bank") -> None:
    """The bank or its servicer declares a default (after the due date plus the grace period)."""
    chain.transact(chain.fn(chain.financing, "markDefaulted", rid), sender, action="default")


def remaining_limit(chain: Chain, debtor: str) -> int:
    call = chain.fn(chain.financing, "remainingLimit", chain.address(debtor))
    chain.sync()
    return int(call.call())


def _label(text: str, option: str) -> bytes:
    raw = text.encode()
    if len(raw) > 32:
        raise ChainError(f"{option} {text!r}: at most 32 bytes (stored on chain as bytes32), got {len(raw)}")
    return raw.ljust(32, b"\0")


def events(chain: Chain, from_block: int = 0, to_block: int | str = "latest") -> list[dict[str, Any]]:
    """Every event of both contracts in the block range, decoded, in chain order."""
    from hexbytes import HexBytes

    chain.sync()
    decoders: dict[bytes, Any] = {}
    for contract in (chain.financing, chain.registry):
        for item in contract.abi:
            if item.get("type") == "event":
                ev = getattr(contract.events, item["name"])()
                decoders[bytes(HexBytes(ev.topic))] = ev
    logs = chain.w3.eth.get_logs(
        {"address": [chain.financing.address, chain.registry.address], "fromBlock": from_block, "toBlock": to_block}
    )
    out = []
    for log in logs:
        ev = decoders.get(bytes(log["topics"][0]))
        if ev is None:
            continue
        decoded = ev.process_log(log)
        out.append(
            {
                "block": int(log["blockNumber"]),
                "tx": "0x" + bytes(log["transactionHash"]).hex(),
                "event": decoded["event"],
                "args": dict(decoded["args"]),
            }
        )
    return out
