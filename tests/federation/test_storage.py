"""The storage layer: tables created once, however many processes race to create them."""

from __future__ import annotations

import multiprocessing as mp

from sqlalchemy import inspect


def _open(url: str, barrier) -> None:  # type: ignore[no-untyped-def]
    import clients.ledger  # noqa: F401  (declares the privacy_ledger table)
    import clients.consent  # noqa: F401
    from federation.storage import engine_for

    barrier.wait()
    engine_for(url)


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

    assert {"privacy_ledger", "consent_events"} <= set(inspect(engine_for(url)).get_table_names())


def test_a_sqlite_file_in_a_missing_directory_is_created(tmp_path):
    from federation.storage import engine_for

    url = f"sqlite:///{tmp_path / 'not' / 'yet' / 'there.db'}"
    with engine_for(url).connect() as conn:
        assert conn.exec_driver_sql("select 1").scalar() == 1
    assert (tmp_path / "not" / "yet" / "there.db").is_file()
