"""The storage layer: each side's database holds only its own tables, created once, however
many processes race to create them."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
from datetime import UTC, date, datetime

from sqlalchemy import inspect


def _open(url: str, barrier) -> None:  # type: ignore[no-untyped-def]
    from clients.consent import ConsentBook
    from clients.ledger import PrivacyLedger

    barrier.wait()
    PrivacyLedger(url)
    ConsentBook(url)


def _connection_in_child(url: str, queue) -> None:  # type: ignore[no-untyped-def]
    from federation.storage import engine_for

    with engine_for(url).connect() as connection:
        queue.put((id(connection.connection.driver_connection), connection.exec_driver_sql("SELECT 1").scalar_one()))


def test_a_forked_child_opens_its_own_connections_and_leaves_its_parents_working(db_url):
    """A review's forked worker must not share its parent's pooled connection (SQLite's file
    locks, PostgreSQL's session): the cached engine gives it one of its own."""
    from federation.storage import engine_for

    engine = engine_for(db_url)
    with engine.connect() as connection:  # pooled, checked in again
        parents = id(connection.connection.driver_connection)
    ctx = mp.get_context("fork")
    queue = ctx.SimpleQueue()
    child = ctx.Process(target=_connection_in_child, args=(db_url, queue))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    childs, answer = queue.get()
    assert answer == 1
    assert childs != parents  # the parent's, copied, would sit at the same address
    with engine.connect() as connection:
        assert id(connection.connection.driver_connection) == parents  # still the parent's, still open
        assert connection.exec_driver_sql("SELECT 2").scalar_one() == 2


def test_processes_racing_to_create_tables_all_succeed(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(4)
    workers = [ctx.Process(target=_open, args=(url, barrier)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]

    from federation.storage import engine_for

    assert set(inspect(engine_for(url)).get_table_names()) == {"privacy_ledger", "consent_events"}


class _LockedCursor:
    """A cursor whose first `locked` journal-mode switches fail as SQLite's do while another
    process switches the same new file (the race the test above runs into now and then)."""

    def __init__(self, locked: int, error: str = "database is locked") -> None:
        self.locked, self.error, self.calls = locked, error, 0

    def execute(self, sql: str) -> None:
        self.calls += 1
        if self.calls <= self.locked:
            raise sqlite3.OperationalError(self.error)


def test_switching_to_wal_is_tried_again_while_another_process_holds_the_lock():
    import pytest

    from federation.storage import _switch_to_wal

    waited = _LockedCursor(locked=3)
    _switch_to_wal(waited)
    assert waited.calls == 4
    with pytest.raises(sqlite3.OperationalError, match="locked"):  # not forever
        _switch_to_wal(_LockedCursor(locked=10**9), patience=0.05)
    other = _LockedCursor(locked=1, error="disk I/O error")  # anything else at once
    with pytest.raises(sqlite3.OperationalError, match="disk"):
        _switch_to_wal(other)
    assert other.calls == 1


def test_a_sqlite_file_in_a_missing_directory_is_created(tmp_path):
    from federation.storage import engine_for

    url = f"sqlite:///{tmp_path / 'not' / 'yet' / 'there.db'}"
    with engine_for(url).connect() as conn:
        assert conn.exec_driver_sql("select 1").scalar() == 1
    assert (tmp_path / "not" / "yet" / "there.db").is_file()


def _tables_made_by(code: str, url: str) -> set[str]:
    """The tables a fresh process leaves in a fresh database after running `code`."""
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", code.format(url=url)], check=True, timeout=120)
    from federation.storage import engine_for

    return set(inspect(engine_for(url)).get_table_names())


def test_each_side_database_holds_only_its_own_tables(tmp_path):
    # Everything each side's programs import is loaded first (the CLI imports them all), so a
    # table declared anywhere on a shared metadata would show up in every database.
    everything = "import yinqi.cli, server.grpc_app, clients.app, iot.mqtt, contracts.outbox; "
    monitor = _tables_made_by(
        everything + "from iot.store import IotStore; IotStore('{url}')", f"sqlite:///{tmp_path / 'iot.db'}"
    )
    platform = _tables_made_by(
        everything + "from clients.consent import ConsentBook; from clients.ledger import PrivacyLedger; "
        "ConsentBook('{url}'); PrivacyLedger('{url}')",
        f"sqlite:///{tmp_path / 'platform.db'}",
    )
    bank = _tables_made_by(
        everything + "from server.db import bank_engine; bank_engine('{url}')", f"sqlite:///{tmp_path / 'bank.db'}"
    )
    assert all(name.startswith("iot_") for name in monitor), monitor
    assert platform == {"privacy_ledger", "consent_events"}
    assert all(name.startswith(("bank_", "chain_anchor_")) for name in bank), bank
    assert not (monitor & bank) and not (platform & bank) and not (monitor & platform)


def test_bulk_inserted_rows_get_their_own_ids_and_json_round_trips(db_url):
    """`insert_rows` hands back each row's id in the rows' order, whether matched by a key
    column (batched) or kept in order by SQLAlchemy (a key with repeats); JSON columns keep
    their values, NaN stored as null."""
    from datetime import UTC, datetime

    from sqlalchemy import select

    from federation.storage import insert_rows, session_scope
    from server.db import bank_engine
    from server.scoring import Decision

    engine = bank_engine(db_url)
    now = datetime.now(UTC)

    def row(merchant: str, account: str, amount: float) -> dict:
        values = {"merchant_id": merchant, "purpose": "review", "account_id": account, "model_version": "v1"}
        values |= {"model_sha256": "s", "inputs_hash": account, "inputs": [{"amount": amount, "名": "值"}]}
        return values | {
            "pd": 0.1,
            "band": "A",
            "turnover_fen": 1,
            "limit_fen": 2,
            "annual_rate_bp": 3,
            "created_at": now,
        }

    keyed = [row(f"m{i}", f"a{i}", float(i)) for i in (5, 3, 9, 1)]
    repeated = [row("same", f"b{i}", float("nan") if i == 2 else float(i)) for i in range(4)]
    with session_scope(engine) as session:
        keyed_ids = insert_rows(session, Decision, keyed, ids=True, key="account_id")
        repeated_ids = insert_rows(session, Decision, repeated, ids=True, key="merchant_id")
    with session_scope(engine) as session:
        stored = {d.id: d for d in session.scalars(select(Decision))}
    assert [stored[i].account_id for i in keyed_ids] == ["a5", "a3", "a9", "a1"]
    assert [stored[i].account_id for i in repeated_ids] == ["b0", "b1", "b2", "b3"]
    assert stored[keyed_ids[2]].inputs == [{"amount": 9.0, "名": "值"}]
    assert stored[repeated_ids[2]].inputs == [{"amount": None, "名": "值"}]
    assert stored[keyed_ids[0]].created_at == now and stored[repeated_ids[3]].created_at == now


def test_bulk_updates_and_python_side_defaults_reach_the_database(db_url):
    """Rows go straight to the driver only when nothing SQLAlchemy would add is missing: a
    column left out that has a Python-side default still gets it; updates by id change only
    the rows named; a row lacking a column the first row names is refused by name."""
    from datetime import UTC, date, datetime, timedelta

    import pytest
    from sqlalchemy import select
    from sqlalchemy.exc import StatementError

    from federation.storage import insert_rows, session_scope, update_rows
    from server.db import bank_engine
    from server.loanbook.changes import LimitChange

    engine = bank_engine(db_url)
    now = datetime.now(UTC)

    def change(account: str) -> dict:
        return {"account_id": account, "merchant_id": "m", "kind": "review", "review_month": "2026-03"}

    common = {"on": date(2026, 3, 31), "at": now, "action": "keep", "old_limit_fen": 1, "new_limit_fen": 1}
    common |= {"principal_fen": 0, "reasons": [{"code": "X"}], "contributions": {"f": 0.5}}
    rows = [change(a) | common for a in ("x1", "x2", "x3")]  # no frozen, model_version, band: defaults
    with session_scope(engine) as session:
        ids = insert_rows(session, LimitChange, rows, ids=True, key="account_id")
    later = now + timedelta(hours=1)
    with session_scope(engine) as session:
        update_rows(session, LimitChange, [{"id": ids[1], "new_limit_fen": 7, "at": later, "frozen": True}])
    with session_scope(engine) as session:
        stored = {c.account_id: c for c in session.scalars(select(LimitChange).where(LimitChange.id.in_(ids)))}
    assert [(stored[a].frozen, stored[a].model_version, stored[a].band) for a in ("x1", "x3")] == [(False, "", "")] * 2
    assert (stored["x2"].new_limit_fen, stored["x2"].at, stored["x2"].frozen) == (7, later, True)
    assert (stored["x1"].new_limit_fen, stored["x1"].at, stored["x1"].reasons) == (1, now, [{"code": "X"}])
    assert stored["x3"].on == date(2026, 3, 31) and stored["x3"].contributions == {"f": 0.5}
    defaults = {"frozen": False, "model_version": "", "band": ""}
    broken = [change("y1") | common | defaults, change("y2") | common | {"model_version": "", "band": ""}]
    with pytest.raises((ValueError, StatementError), match="frozen"), session_scope(engine) as session:
        insert_rows(session, LimitChange, broken)


def test_in_batches_covers_every_value_once_in_bounded_slices():
    from federation.storage import in_batches

    values = [f"m{i}" for i in range(1201)]
    batches = list(in_batches(values, 500))
    assert [len(b) for b in batches] == [500, 500, 201]
    assert [v for b in batches for v in b] == values
    assert list(in_batches([])) == []


def limit_change_row(
    account: str, at: datetime, reasons: list | None = None, contributions: dict | None = None
) -> dict:
    """A review's limit record as the bulk writes take it (every column named)."""
    return {
        "account_id": account,
        "merchant_id": "m",
        "kind": "review",
        "review_month": "2026-03",
        "on": date(2026, 3, 31),
        "at": at,
        "action": "keep",
        "old_limit_fen": 1,
        "new_limit_fen": 1,
        "principal_fen": 0,
        "frozen": False,
        "decision_id": None,
        "model_version": "v1",
        "band": "A",
        "reasons": reasons if reasons is not None else [],
        "contributions": contributions if contributions is not None else {"f": 0.5},
    }


def test_rows_prepared_before_the_transaction_store_what_plain_rows_do(db_url):
    """`prepare_rows` works the driver parameters out ahead (a review, before it takes the
    write lock); inserts and updates store the same as from plain rows."""
    from sqlalchemy import select

    from federation.storage import insert_rows, prepare_rows, session_scope, update_rows
    from server.db import bank_engine
    from server.loanbook.changes import LimitChange

    engine = bank_engine(db_url)
    now = datetime.now(UTC)

    def change(account: str) -> dict:
        return limit_change_row(account, now, reasons=[{"code": "X", "text_zh": "值"}])

    # ids known only in the transaction are set on prepared rows (`setting`); a column with a
    # bind processor set so sends the rows back through the processors
    prepared = prepare_rows(engine.dialect, LimitChange, [change("p1"), change("p2")])
    late = prepare_rows(engine.dialect, LimitChange, [change("r1")]).setting("at", [now])
    assert late.values is None and late.rows[0]["at"] == now
    with session_scope(engine) as session:
        ids = insert_rows(session, LimitChange, prepared.setting("decision_id", [None, 12]), ids=True, key="account_id")
        insert_rows(session, LimitChange, [change("q1")])
        insert_rows(session, LimitChange, late)
    updates = prepare_rows(engine.dialect, LimitChange, [{"id": ids[1], "new_limit_fen": 9, "at": now}], updating=True)
    with session_scope(engine) as session:
        update_rows(session, LimitChange, updates)
    with session_scope(engine) as session:
        stored = {c.account_id: c for c in session.scalars(select(LimitChange))}

    def seen(c: LimitChange) -> tuple:
        return (c.decision_id, c.new_limit_fen, c.at, c.on, c.reasons, c.contributions, c.frozen)

    assert seen(stored["p1"]) == seen(stored["q1"]) == seen(stored["r1"])  # prepared ahead == plain rows
    assert seen(stored["p1"])[:2] == (None, 1) and seen(stored["p2"])[:2] == (12, 9)


def test_a_write_that_checkpoints_later_leaves_the_log_to_the_caller_and_loses_nothing(tmp_path):
    """`write_transaction(checkpoint_later=True)` (a review's chunk, written in turns): its commit
    leaves SQLite's write-ahead log as it is, however long; `checkpoint` then copies it into the
    database file; a failed block stores nothing; the pooled connection checkpoints as before."""
    import pytest
    from sqlalchemy import func, select

    from federation.storage import checkpoint, insert_rows, session_scope, write_transaction
    from server.db import bank_engine
    from server.loanbook.changes import LimitChange

    path = tmp_path / "bank.db"
    engine = bank_engine(f"sqlite:///{path}")
    padding = {f"feature_{k}": k / 7 for k in range(80)}  # some 2 kB a row

    def changes(prefix: str, n: int) -> list[dict]:
        return [limit_change_row(f"{prefix}{i}", datetime.now(UTC), contributions=padding) for i in range(n)]

    def stored() -> int:
        with session_scope(engine) as session:
            return session.scalar(select(func.count()).select_from(LimitChange)) or 0

    checkpoint(engine)
    before = path.stat().st_size
    with write_transaction(engine, checkpoint_later=True) as session:
        insert_rows(session, LimitChange, changes("a", 3000))  # over 1,000 pages of log
    assert stored() == 3000 and path.stat().st_size == before  # committed, all of it in the log
    with pytest.raises(RuntimeError, match="broken"), write_transaction(engine, checkpoint_later=True) as session:
        insert_rows(session, LimitChange, changes("b", 1))
        raise RuntimeError("broken")
    assert stored() == 3000
    checkpoint(engine)
    copied = path.stat().st_size
    assert copied > before + 4_096_000  # the log (over 1,000 pages), copied into the database file
    with write_transaction(engine) as session:  # any connection of the pool: checkpoints as it commits
        insert_rows(session, LimitChange, changes("c", 3000))
    assert stored() == 6000 and path.stat().st_size > copied + 4_096_000


def test_background_checkpoints_copy_the_log_while_the_caller_goes_on(tmp_path):
    """`BackgroundCheckpoints` (a review's process, between its chunks): the log a write left is
    copied into the database file by a thread of its own; `close` waits for it."""
    from federation.storage import BackgroundCheckpoints, checkpoint, insert_rows, write_transaction
    from server.db import bank_engine
    from server.loanbook.changes import LimitChange

    path = tmp_path / "bank.db"
    engine = bank_engine(f"sqlite:///{path}")
    padding = {f"feature_{k}": k / 7 for k in range(80)}
    checkpoint(engine)
    before = path.stat().st_size
    with BackgroundCheckpoints(engine) as checkpoints:
        with write_transaction(engine, checkpoint_later=True) as session:
            rows = [limit_change_row(f"a{i}", datetime.now(UTC), contributions=padding) for i in range(3000)]
            insert_rows(session, LimitChange, rows)
        assert path.stat().st_size == before  # all of it in the log
        checkpoints.request()
    assert path.stat().st_size > before + 4_096_000  # copied by the time the block is left


def test_a_checkpoint_asked_for_while_one_runs_follows_it_once():
    """Requests while a checkpoint runs do not start a second at the same time, nor are they
    lost: one more runs after it, whatever their number."""
    import threading

    from federation.storage import BackgroundCheckpoints

    started, release = threading.Event(), threading.Event()
    runs: list[str] = []
    at_once = threading.Semaphore(1)

    def slow(engine: object) -> None:
        assert at_once.acquire(blocking=False), "two checkpoints at once"
        try:
            runs.append(threading.current_thread().name)
            started.set()
            release.wait(30)
        finally:
            at_once.release()

    checkpoints = BackgroundCheckpoints(None, slow)  # type: ignore[arg-type]
    checkpoints.request()
    assert started.wait(30)
    checkpoints.request()
    checkpoints.request()
    release.set()
    checkpoints.close()
    assert runs == ["yinqi-checkpoint", "yinqi-checkpoint"]
    checkpoints.request()  # after close: a new run, waited for by the next close
    checkpoints.close()
    assert len(runs) == 3


def test_a_failed_background_checkpoint_is_raised_by_close_unless_an_error_is_on_its_way():
    import pytest

    from federation.storage import BackgroundCheckpoints

    def broken(engine: object) -> None:
        raise OSError("disk full")

    checkpoints = BackgroundCheckpoints(None, broken)  # type: ignore[arg-type]
    checkpoints.request()
    with pytest.raises(OSError, match="disk full"):
        checkpoints.close()
    with pytest.raises(KeyError, match="the chunk's own error"), BackgroundCheckpoints(None, broken) as again:  # type: ignore[arg-type]
        again.request()
        raise KeyError("the chunk's own error")


def test_an_index_declared_after_the_database_was_made_is_added_when_it_is_opened(db_url):
    # Reproduction: `create_all` makes a table's indexes only with the table, so a bank
    # database made before the end of day's index on entries' time was declared never got
    # it, and every night read the whole ledger.
    from federation.storage import forget_engine
    from server.db import bank_engine

    def indexes() -> set[str]:
        return {ix["name"] for ix in inspect(bank_engine(db_url)).get_indexes("bank_credit_entries")}

    made = indexes()
    assert "ix_bank_credit_entries_at" in made
    with bank_engine(db_url).begin() as connection:
        connection.exec_driver_sql("DROP INDEX ix_bank_credit_entries_at")
    forget_engine(db_url)  # the bank restarts on a database an earlier version made
    assert indexes() == made
