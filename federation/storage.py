"""One storage helper for every side's database: engines, tables, transactions, UTC times.

Each organisation's code declares its tables on its own `DeclarativeBase`, so a database holds
only the tables of whoever owns it: the bank's (`server.db.BankBase`), a platform's
(`clients.db.PlatformBase`), the IoT monitor's (`iot.db.MonitorBase`) and the anchoring
outbox's (`contracts.outbox.AnchorBase`, kept in the bank's database). The same code runs on a
SQLite file (default) and on PostgreSQL (`YINQI_DB_URL`).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any, TypeVar

import orjson
from sqlalchemy import (
    Connection,
    DateTime,
    Engine,
    MetaData,
    Table,
    bindparam,
    create_engine,
    event,
    insert,
    inspect,
    make_url,
    update,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.expression import Executable
from sqlalchemy.types import TypeDecorator, TypeEngine

T = TypeVar("T")
_engines: dict[str, Engine] = {}
_created: set[tuple[int, int, int]] = set()  # (engine, metadata, table count) already created
_lock = threading.Lock()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers and one writer work at once; synchronous=NORMAL is durable in WAL mode
    # across application crashes, which is what "stored before acknowledged" needs here.
    # busy_timeout first: switching to WAL needs a lock another process may briefly hold.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=10000")
    _switch_to_wal(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _switch_to_wal(cursor: Any, patience: float = 10.0) -> None:
    """`PRAGMA journal_mode=WAL`, tried again while the file is locked. Switching a new file
    takes an exclusive lock, and SQLite can answer "database is locked" at once, without its
    busy handler, while another process switches the same new file or creates its tables (seen
    when processes race to open a fresh database). A file in WAL already needs no lock."""
    deadline = time.monotonic() + patience
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)  # a backoff, not synchronisation: the other process holds the lock


_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


class JsonText(str):
    """A JSON column's value that is JSON text already: stored as it is (`json_text`). A
    review hashes each line's inputs as canonical JSON, and stores that very text rather than
    writing the same rows a second time."""


def json_text(value: Any) -> str:
    """A JSON column's text. orjson, not the stdlib: a review writes several JSON values per
    credit line. As in PostgreSQL's JSON and RFC 8259 there is no NaN or Infinity: they are
    stored as null (the stdlib wrote the non-standard token `NaN`). `JsonText` is stored as it is."""
    if type(value) is JsonText:
        return str(value)  # a plain str for the driver
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


_inherited: list[Any] = []  # a forked child's copies of its parent's pools: never used, never closed


def _forget_inherited_connections() -> None:
    """In a forked child (`server.loanbook.fanout`), give every cached engine a new pool, so
    that the child opens connections of its own. The parent's, copied with its memory, are
    kept, unused and unclosed: a SQLite connection used on both sides of a fork breaks its
    file locks, and a PostgreSQL one closed by the child would end the parent's session."""
    for engine in _engines.values():
        _inherited.append(engine.pool)
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_inherited_connections)


def ensure_tables(engine: Engine, metadata: MetaData, attempts: int = 5) -> None:
    """Create `metadata`'s missing tables on `engine`, and the missing indexes of the tables
    it has (a no-op after the first time).

    `create_all` makes a table's indexes only with the table: an index declared since a
    database was made (the end of day's on ledger entries' time) would never reach it. Indexes
    are the one change made to an existing table; columns and constraints are not migrated.

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
            _create_missing_indexes(engine, metadata)
            break
        except (OperationalError, ProgrammingError) as exc:
            retryable = "already exists" in str(exc) or "database is locked" in str(exc)
            if not retryable or attempt == attempts - 1:
                raise
    _created.add(key)


def _create_missing_indexes(engine: Engine, metadata: MetaData) -> None:
    inspector = inspect(engine)
    for table in metadata.sorted_tables:
        if not table.indexes:
            continue
        present = {index["name"] for index in inspector.get_indexes(table.name, schema=table.schema)}
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            if index.name not in present:
                index.create(engine, checkfirst=True)


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


IN_BATCH = 500  # values per `IN (...)`: one statement stays small on every backend


def in_batches(values: Sequence[T], size: int = IN_BATCH) -> Iterator[Sequence[T]]:
    """`values` in slices of `size`, for `column.in_(batch)` queries over many ids."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def batch_param() -> BindParameter[Any]:
    """The IN list of a query run by `each_batch`: `column.in_(batch_param())`."""
    return bindparam("batch", expanding=True)


def each_batch(session: Session, query: Executable, values: Iterable[Any], size: int = IN_BATCH) -> Iterator[Any]:
    """The result rows of `query` for every `size` of `values` bound as its `batch_param()`.
    One statement, compiled once, with the values bound as it runs: a literal list in `in_`
    costs SQLAlchemy a coercion and a compiled parameter per value, which a review's chunk
    (ten thousand ids, several queries) pays in seconds. Mapped objects come back as
    `session.execute` gives them; plain columns as rows read on the session's connection."""
    listed = list(values)
    run: Callable[..., Any] = session.execute
    if _selects_columns(query):
        session.flush()  # what the ORM's autoflush would have sent
        run = session.connection().execute
    for batch in in_batches(listed, size):
        yield from run(query, {"batch": list(batch)}).all()  # a batch whole: not a driver call per row


def _selects_columns(query: Executable) -> bool:
    """Whether `query` selects plain columns, not mapped objects. Such rows need none of the
    ORM's loading, which costs as much again as the query for JSON columns, so they are read
    on the session's connection (same transaction)."""
    described: list[dict[str, Any]] = getattr(query, "column_descriptions", None) or []
    return bool(described) and all(isinstance(d.get("type"), TypeEngine) for d in described)


_PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}
_DRIVER_PARAMETERS = 30_000  # below SQLite's 32,766 and PostgreSQL's 65,535 per statement
_RETURNING_BATCH = 1_000  # rows per multi-row INSERT ... RETURNING


def values_at(names: Sequence[str]) -> Callable[[Any], tuple[Any, ...]]:
    """A function giving a mapping's values at `names`, always as a tuple (`itemgetter` of one
    name gives the bare value): rows to driver parameters, feature rows to numbers."""
    if len(names) == 1:
        only = names[0]
        return lambda mapping: (mapping[only],)
    return itemgetter(*names)


def _driver_values(
    dialect: Dialect, table: Table, columns: list[str], rows: list[dict[str, Any]]
) -> list[tuple[Any, ...]]:
    """The rows as the driver's positional parameters, through each column's own bind
    processor for this dialect (the values SQLAlchemy itself would send). Column by column:
    most columns need no processing, and a bulk write repeats one time in every row."""
    pick = values_at(columns)
    try:
        values: list[tuple[Any, ...]] = list(map(pick, rows))
    except KeyError as exc:
        raise ValueError(f"{table.name}: every row must name the same columns; one lacks {exc}") from None
    processors = [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns]
    if not any(processors):
        return values
    by_column = list(zip(*values, strict=True))
    for index, process in enumerate(processors):
        if process is not None:
            by_column[index] = tuple(_processed(process, by_column[index]))
    return list(zip(*by_column, strict=True))


def _processed(process: Callable[[Any], Any], column: Sequence[Any]) -> list[Any]:
    """`process` over a column's values, computed once per object: a bulk write repeats one
    timestamp, or one list of reasons, in many rows. (By identity: every value stays alive in
    `column` meanwhile, so no id is reused.) A column of mostly distinct objects (each line's
    inputs) is processed value by value: looking each up would cost more than it saves."""
    distinct = len(set(map(id, column)))
    if distinct == 1:
        return [process(column[0])] * len(column)
    if distinct * 2 > len(column):
        return list(map(process, column))
    done: dict[int, Any] = {}
    result = []
    for value in column:
        key = id(value)
        if key not in done:
            done[key] = process(value)
        result.append(done[key])
    return result


def _driver_ready(dialect: Dialect, table: Table, columns: list[str], *, updating: bool = False) -> bool:
    """Whether rows naming `columns` can go to the driver as they are: a known placeholder, no
    column whose dialect casts its parameter in the SQL (psycopg's casts every one, so
    PostgreSQL keeps SQLAlchemy's path), and no Python-side default (or, when `updating`,
    on-update value) left out: those only SQLAlchemy's own path fills in."""
    if dialect.paramstyle not in _PLACEHOLDERS:
        return False
    named = set(columns)
    for column in table.c:
        filled = column.onupdate if updating else column.default
        if column.name not in named and filled is not None and not column.primary_key:
            return False
        if column.name in named and getattr(column.type.dialect_impl(dialect), "render_bind_cast", False):
            return False
    return True


def _insert_sql(connection: Connection, table: Table, columns: list[str], rows: int, returning: str = "") -> str:
    preparer = connection.dialect.identifier_preparer
    mark = _PLACEHOLDERS[connection.dialect.paramstyle]
    group = "(" + ", ".join([mark] * len(columns)) + ")"
    names = ", ".join(preparer.quote(name) for name in columns)
    return f"INSERT INTO {preparer.format_table(table)} ({names}) VALUES {', '.join([group] * rows)}{returning}"


@dataclass(frozen=True)
class BulkRows:
    """Rows for `insert_rows` / `update_rows` with their driver parameters worked out ahead of
    the transaction (`prepare_rows`): a review turns a chunk's rows (JSON of inputs, reasons
    and contributions) into parameters while another process holds the write lock. `values`
    is None where the dialect takes SQLAlchemy's own path (the rows are then used as they are);
    `columns` names the parameters of each row in order; `plain` the columns the driver takes
    as they are (no bind processor), which `setting` can fill in later."""

    rows: list[dict[str, Any]]
    values: list[tuple[Any, ...]] | None
    columns: tuple[str, ...] = ()
    plain: frozenset[str] = frozenset()

    def setting(self, name: str, column: Sequence[Any]) -> BulkRows:
        """The rows with `name` set to `column`'s values, one per row: what is known only inside
        the transaction (the ids of rows inserted in it). The rows' dicts are updated in place."""
        for row, value in zip(self.rows, column, strict=True):
            row[name] = value
        if self.values is None or name not in self.plain:
            return BulkRows(self.rows, None)  # worked out again in the transaction
        at = self.columns.index(name)
        values = [(*v[:at], x, *v[at + 1 :]) for v, x in zip(self.values, column, strict=True)]
        return BulkRows(self.rows, values, self.columns, self.plain)


def prepare_rows(dialect: Dialect, entity: Any, rows: list[dict[str, Any]], *, updating: bool = False) -> BulkRows:
    """`rows` of `entity` with their driver parameters, for `insert_rows` (or `update_rows` with
    `updating`, the primary key `id` last), outside any transaction."""
    table = entity.__table__
    if not rows:
        return BulkRows(rows, None)
    columns = [name for name in rows[0] if name != "id"] + ["id"] if updating else list(rows[0])
    if not _driver_ready(dialect, table, columns, updating=updating):
        return BulkRows(rows, None)
    plain = frozenset(c for c in columns if table.c[c].type.dialect_impl(dialect).bind_processor(dialect) is None)
    return BulkRows(rows, _driver_values(dialect, table, columns, rows), tuple(columns), plain)


def insert_rows(
    session: Session, entity: Any, rows: list[dict[str, Any]] | BulkRows, *, ids: bool = False, key: str | None = None
) -> list[int]:
    """Insert many rows of a mapped class at the driver's speed. The tables written in bulk
    (a review's decisions and limit records) have no ORM-side behaviour; their values go
    through each column's bind processor and straight to the driver, which halves the cost of
    SQLAlchemy's per-row parameter handling. With `ids`, the new primary keys in the rows' order.

    `key`: a column whose values tell the rows apart. RETURNING keeps no order on SQLite for a
    multi-row INSERT, so the ids are matched back by the key; without a distinct key the rows
    go through SQLAlchemy's ordered (one row per statement on SQLite) path. `rows` may be
    `BulkRows` whose driver parameters were worked out ahead of the transaction."""
    bulk = rows if isinstance(rows, BulkRows) else None
    listed = rows.rows if isinstance(rows, BulkRows) else rows
    if not listed:
        return []
    table = entity.__table__
    columns = list(listed[0])
    connection = session.connection()
    # a key the driver sees as it is (no bind processor) comes back from RETURNING as given
    keyed = (
        key is not None
        and table.c[key].type.dialect_impl(connection.dialect).bind_processor(connection.dialect) is None
        and len({row[key] for row in listed}) == len(listed)
    )
    if not _driver_ready(connection.dialect, table, columns) or (ids and not keyed):
        return _insert_through_core(session, table, listed, ids)
    values = bulk.values if bulk is not None and bulk.values is not None else None
    if values is None:
        values = _driver_values(connection.dialect, table, columns, listed)
    if not ids:
        connection.exec_driver_sql(_insert_sql(connection, table, columns, 1), values)
        return []
    assert key is not None
    quote = connection.dialect.identifier_preparer.quote
    returning = f" RETURNING {quote('id')}, {quote(key)}"
    batch = max(1, min(_RETURNING_BATCH, _DRIVER_PARAMETERS // len(columns)))
    found: dict[Any, int] = {}
    for start in range(0, len(values), batch):
        part = values[start : start + batch]
        sql = _insert_sql(connection, table, columns, len(part), returning)
        flat = tuple(chain.from_iterable(part))
        found.update((k, i) for i, k in connection.exec_driver_sql(sql, flat))
    return [found[row[key]] for row in listed]


def _insert_through_core(session: Session, table: Table, rows: list[dict[str, Any]], ids: bool) -> list[int]:
    if not ids:
        session.execute(insert(table), rows)
        return []
    statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
    return list(session.scalars(statement, rows))


def update_rows(session: Session, entity: Any, rows: list[dict[str, Any]] | BulkRows) -> None:
    """Update many rows of a mapped class by primary key `id` in one executemany, at the
    driver's speed as `insert_rows`; every row names the same columns (`BulkRows`: prepared
    ahead with `updating=True`)."""
    bulk = rows if isinstance(rows, BulkRows) else None
    listed = rows.rows if isinstance(rows, BulkRows) else rows
    if not listed:
        return
    table = entity.__table__
    columns = [name for name in listed[0] if name != "id"]
    connection = session.connection()
    if not _driver_ready(connection.dialect, table, [*columns, "id"], updating=True):
        statement = update(table).where(table.c.id == bindparam("row_id"))
        session.execute(
            statement, [{"row_id": row["id"], **{k: v for k, v in row.items() if k != "id"}} for row in listed]
        )
        return
    preparer = connection.dialect.identifier_preparer
    mark = _PLACEHOLDERS[connection.dialect.paramstyle]
    assignments = ", ".join(f"{preparer.quote(name)} = {mark}" for name in columns)
    sql = f"UPDATE {preparer.format_table(table)} SET {assignments} WHERE {preparer.quote('id')} = {mark}"
    values = bulk.values if bulk is not None and bulk.values is not None else None
    connection.exec_driver_sql(sql, values or _driver_values(connection.dialect, table, [*columns, "id"], listed))


_write_locks: dict[int, threading.Lock] = {}


def _engine_write_lock(engine: Engine) -> threading.Lock:
    with _lock:
        return _write_locks.setdefault(id(engine), threading.Lock())


@contextmanager
def write_transaction(engine: Engine, *, checkpoint_later: bool = False) -> Iterator[Session]:
    """A read-modify-write transaction.

    PostgreSQL serialises them with `SELECT ... FOR UPDATE` on the rows; SQLite has no row
    locks, so writers in this process also take one lock per engine (other processes then get
    SQLite's busy wait rather than a lost update).

    `checkpoint_later` (SQLite): this transaction's commit does not copy the write-ahead log
    into the database file, as a commit that finds the log long does otherwise; the caller
    calls `checkpoint` once it no longer holds what other writers wait for (a review's chunk,
    written in turns with other processes, copies the log while the next process writes).
    """
    if engine.dialect.name != "sqlite":
        with session_scope(engine) as session:
            yield session
        return
    if not checkpoint_later:
        with _engine_write_lock(engine), session_scope(engine) as session:
            yield session
        return
    with _engine_write_lock(engine), engine.connect() as connection:
        pages = connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one()
        connection.exec_driver_sql("PRAGMA wal_autocheckpoint=0")
        connection.commit()  # SQLAlchemy began a transaction for the pragmas: the session's is its own
        try:
            with Session(bind=connection, expire_on_commit=False) as session, session.begin():
                yield session
        finally:  # the pooled connection checkpoints as before for its next user
            connection.exec_driver_sql(f"PRAGMA wal_autocheckpoint={int(pages)}")


def checkpoint(engine: Engine) -> None:
    """Copy what SQLite's write-ahead log holds into the database file, as far as readers
    allow, without waiting for other connections (a passive checkpoint); a no-op elsewhere."""
    if engine.dialect.name == "sqlite" and not _in_memory(url_of(engine)):
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").all()


class BackgroundCheckpoints:
    """`checkpoint`s run by a thread of their own, while the caller goes on computing.

    On disk a checkpoint mostly waits for the file system to write and sync what it copied
    (SQLite lets go of the GIL meanwhile): a review that checkpoints after each of its chunks
    waits for that a second or more per 100,000 lines where it could be scoring the next chunk.
    One checkpoint runs at a time; one asked for while another runs is done once that one
    ends (what was committed meanwhile is copied then). `close`, or leaving a `with` block,
    waits for the last one and raises the first error any of them met.
    """

    def __init__(self, engine: Engine, run: Callable[[Engine], None] = checkpoint) -> None:
        self._engine, self._run = engine, run
        self._lock = threading.Lock()
        self._running = False
        self._again = False
        self._thread: threading.Thread | None = None
        self._error: Exception | None = None

    def request(self) -> None:
        """Checkpoint soon: now in the background, or once the one running has ended."""
        with self._lock:
            if self._running:
                self._again = True
                return
            self._running = True
            self._thread = threading.Thread(target=self._loop, name="yinqi-checkpoint", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            try:
                self._run(self._engine)
            except Exception as exc:  # raised to the caller by `close`
                self._error = self._error or exc
            with self._lock:
                if not self._again:
                    self._running = False
                    return
                self._again = False

    def close(self, *, raising: bool = True) -> None:
        """Wait until no checkpoint runs; raise the first error one met (with `raising`)."""
        while True:
            with self._lock:
                thread = self._thread if self._running else None
            if thread is None:
                break
            thread.join()
        if raising and self._error is not None:
            raise self._error

    def __enter__(self) -> BackgroundCheckpoints:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: Any) -> None:
        self.close(raising=kind is None)  # an error already on its way is not masked


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
