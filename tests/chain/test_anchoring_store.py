"""One anchoring store (issue 11): a record and its leaf commit together or not at all, flushes
of one store take turns through a lease, and the bank's periodic flusher drains it."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Integer, String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from contracts.audit import verify_proof
from contracts.errors import ChainError
from contracts.outbox import AnchorFlushLease, AnchorLeaf, AnchorOutbox, default_db_url
from federation.clock import utcnow
from federation.storage import engine_for, session_scope
from federation.waiting import free_port, wait_until


class CallerBase(DeclarativeBase):
    """A caller's own table in the same database (as the bank's alerts or models are)."""


class Record(CallerBase):
    __tablename__ = "test_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    body: Mapped[str] = mapped_column(String(64))


def _store(data_dir: Path) -> tuple[AnchorOutbox, str]:
    url = default_db_url()
    assert url == f"sqlite:///{data_dir / 'bank.db'}"  # the default store is the bank's database
    engine_for(url, CallerBase.metadata)
    return AnchorOutbox(), url


def _records(url: str) -> list[str]:
    with session_scope(engine_for(url)) as s:
        return list(s.scalars(select(Record.body)).all())


def test_a_record_and_its_leaf_commit_together(data_dir: Path) -> None:
    outbox, url = _store(data_dir)
    with session_scope(outbox.engine) as s:
        s.add(Record(body="alert a-1"))
        leaf = outbox.enqueue(b"alert a-1", "alert", "a-1", session=s)
        assert outbox.pending() == 0  # not visible before the caller commits
    assert _records(url) == ["alert a-1"] and outbox.pending() == 1
    with session_scope(outbox.engine) as s:
        assert s.scalar(select(AnchorLeaf.leaf).where(AnchorLeaf.ref == "a-1")) == leaf


def test_a_failure_after_the_enqueue_keeps_neither(data_dir: Path) -> None:
    outbox, url = _store(data_dir)
    with pytest.raises(RuntimeError), session_scope(outbox.engine) as s:
        s.add(Record(body="alert a-2"))
        outbox.enqueue(b"alert a-2", "alert", "a-2", session=s)
        raise RuntimeError("the caller's next step fails")
    assert _records(url) == [] and outbox.pending() == 0


def test_a_refused_leaf_fails_the_callers_transaction(data_dir: Path) -> None:
    outbox, url = _store(data_dir)
    with pytest.raises(ChainError, match="anchor kind"), session_scope(outbox.engine) as s:
        s.add(Record(body="alert a-3"))
        outbox.enqueue(b"alert a-3", "k" * 40, "a-3", session=s)
    assert _records(url) == [] and outbox.pending() == 0


def test_a_process_killed_between_the_two_writes_leaves_neither(data_dir: Path) -> None:
    outbox, url = _store(data_dir)
    script = f"""
import os
from tests.chain.test_anchoring_store import Record, CallerBase
from contracts.outbox import AnchorOutbox
from federation.storage import engine_for
engine_for({url!r}, CallerBase.metadata)
outbox = AnchorOutbox({url!r})
session = __import__("sqlalchemy.orm", fromlist=["Session"]).Session(outbox.engine)
session.add(Record(body="alert a-4"))
outbox.enqueue(b"alert a-4", "alert", "a-4", session=session)
session.flush()
os._exit(9)  # dies before the commit
"""
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 9, proc.stderr
    assert _records(url) == [] and outbox.pending() == 0
    # the retry (a redelivery) then stores both, once
    for _ in range(2):
        with session_scope(outbox.engine) as s:
            if not s.scalar(select(Record.id).where(Record.body == "alert a-4")):
                s.add(Record(body="alert a-4"))
            outbox.enqueue(b"alert a-4", "alert", "a-4", session=s)
    assert _records(url) == ["alert a-4"] and outbox.pending() == 1


def test_a_leaf_for_another_database_is_refused(data_dir: Path) -> None:
    outbox, _ = _store(data_dir)
    other = engine_for(f"sqlite:///{data_dir / 'elsewhere.db'}", CallerBase.metadata)
    with pytest.raises(ChainError, match="drained"), session_scope(other) as s:
        outbox.enqueue(b"x", "alert", "x", session=s)


# ----- the store's lease ---------------------------------------------------------------------


def _hold_lease(outbox: AnchorOutbox, holder: str, expires_in: timedelta) -> None:
    with session_scope(outbox.engine) as s:
        row = s.get(AnchorFlushLease, "flush") or AnchorFlushLease(name="flush")
        row.holder, row.expires_at = holder, utcnow() + expires_in
        s.add(row)


def test_a_flush_waits_for_the_one_holding_the_store(chain, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    outbox, _ = _store(data_dir)
    outbox.enqueue(b"r", "alert", "r")
    _hold_lease(outbox, "bank-host:4242:abc", timedelta(minutes=1))  # a live flusher elsewhere
    with pytest.raises(ChainError, match=r"another flush \(bank-host:4242:abc\) holds the anchoring store"):
        outbox.flush(chain, data_dir / "proofs", wait=0.3)
    assert outbox.pending() == 1
    _hold_lease(outbox, "bank-host:4242:abc", timedelta(minutes=-1))  # its lease lapsed: it crashed
    assert len(outbox.flush(chain, data_dir / "proofs", wait=0.3)) == 1


def test_a_lease_of_a_dead_local_process_is_taken_over(chain, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    import socket

    outbox, _ = _store(data_dir)
    outbox.enqueue(b"r", "alert", "r")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    _hold_lease(outbox, f"{socket.gethostname()}:{int(dead.stdout)}:x", timedelta(minutes=5))
    assert len(outbox.flush(chain, data_dir / "proofs", wait=0.3)) == 1


# ----- the bank's periodic flusher --------------------------------------------------------------


def test_the_periodic_flusher_drains_what_services_queue(chain, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    outbox, _ = _store(data_dir)
    flushed: list[Path] = []
    thread, stop = outbox.start_flusher(0.05, chain=chain, proof_dir=data_dir / "proofs", on_flush=flushed.extend)
    try:
        for i in range(30):
            AnchorOutbox().enqueue(f"alert {i}".encode(), "alert", f"f-{i}")  # as the alert intake would
        wait_until(lambda: outbox.pending() == 0, timeout=60, what="the flusher anchoring 30 leaves")
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert sorted(json.loads(p.read_text())["ref"] for p in flushed) == sorted(f"f-{i}" for i in range(30))
    assert all(verify_proof(p, chain=chain).kind == "alert" for p in flushed)


def test_the_periodic_flusher_keeps_leaves_through_an_outage(data_dir: Path) -> None:
    outbox, _ = _store(data_dir)
    outbox.enqueue(b"during the outage", "alert", "o-1")
    errors: list[str] = []
    thread, stop = outbox.start_flusher(0.05, rpc=f"http://127.0.0.1:{free_port()}", on_error=errors.append)
    try:
        wait_until(lambda: len(errors) >= 2, timeout=30, what="two failed ticks")
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert all("cannot reach" in e for e in errors)
    assert outbox.pending() == 1  # nothing lost, nothing half-anchored


def test_the_flusher_refuses_a_bad_interval(data_dir: Path) -> None:
    outbox, _ = _store(data_dir)
    for bad in (0, -1, float("nan")):
        with pytest.raises(ChainError, match="interval must be > 0"):
            outbox.run_flusher(threading.Event(), bad)
