"""The call log: every state-changing call to the bank's services, and every refusal, with who
made it (`yinqi bank calls` shows it).

A state-changing call is written before its handler runs (`status = "started"`) and completed
afterwards with its gRPC status and message, so even a process that dies mid-call leaves a
record naming the caller of whatever it changed. A refusal (wrong role, revoked certificate) is
one row. Requests are summarised (scalar fields, sizes of lists), never stored whole.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Integer, String, Text, bindparam, insert, select, update
from sqlalchemy.orm import Mapped, mapped_column

from federation.clock import utcnow
from federation.storage import UtcDateTime, session_scope
from server.db import BankBase, bank_engine
from server.security.roles import Identity

MAX_TEXT = 80  # characters kept of one string field in a summary
MAX_SUMMARY = 1000
MAX_DETAIL = 500


class CallRecord(BankBase):
    """One call to a bank service: who, what, and how it ended."""

    __tablename__ = "bank_call_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    caller: Mapped[str] = mapped_column(String(128), index=True)
    role: Mapped[str] = mapped_column(String(32))
    serial: Mapped[str] = mapped_column(String(64), default="")
    peer: Mapped[str] = mapped_column(String(128), default="")
    method: Mapped[str] = mapped_column(String(128), index=True)
    request: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(32))  # started | OK | a gRPC status name
    detail: Mapped[str] = mapped_column(Text, default="")
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


# built once: a state-changing call writes both, and building a statement costs more than running it
_START = insert(CallRecord).returning(CallRecord.id)
_FINISH = update(CallRecord).where(CallRecord.id == bindparam("call_id"))


@dataclass(frozen=True)
class CallView:
    id: int
    at: str
    caller: str
    role: str
    serial: str
    peer: str
    method: str
    request: str
    status: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _field_value(value: Any) -> Any:
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT else f"{value[:MAX_TEXT]}… ({len(value)} chars)"
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, float | int | bool):
        return value
    if hasattr(value, "ListFields"):
        return summarize(value, nested=True)
    try:
        return f"<{len(value)} items>"
    except TypeError:
        return str(value)[:MAX_TEXT]


def summarize(message: Any, *, nested: bool = False) -> Any:
    """A short, JSON-able account of a protobuf request: its set fields, lists as counts."""
    out: dict[str, Any] = {}
    for field, value in message.ListFields():
        out[field.name] = _field_value(value)
    if nested:
        return out
    text = json.dumps(out, sort_keys=True, ensure_ascii=False, default=str)
    return text if len(text) <= MAX_SUMMARY else text[: MAX_SUMMARY - 1] + "…"


class CallLog:
    """The call log on the bank's database."""

    def __init__(self, engine: Engine | str | None = None) -> None:
        self.engine = bank_engine(engine)

    def start(self, who: Identity, method: str, request: str, peer: str = "") -> int:
        with self.engine.begin() as connection:  # one statement: no ORM unit of work per call
            return int(
                connection.execute(
                    _START,
                    {
                        "at": utcnow(),
                        "caller": who.name[:128],
                        "role": who.role,
                        "serial": who.serial,
                        "peer": peer[:128],
                        "method": method,
                        "request": request,
                        "status": "started",
                        "detail": "",
                    },
                ).scalar_one()
            )

    def finish(self, call_id: int, status: str, detail: str = "") -> None:
        with self.engine.begin() as connection:
            connection.execute(
                _FINISH, {"call_id": call_id, "status": status, "detail": detail[:MAX_DETAIL], "finished_at": utcnow()}
            )

    def refused(
        self, who: Identity | None, method: str, request: str, status: str, detail: str, peer: str = ""
    ) -> None:
        """One row for a call refused before its handler ran."""
        now = utcnow()
        with session_scope(self.engine) as session:
            session.add(
                CallRecord(
                    at=now,
                    caller=(who.name if who else "unidentified")[:128],
                    role=who.role if who else "",
                    serial=who.serial if who else "",
                    peer=peer[:128],
                    method=method,
                    request=request,
                    status=status,
                    detail=detail[:MAX_DETAIL],
                    finished_at=now,
                )
            )

    def list(self, *, limit: int = 50, caller: str | None = None, method: str | None = None) -> list[CallView]:
        """The newest calls first (optionally of one caller or one method)."""
        query = select(CallRecord).order_by(CallRecord.id.desc())
        if caller:
            query = query.where(CallRecord.caller == caller)
        if method:
            query = query.where(CallRecord.method.contains(method))
        if limit > 0:
            query = query.limit(limit)
        with session_scope(self.engine) as session:
            return [
                CallView(
                    r.id,
                    r.at.isoformat(timespec="seconds"),
                    r.caller,
                    r.role,
                    r.serial,
                    r.peer,
                    r.method,
                    r.request,
                    r.status,
                    r.detail,
                )
                for r in session.scalars(query)
            ]
