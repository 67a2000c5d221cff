"""A platform's own database: its consent book and privacy ledger, nothing of the bank's."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import DeclarativeBase

from federation.config import db_url
from federation.storage import engine_for, ensure_tables


class PlatformBase(DeclarativeBase):
    """Declarative base of every table a platform keeps."""


def platform_engine(engine: Engine | str | None = None) -> Engine:
    """The platform's engine (an Engine, a URL, or the configured default) with the tables declared so far made (each module declares its own on import)."""
    if not isinstance(engine, Engine):
        engine = engine_for(engine or db_url("platform"))
    ensure_tables(engine, PlatformBase.metadata)
    return engine
