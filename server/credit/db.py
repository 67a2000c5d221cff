"""Storage helpers shared by the bank's tables (registry, decisions, credit lines)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import DateTime, Engine
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator

from federation.storage import engine_for, ensure_tables, session_scope


class UtcDateTime(TypeDecorator):
    """A timezone-aware UTC timestamp on every backend (SQLite drops the zone otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):  # type: ignore[no-untyped-def]
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: yinqi stores UTC timezone-aware times only")
        return value.astimezone(UTC)

    def process_result_value(self, value, dialect):  # type: ignore[no-untyped-def]
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def bank_engine(engine: Engine | str | None = None) -> Engine:
    """The bank's engine (an Engine, a URL, or the configured default) with every table made."""
    import clients.consent  # noqa: F401  (declares the tables on Base before they are created)
    import server.credit.accounts  # noqa: F401
    import server.registry  # noqa: F401
    import server.scoring  # noqa: F401

    if isinstance(engine, Engine):
        ensure_tables(engine)
        return engine
    engine = engine_for(engine)
    ensure_tables(engine)
    return engine


def url_of(engine: Engine) -> str:
    """The engine's URL with its password, to open a sibling component on the same database."""
    return engine.url.render_as_string(hide_password=False)


_write_locks: dict[int, threading.Lock] = {}
_guard = threading.Lock()


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Session]:
    """A read-modify-write transaction.

    PostgreSQL serialises them with `SELECT ... FOR UPDATE` on the rows; SQLite has no row
    locks, so writers in this process also take one lock per engine (other processes then get
    SQLite's busy wait / error rather than a lost update).
    """
    if engine.dialect.name == "sqlite":
        with _guard:
            lock = _write_locks.setdefault(id(engine), threading.Lock())
        with lock, session_scope(engine) as session:
            yield session
    else:
        with session_scope(engine) as session:
            yield session
