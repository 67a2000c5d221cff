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


# Every module that declares a table on BankBase: all of them exist in every bank database,
# whichever command opened it first (`bank promote` on a fresh database reads decisions).
TABLE_MODULES = (
    "server.registry",
    "server.scoring",
    "server.credit.accounts",
    "server.consent",
    "server.merchants",
    "server.feature_store",
    "server.alerts.store",
    "server.security.calllog",
    "server.loanbook.clock",
    "server.loanbook.draws",
    "server.loanbook.freezes",
    "server.loanbook.applications",
    "server.loanbook.changes",
    "server.loanbook.metrics",
    "server.monitoring",
)


def bank_engine(engine: Engine | str | None = None) -> Engine:
    """The bank's engine (an Engine, a URL, or the configured default) with all its tables made."""
    import importlib

    for module in TABLE_MODULES:
        importlib.import_module(module)
    if not isinstance(engine, Engine):
        engine = engine_for(engine or db_url("bank"))
    ensure_tables(engine, BankBase.metadata)
    ensure_tables(engine, AnchorBase.metadata)
    return engine
