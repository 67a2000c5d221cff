"""The IoT monitor's own database: alerts, delivery outbox, dead letters, devices, usage."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import DeclarativeBase

from federation.config import db_url
from federation.storage import engine_for, ensure_tables


class MonitorBase(DeclarativeBase):
    """Declarative base of every table the monitor keeps."""


def monitor_engine(engine: Engine | str | None = None) -> Engine:
    """The monitor's engine (an Engine, a URL, or the configured default) with the tables declared so far made (each module declares its own on import)."""
    if not isinstance(engine, Engine):
        engine = engine_for(engine or db_url("iot"))
    ensure_tables(engine, MonitorBase.metadata)
    return engine
