"""Which platform a merchant belongs to: the first platform to report a merchant id owns it.

Platforms report consent and features for their own merchants only. The bank learns the
ownership from the reports themselves: the first report (consent or features) naming a merchant
id records its platform; any later report of that id by another platform is refused with
PERMISSION_DENIED, and so is another platform's request to read that merchant's credit line.
The claim is made in the report's own transaction, so a refused report stores nothing at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Engine, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from federation.clock import utcnow
from federation.storage import UtcDateTime, in_batches, session_scope
from server.credit.errors import BankError
from server.db import BankBase, bank_engine


class MerchantOwner(BankBase):
    """A merchant id and the platform that reported it first."""

    __tablename__ = "bank_merchant_owners"

    merchant_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    platform: Mapped[str] = mapped_column(String(128), index=True)
    since: Mapped[datetime] = mapped_column(UtcDateTime)


def owners(session: Session, merchant_ids: Iterable[str]) -> dict[str, str]:
    """merchant id -> owning platform, for the ids that have one."""
    wanted = sorted(set(merchant_ids))
    found: dict[str, str] = {}
    for chunk in in_batches(wanted):
        query = select(MerchantOwner.merchant_id, MerchantOwner.platform).where(MerchantOwner.merchant_id.in_(chunk))
        found.update((merchant, platform) for merchant, platform in session.execute(query))
    return found


def claim(session: Session, platform: str, merchant_ids: Iterable[str]) -> None:
    """In the caller's transaction: `platform` reports these merchants, claiming the new ones.

    Raises BankError("forbidden") naming the first merchant another platform owns. Two first
    reports of one id at once: the later commit fails on the primary key (the caller retries
    and is then refused or finds its own claim).
    """
    ids = list(dict.fromkeys(merchant_ids))
    known = owners(session, ids)
    foreign = [m for m in ids if known.get(m, platform) != platform]
    if foreign:
        more = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
        raise BankError(
            f"merchant '{foreign[0]}' belongs to platform '{known[foreign[0]]}'{more}; "
            f"{platform} may report and read only its own merchants",
            "forbidden",
        )
    now = utcnow()
    session.add_all(MerchantOwner(merchant_id=m, platform=platform, since=now) for m in ids if m not in known)
    session.flush()


def check_owner(engine: Engine, platform: str, merchant_id: str) -> None:
    """Refuse (forbidden) unless `platform` owns `merchant_id`; says nothing about unknown ids."""
    with session_scope(engine) as session:
        owner = owners(session, [merchant_id]).get(merchant_id)
    if owner != platform:
        raise BankError(f"merchant '{merchant_id}' is not one of {platform}'s merchants", "forbidden")


def list_owners(engine: Engine | str | None = None) -> list[tuple[str, str, datetime]]:
    """(merchant id, platform, since) for every merchant a platform has reported."""
    with session_scope(bank_engine(engine)) as session:
        rows = session.execute(
            select(MerchantOwner.merchant_id, MerchantOwner.platform, MerchantOwner.since).order_by(
                MerchantOwner.platform, MerchantOwner.merchant_id
            )
        )
        return [(m, p, t) for m, p, t in rows]
