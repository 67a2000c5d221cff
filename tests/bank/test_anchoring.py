"""The periodic flusher of `bank serve --anchor-every`: what the services queue reaches the chain
without anyone running `yinqi anchor flush`, an unreachable chain is retried, not fatal, and the
bank's flusher is the anchoring store's own (`AnchorOutbox.start_flusher`), so it takes turns
with an `anchor flush` through the store's lease instead of anchoring the same leaves twice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from contracts.errors import ChainError
from contracts.outbox import AnchorFlushLease, AnchorOutbox
from federation.clock import utcnow
from federation.storage import session_scope
from federation.waiting import wait_until
from server.anchoring import PeriodicFlusher
from server.registry import Registry


@pytest.fixture(scope="module")
def chain(tmp_path_factory):  # type: ignore[no-untyped-def]
    """One in-memory embedded chain for the module (its deployments file in a temp data dir)."""
    from contracts.client import open_chain

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("YINQI_DATA_DIR", str(tmp_path_factory.mktemp("chain-data")))
        yield open_chain(persist=False)


def test_queued_model_hash_is_anchored_by_the_flusher(tmp_path, make_model, chain) -> None:
    from server.model_audit import audit_model

    url = f"sqlite:///{tmp_path / 'bank.db'}"
    Registry(url, tmp_path / "store").register(make_model(0.03))
    flusher = PeriodicFlusher(url, 0.1, proof_dir=tmp_path / "proofs", chain=chain).start()
    try:
        wait_until(lambda: AnchorOutbox(url).pending() == 0, timeout=60, what=f"anchoring ({flusher.last_error})")
    finally:
        flusher.stop()
    assert flusher.anchored == 1 and not flusher.running
    assert audit_model("v1", engine=url, chain=chain)["ref"] == "v1"


def test_an_unreachable_chain_keeps_the_leaves_queued_and_is_retried(tmp_path, make_model) -> None:
    url = f"sqlite:///{tmp_path / 'bank.db'}"
    Registry(url, tmp_path / "store").register(make_model(0.03))
    flusher = PeriodicFlusher(url, 0.05, rpc="http://127.0.0.1:9", proof_dir=tmp_path / "proofs").start()
    errors: list[str] = []
    try:
        wait_until(lambda: flusher.last_error, timeout=60, what="the first failed flush")
        errors.append(flusher.last_error or "")
        flusher.last_error = None
        wait_until(lambda: flusher.last_error, timeout=60, what="a retry at the next tick")
        assert flusher.running  # a failure does not end the flusher
    finally:
        flusher.stop()
    assert AnchorOutbox(url).pending() == 1 and flusher.anchored == 0
    assert "127.0.0.1:9" in errors[0]


def test_the_banks_flusher_waits_for_an_anchor_flush_holding_the_store(tmp_path, make_model, chain) -> None:
    """Another flusher (e.g. `yinqi anchor flush` on another host) holds the store's lease: the
    bank's flusher anchors nothing meanwhile, and everything once the lease is free."""
    url = f"sqlite:///{tmp_path / 'bank.db'}"
    registry = Registry(url, tmp_path / "store")
    registry.register(make_model(0.035))  # a root no other test of the module anchored
    outbox = AnchorOutbox(url)
    with session_scope(outbox.engine) as s:  # as a running `anchor flush` on another host holds it
        s.add(AnchorFlushLease(name="flush", holder="other-host:4242:abcd", expires_at=utcnow() + timedelta(minutes=5)))
    first_block = chain.w3.eth.block_number + 1  # the module shares the chain: count only this test's blocks
    flusher = PeriodicFlusher(url, 0.05, proof_dir=tmp_path / "proofs", chain=chain).start()
    try:
        wait_until(lambda: flusher.last_error, timeout=60, what="the flusher finding the store taken")
        assert "other-host:4242:abcd" in (flusher.last_error or "") and outbox.pending() == 1
        with session_scope(outbox.engine) as s:  # the other flush ends
            s.execute(update(AnchorFlushLease).values(holder=None, expires_at=utcnow() - timedelta(seconds=1)))
        wait_until(lambda: outbox.pending() == 0, timeout=60, what="anchoring once the store is free")
    finally:
        flusher.stop()
    assert flusher.anchored == 1
    assert len(chain.registry.events.Anchored().get_logs(from_block=0)) >= 1
    # on the chain it was given, not the configured one it would open after a failure
    assert len(chain.registry.events.Anchored().get_logs(from_block=first_block)) == 1


def test_the_interval_must_be_positive(tmp_path) -> None:
    with pytest.raises(ChainError, match="expected a positive number of seconds"):
        PeriodicFlusher(f"sqlite:///{tmp_path / 'bank.db'}", 0)
