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


@pytest.mark.postgres
def test_a_leaf_in_a_rolled_back_transaction_is_not_kept_on_postgres(pg_url: str) -> None:
    from federation.storage import session_scope

    outbox = AnchorOutbox(pg_url)
    with pytest.raises(RuntimeError), session_scope(outbox.engine) as s:
        outbox.enqueue(b"alert rolled back", "alert", "pg-rb", session=s)
        raise RuntimeError("the caller's record fails")
    assert outbox.pending() == 0
    with session_scope(outbox.engine) as s:
        outbox.enqueue(b"alert kept", "alert", "pg-kept", session=s)
    assert outbox.pending() == 1
