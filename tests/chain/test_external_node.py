"""The same client code against a real external JSON-RPC node (Hardhat 2 on a loopback port):
deploy, lifecycle with time travel, anchor and verify, and the outbox through a node outage."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from eth_utils import keccak

from contracts import receivables as rv
from contracts.audit import verify_proof
from contracts.client import open_chain
from contracts.errors import ChainError
from contracts.outbox import AnchorOutbox


def test_deploy_finance_anchor_and_verify_on_an_external_node(hardhat, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    chain = open_chain(hardhat.url)
    assert chain.chain_id == 31337 and chain.deployed_now
    assert open_chain(hardhat.url).financing.address == chain.financing.address  # found, not redeployed
    rid = rv.create(chain, "supplier", 500_000, chain.now() + 86400, keccak(b"hh-invoice"))
    with pytest.raises(ChainError) as info:
        rv.fund(chain, rid, sender="supplier")
    assert info.value.error_name == "AccessControlUnauthorizedAccount"  # decoded from the node's revert data
    rv.set_limit(chain, "debtor", 1_000_000, max_tenor_days=0, advance_bps=9_000)
    rv.apply(chain, rid, sender="supplier")
    rv.approve(chain, rid)
    rv.fund(chain, rid)
    with pytest.raises(ChainError) as info:
        rv.fund(chain, rid)
    assert info.value.error_name == "AlreadyFinanced"
    chain.time_travel(rv.get(chain, rid).due_date + rv.grace_period(chain) + 1)
    rv.mark_defaulted(chain, rid, sender="bank")
    assert rv.get(chain, rid).state == "Defaulted"

    outbox = AnchorOutbox()
    for i in range(7):
        outbox.enqueue(f"alert {i}".encode(), "alert", f"hh-{i}")
    paths = outbox.flush(chain, data_dir / "proofs")
    assert len(paths) == 7
    trust = {"registry": chain.registry.address, "anchorers": [chain.address("bank")]}
    for path in paths:
        assert verify_proof(path, hardhat.url, **trust).chain_id == 31337


def test_outbox_survives_a_node_outage(hardhat, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("YINQI_CHAIN_RPC", hardhat.url)  # flush(chain=None) opens the configured node
    outbox = AnchorOutbox()
    outbox.enqueue(b"before the outage", "alert", "early")
    assert len(outbox.flush(proof_dir=data_dir / "proofs")) == 1

    hardhat.stop()
    queued = [outbox.enqueue(f"during the outage {i}".encode(), "alert", f"late-{i}") for i in range(20)]
    with pytest.raises(ChainError, match="cannot reach"):
        outbox.flush(proof_dir=data_dir / "proofs")
    assert outbox.pending() == 20  # nothing queued is lost

    # The node comes back while a flush is retrying (a fresh dev chain: contracts redeployed).
    restarter = threading.Timer(0.5, hardhat.start)
    restarter.start()
    try:
        paths = outbox.flush(proof_dir=data_dir / "proofs", attempts=30, retry_delay=0.25)
    finally:
        restarter.join()
    assert outbox.pending() == 0
    assert len(paths) == 20
    restarted = open_chain(hardhat.url)  # a fresh dev chain: the contracts were redeployed
    trust = {"registry": restarted.registry.address, "anchorers": [restarted.address("bank")]}
    assert {verify_proof(p, hardhat.url, **trust).leaf for p in paths} == set(queued)
