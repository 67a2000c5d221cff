"""The bank's database: its own tables only (registry, decisions, credit lines, alerts, the
anchoring outbox), on SQLite by default or PostgreSQL through the same code."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import DeclarativeBase

from contracts.outbox import AnchorBase
from federation.config import db_url
from federation.storage import engine_for, ensure_tables


class BankBase(DeclarativeBase):
    """Declarative base of every table the bank keeps."""


def bank_engine(engine: Engine | str | None = None) -> Engine:
    """The bank's engine (an Engine, a URL, or the configured default) with its tables made.

    A table is declared when its module is imported; the modules that use the engine are
    imported before they call this, so their tables (and the anchoring outbox's) exist.
    """
    if not isinstance(engine, Engine):
        engine = engine_for(engine or db_url("bank"))
    ensure_tables(engine, BankBase.metadata)
    ensure_tables(engine, AnchorBase.metadata)
    return engine
