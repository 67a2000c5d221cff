"""The periodic flusher of `bank serve --anchor-every`: what the services queue reaches the chain
without anyone running `yinqi anchor flush`, and an unreachable chain is retried, not fatal."""

from __future__ import annotations

import time

import pytest

from contracts.outbox import AnchorOutbox
from server.anchoring import PeriodicFlusher
from server.registry import Registry


def _wait(condition, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_queued_model_hash_is_anchored_by_the_flusher(tmp_path, make_model) -> None:
    from server.registry import audit_model

    url = f"sqlite:///{tmp_path / 'bank.db'}"
    Registry(url, tmp_path / "store").register(make_model(0.03))
    flusher = PeriodicFlusher(url, 0.1, proof_dir=tmp_path / "proofs").start()
    try:
        assert _wait(lambda: AnchorOutbox(url).pending() == 0, 60), flusher.last_error
    finally:
        flusher.stop()
    assert flusher.anchored == 1
    assert audit_model("v1", engine=url, chain=flusher.chain)["ref"] == "v1"


def test_an_unreachable_chain_keeps_the_leaves_queued_and_is_retried(tmp_path, make_model) -> None:
    url = f"sqlite:///{tmp_path / 'bank.db'}"
    Registry(url, tmp_path / "store").register(make_model(0.03))
    flusher = PeriodicFlusher(url, 0.05, rpc="http://127.0.0.1:9", proof_dir=tmp_path / "proofs").start()
    try:
        assert _wait(lambda: flusher.last_error is not None, 60)
        first = flusher.last_error
        assert _wait(lambda: flusher._thread.is_alive() and flusher.last_error is not None, 5)
    finally:
        flusher.stop()
    assert AnchorOutbox(url).pending() == 1 and flusher.anchored == 0
    assert "127.0.0.1:9" in (first or "")


def test_the_interval_must_be_positive(tmp_path) -> None:
    with pytest.raises(ValueError, match="positive"):
        PeriodicFlusher(f"sqlite:///{tmp_path / 'bank.db'}", 0)
