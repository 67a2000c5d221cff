"""One storage layer: SQLAlchemy engines and sessions for SQLite (default) and PostgreSQL.

Every package declares its tables on `Base` and gets its engine from `engine_for(url)`, so the
same code runs on a SQLite file and on a PostgreSQL server (`YINQI_DB_URL`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from threading import Lock

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from federation.config import db_url


class Base(DeclarativeBase):
    """Declarative base shared by every yinqi table."""


_engines: dict[str, Engine] = {}
_lock = Lock()


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    # WAL lets readers and one writer work at once; synchronous=NORMAL is durable in WAL mode
    # across application crashes, which is what "stored before acknowledged" needs here.
    # busy_timeout first: switching to WAL needs a lock another process may briefly hold.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _make_parent_dir(url: str) -> None:
    """A SQLite file's directory is created on first use, like the data dir itself."""
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def engine_for(url: str | None = None) -> Engine:
    """A cached engine for `url` (default: `federation.config.db_url()`), tables created."""
    url = url or db_url()
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            if url.startswith("sqlite"):
                _make_parent_dir(url)
                engine = create_engine(url, connect_args={"check_same_thread": False})
                event.listen(engine, "connect", _sqlite_pragmas)
            else:
                engine = create_engine(url, pool_pre_ping=True)
            ensure_tables(engine)
            _engines[url] = engine
        return engine


def ensure_tables(engine: Engine, attempts: int = 5) -> None:
    """Create missing tables (also those declared after the engine was first made).

    Several processes may share one database (platform nodes, the bank's services): between
    `create_all`'s existence check and its CREATE another process can win ("already exists"),
    and SQLite refuses to upgrade a read to a write after another writer committed ("database
    is locked", without waiting). Both are retried; the next check finds the tables.
    """
    for attempt in range(attempts):
        try:
            Base.metadata.create_all(engine)
            return
        except (OperationalError, ProgrammingError) as exc:
            retryable = "already exists" in str(exc) or "database is locked" in str(exc)
            if not retryable or attempt == attempts - 1:
                raise


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A transaction: committed when the block ends, rolled back on an exception."""
    session = sessionmaker(bind=engine, expire_on_commit=False)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
