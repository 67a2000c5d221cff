"""The anchoring outbox on PostgreSQL through the same SQLAlchemy code (private schema)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from contracts.audit import verify_proof
from contracts.outbox import AnchorOutbox
from tests.conftest import IN_CI

PG_URL = os.environ.get("YINQI_TEST_PG_URL")


@pytest.fixture
def pg_url() -> Iterator[str]:
    if not PG_URL:
        if IN_CI:
            pytest.fail("YINQI_TEST_PG_URL is not set; .ci/run should start PostgreSQL and export it")
        pytest.skip("YINQI_TEST_PG_URL not set (start PostgreSQL as .ci/run does to run this)")
    from sqlalchemy import create_engine, text

    from federation import storage

    schema = "chain_" + uuid.uuid4().hex[:12]
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    try:
        yield url
    finally:
        engine = storage._engines.pop(url, None)
        if engine is not None:
            engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.mark.postgres
def test_outbox_on_postgres_queues_anchors_and_proves(chain, pg_url: str, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    outbox = AnchorOutbox(pg_url)
    leaves = {outbox.enqueue(f"alert {i}".encode(), "alert", f"pg-{i}") for i in range(12)}
    assert outbox.enqueue(b"alert 0", "alert", "pg-0") in leaves
    assert AnchorOutbox(pg_url).pending() == 12
    paths = outbox.flush(chain, data_dir / "proofs")
    assert {verify_proof(p, chain=chain).leaf for p in paths} == leaves
    assert outbox.proof_for("alert", "pg-3")["leaf_count"] == 12
