"""One storage helper for every side's database: engines, tables, transactions, UTC times.

Each organisation's code declares its tables on its own `DeclarativeBase`, so a database holds
only the tables of whoever owns it: the bank's (`server.db.BankBase`), a platform's
(`clients.db.PlatformBase`), the IoT monitor's (`iot.db.MonitorBase`) and the anchoring
outbox's (`contracts.outbox.AnchorBase`, kept in the bank's database). The same code runs on a
SQLite file (default) and on PostgreSQL (`YINQI_DB_URL`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import DateTime, Engine, MetaData, bindparam, create_engine, event, insert, make_url, update
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator

_engines: dict[str, Engine] = {}
_created: set[tuple[int, int, int]] = set()  # (engine, metadata, table count) already created
_lock = threading.Lock()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers and one writer work at once; synchronous=NORMAL is durable in WAL mode
    # across application crashes, which is what "stored before acknowledged" needs here.
    # busy_timeout first: switching to WAL needs a lock another process may briefly hold.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def json_text(value: Any) -> str:
    """A JSON column's text. orjson, not the stdlib: a review writes several JSON values per
    credit line. As in PostgreSQL's JSON and RFC 8259 there is no NaN or Infinity: they are
    stored as null (the stdlib wrote the non-standard token `NaN`)."""
    return orjson.dumps(value, option=_JSON_OPTIONS).decode()


def json_value(text: str | bytes) -> Any:
    """A JSON column's value; rows the stdlib wrote with `NaN`/`Infinity` tokens still load."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _make_parent_dir(url: str) -> None:
    """A SQLite file's directory is created on first use, like the data dir itself."""
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def engine_for(url: str, *metadata: MetaData) -> Engine:
    """A cached engine for `url` with the tables of each given `metadata` created (once per
    process). Each side names its own default database (`federation.config.db_url(name)`)."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            if url.startswith("sqlite"):
                _make_parent_dir(url)
                engine = create_engine(
                    url,
                    connect_args={"check_same_thread": False},
                    json_serializer=json_text,
                    json_deserializer=json_value,
                )
                event.listen(engine, "connect", _sqlite_pragmas)
            else:
                engine = create_engine(url, pool_pre_ping=True, json_serializer=json_text, json_deserializer=json_value)
            _engines[url] = engine
    for meta in metadata:
        ensure_tables(engine, meta)
    return engine


def ensure_tables(engine: Engine, metadata: MetaData, attempts: int = 5) -> None:
    """Create `metadata`'s missing tables on `engine` (a no-op after the first time).

    Several processes may share one database (platform nodes, the bank's services): between
    `create_all`'s existence check and its CREATE another process can win ("already exists"),
    and SQLite refuses to upgrade a read to a write after another writer committed ("database
    is locked", without waiting). Both are retried; the next check finds the tables.
    """
    # Tables are declared when their module is imported, so a later call may bring new ones.
    key = (id(engine), id(metadata), len(metadata.tables))
    if key in _created:
        return
    for attempt in range(attempts):
        try:
            metadata.create_all(engine)
            break
        except (OperationalError, ProgrammingError) as exc:
            retryable = "already exists" in str(exc) or "database is locked" in str(exc)
            if not retryable or attempt == attempts - 1:
                raise
    _created.add(key)


def forget_engine(url: str) -> None:
    """Dispose of the cached engine for `url` (tests that drop a database)."""
    with _lock:
        engine = _engines.pop(url, None)
    if engine is not None:
        for key in [k for k in _created if k[0] == id(engine)]:
            _created.discard(key)
        engine.dispose()


def cached_urls() -> set[str]:
    """The URLs whose engines are cached in this process."""
    with _lock:
        return set(_engines)


def close_connections(url: str) -> None:
    """Close the pooled connections of `url`'s cached engine, keeping the engine (it reconnects
    on next use). For a file or server database only: an in-memory SQLite lives in its one
    connection, so it is left alone."""
    with _lock:
        engine = _engines.get(url)
    if engine is not None and not _in_memory(url):
        engine.dispose()


def _in_memory(url: str) -> bool:
    return url.startswith("sqlite") and (url.rstrip("/") in ("sqlite:", "sqlite+pysqlite:") or ":memory:" in url)


def url_of(engine: Engine) -> str:
    """The engine's URL with its password, to open a sibling component on the same database."""
    return engine.url.render_as_string(hide_password=False)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A transaction: committed when the block ends, rolled back on an exception."""
    # a plain Session: `sessionmaker` builds a new Session subclass (and its event dispatch)
    # per call, which cost more than the single-row queries most transactions here make
    session = Session(bind=engine, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def insert_rows(
    session: Session, entity: Any, rows: list[dict[str, Any]], *, ids: bool = False, key: str | None = None
) -> list[int]:
    """Insert many rows of a mapped class in one executemany, through Core: the tables written
    in bulk (a review's decisions and limit records) have no ORM-side behaviour, and the ORM's
    bulk path cost a fifth more per row. With `ids`, the new primary keys in the rows' order.

    `key`: a column whose values tell the rows apart. SQLAlchemy keeps RETURNING in the rows'
    order on SQLite only by inserting one row per statement (2.5x slower for 10,000 decisions);
    with a key the rows go in batches and their ids are matched back by it."""
    if not rows:
        return []
    table = entity.__table__
    if not ids:
        session.execute(insert(table), rows)
        return []
    if key is not None and len({row[key] for row in rows}) == len(rows):
        found = {k: i for i, k in session.execute(insert(table).returning(table.c.id, table.c[key]), rows)}
        return [found[row[key]] for row in rows]
    statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
    return list(session.scalars(statement, rows))


def update_rows(session: Session, entity: Any, rows: list[dict[str, Any]]) -> None:
    """Update many rows of a mapped class by primary key `id` in one executemany, through Core
    (as `insert_rows`); every row names the same columns."""
    if not rows:
        return
    table = entity.__table__
    statement = update(table).where(table.c.id == bindparam("row_id"))
    session.execute(statement, [{"row_id": row["id"], **{k: v for k, v in row.items() if k != "id"}} for row in rows])


_write_locks: dict[int, threading.Lock] = {}


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Session]:
    """A read-modify-write transaction.

    PostgreSQL serialises them with `SELECT ... FOR UPDATE` on the rows; SQLite has no row
    locks, so writers in this process also take one lock per engine (other processes then get
    SQLite's busy wait rather than a lost update).
    """
    if engine.dialect.name == "sqlite":
        with _lock:
            lock = _write_locks.setdefault(id(engine), threading.Lock())
        with lock, session_scope(engine) as session:
            yield session
    else:
        with session_scope(engine) as session:
            yield session


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite drops the zone otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: yinqi stores UTC timezone-aware times only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
