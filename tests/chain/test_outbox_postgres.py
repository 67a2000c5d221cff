"""The anchoring outbox on PostgreSQL through the same SQLAlchemy code (private schema)."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts.audit import verify_proof
from contracts.outbox import AnchorOutbox


@pytest.mark.postgres
def test_outbox_on_postgres_queues_anchors_and_proves(chain, pg_url: str, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    outbox = AnchorOutbox(pg_url)
    leaves = {outbox.enqueue(f"alert {i}".encode(), "alert", f"pg-{i}") for i in range(12)}
    assert outbox.enqueue(b"alert 0", "alert", "pg-0") in leaves
    assert AnchorOutbox(pg_url).pending() == 12
    paths = outbox.flush(chain, data_dir / "proofs")
    assert {verify_proof(p, chain=chain).leaf for p in paths} == leaves
    assert outbox.proof_for("alert", "pg-3")["leaf_count"] == 12
