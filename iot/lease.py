"""One running monitor per MQTT session: a lease row in the monitor's database.

Two monitors with the same client id take the broker session from each other on every
reconnect, and each judges part of the stream from its own device state: 100 messages once gave
30 extra alerts. So a monitor holds a lease on its session name (client id @ broker) in the
database it writes to; a second monitor on that database is refused with who holds it. The
lease expires `ttl` seconds after its holder last renewed it, and a holder on this host whose
process has died is replaced at once (a crash needs no waiting).
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Integer, String, delete, insert, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from federation.clock import utcnow
from federation.processes import pid_alive
from federation.storage import UtcDateTime, session_scope
from iot.db import MonitorBase, monitor_engine
from iot.errors import IotError


class LeaseRow(MonitorBase):
    """Who runs the monitor of one MQTT session, until when."""

    __tablename__ = "iot_monitor_leases"
    name: Mapped[str] = mapped_column(String(300), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    host: Mapped[str] = mapped_column(String(128))
    pid: Mapped[int] = mapped_column(Integer)
    renewed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)


@dataclass(frozen=True)
class Holder:
    holder: str
    host: str
    pid: int
    renewed_at: datetime
    expires_at: datetime


class MonitorLease:
    """The lease of one session name on one monitor database; `acquire`, `renew`, `release`."""

    def __init__(self, engine: Engine | str | None, name: str, ttl: float = 15.0) -> None:
        self.engine = monitor_engine(engine)
        self.name = name[:300]
        self.ttl = timedelta(seconds=ttl)
        self.host = socket.gethostname()[:128]
        self.pid = os.getpid()
        self.holder = f"{self.host}:{self.pid}:{uuid.uuid4().hex[:12]}"
        self.renewed_at: datetime | None = None

    def acquire(self) -> None:
        """Take the lease, or raise `IotError` naming the monitor that holds it."""
        now = utcnow()
        mine = {"holder": self.holder, "host": self.host, "pid": self.pid, "renewed_at": now}
        try:
            with session_scope(self.engine) as s:
                s.execute(insert(LeaseRow).values(name=self.name, expires_at=now + self.ttl, **mine))
            self.renewed_at = now
            return
        except IntegrityError:
            pass  # someone holds it, or held it
        current = self.current()
        if current is not None and current.host == self.host and not pid_alive(current.pid):
            stale = LeaseRow.holder == current.holder  # its process died: no need to wait for the expiry
        else:
            stale = LeaseRow.expires_at < now
        with session_scope(self.engine) as s:
            taken = s.execute(
                update(LeaseRow)
                .where(LeaseRow.name == self.name, stale)
                .values(expires_at=now + self.ttl, **mine)
                .execution_options(synchronize_session=False)
            )
        if taken.rowcount == 1:  # type: ignore[attr-defined]
            self.renewed_at = now
            return
        holder = self.current()
        who = f"pid {holder.pid} on {holder.host}, lease until {holder.expires_at:%H:%M:%S} UTC" if holder else "?"
        raise IotError(
            f"monitor session '{self.name}' is already running ({who}); "
            "two monitors with one client id would each judge part of the stream: stop the other "
            "one, or give this one another --client-id"
        )

    def renew(self) -> bool:
        """Extend the lease; False when another monitor took it (this one must stop)."""
        now = utcnow()
        with session_scope(self.engine) as s:
            kept = s.execute(
                update(LeaseRow)
                .where(LeaseRow.name == self.name, LeaseRow.holder == self.holder)
                .values(renewed_at=now, expires_at=now + self.ttl)
                .execution_options(synchronize_session=False)
            )
        if kept.rowcount == 1:  # type: ignore[attr-defined]
            self.renewed_at = now
            return True
        return False

    def due(self) -> bool:
        """A third of the lease has passed since the last renewal."""
        return self.renewed_at is None or utcnow() - self.renewed_at > self.ttl / 3

    def release(self) -> None:
        with session_scope(self.engine) as s:
            s.execute(delete(LeaseRow).where(LeaseRow.name == self.name, LeaseRow.holder == self.holder))
        self.renewed_at = None

    def current(self) -> Holder | None:
        with session_scope(self.engine) as s:
            row = s.get(LeaseRow, self.name)
            return None if row is None else Holder(row.holder, row.host, row.pid, row.renewed_at, row.expires_at)
