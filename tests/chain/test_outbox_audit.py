"""The anchoring outbox and the auditor's check on the embedded EVM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_utils import keccak

from contracts.audit import verify_proof
from contracts.errors import ChainError
from contracts.merkle import MerkleTree, record_leaf
from contracts.outbox import AnchorBatch, AnchorOutbox
from federation.storage import session_scope


def _anchored_events(chain) -> list:  # type: ignore[no-untyped-def]
    return chain.registry.events.Anchored().get_logs(from_block=0)


def test_enqueue_is_idempotent_and_durable_before_any_chain(data_dir: Path) -> None:
    outbox = AnchorOutbox()
    first = outbox.enqueue(b"alert 1", "alert", "dev-1/42")
    assert outbox.enqueue(b"alert 1", "alert", "dev-1/42") == first
    assert first == "0x" + record_leaf("alert", "dev-1/42", keccak(b"alert 1")).hex()
    assert AnchorOutbox().pending() == 1  # a new instance (another process) sees it


def test_flush_anchors_each_kind_in_one_transaction_and_writes_verifiable_proofs(chain, data_dir: Path) -> None:
    outbox = AnchorOutbox()
    for i in range(25):
        outbox.enqueue(f"alert {i}".encode(), "alert", f"a{i}")
    outbox.enqueue(b"model weights", "model", "v3")
    paths = outbox.flush(chain, data_dir / "proofs")
    assert len(paths) == 26 and outbox.pending() == 0
    events = _anchored_events(chain)
    assert sorted(e["args"]["leafCount"] for e in events) == [1, 25]
    for path in paths:
        proof = json.loads(path.read_text())
        for field in ("leaf", "proof", "root", "contract", "chain_id", "tx_hash", "block", "kind", "ref"):
            assert field in proof
        verified = verify_proof(path, chain=chain)
        assert (verified.kind, verified.ref) == (proof["kind"], proof["ref"])
        assert verified.tx_hash == proof["tx_hash"] and verified.block == proof["block"]
    assert outbox.proof_for("model", "v3")["leaf_count"] == 1
    assert outbox.proof_for("model", "nope") is None
    assert outbox.flush(chain, data_dir / "proofs") == []  # nothing left, nothing sent
    assert len(_anchored_events(chain)) == 2


def test_leaves_stay_queued_while_the_node_is_unreachable(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import free_port

    monkeypatch.setenv("YINQI_CHAIN_RPC", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    outbox = AnchorOutbox()
    outbox.enqueue(b"doc", "document", "inv-1")
    with pytest.raises(ChainError, match="cannot reach"):
        outbox.flush(proof_dir=data_dir / "p", attempts=2, retry_delay=0.01)
    assert outbox.pending() == 1


def test_a_batch_anchored_before_a_crash_is_completed_without_a_second_transaction(chain, data_dir: Path) -> None:
    outbox = AnchorOutbox()
    leaves = [outbox.enqueue(f"r{i}".encode(), "alert", f"r{i}") for i in range(3)]
    outbox._claim_batches()  # the batch and its root are committed ...
    with session_scope(outbox.engine) as s:
        batch = s.query(AnchorBatch).one()
        root = bytes.fromhex(batch.root[2:])
    # ... the anchor transaction goes out, then the process dies before recording it
    chain.transact(chain.registry.functions.anchor(root, 3, b"alert".ljust(32, b"\0")), "bank")
    paths = outbox.flush(chain, data_dir / "proofs")
    assert len(paths) == 3 and len(_anchored_events(chain)) == 1
    assert MerkleTree.build([bytes.fromhex(x[2:]) for x in leaves]).root == root
    assert all(verify_proof(p, chain=chain).root == "0x" + root.hex() for p in paths)


@pytest.fixture
def proof(chain, data_dir: Path) -> dict:  # type: ignore[no-untyped-def]
    outbox = AnchorOutbox()
    for i in range(5):
        outbox.enqueue(f"record {i}".encode(), "document", f"doc-{i}")
    outbox.flush(chain, data_dir / "proofs")
    return outbox.proof_for("document", "doc-2")  # type: ignore[return-value]


def test_auditor_rejects_a_tampered_leaf(chain, proof: dict) -> None:  # type: ignore[no-untyped-def]
    tampered = {**proof, "data_hash": "0x" + keccak(b"record 2 altered").hex()}
    with pytest.raises(ChainError, match="tampered leaf"):
        verify_proof(tampered, chain=chain)
    relabelled = {
        **proof,
        "leaf": "0x" + record_leaf("document", "doc-2", keccak(b"x")).hex(),
        "data_hash": "0x" + keccak(b"x").hex(),
    }
    with pytest.raises(ChainError, match="tampered leaf or proof"):
        verify_proof(relabelled, chain=chain)


def test_auditor_rejects_a_tampered_proof_element(chain, proof: dict) -> None:  # type: ignore[no-untyped-def]
    bad = list(proof["proof"])
    bad[0] = bad[0][:-2] + ("00" if bad[0][-2:] != "00" else "01")
    with pytest.raises(ChainError, match="tampered leaf or proof"):
        verify_proof({**proof, "proof": bad}, chain=chain)


def test_auditor_rejects_a_wrong_root(chain, proof: dict) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ChainError, match="wrong root"):
        verify_proof({**proof, "root": "0x" + "11" * 32}, chain=chain)


def test_auditor_rejects_an_unknown_root(chain, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    leaf = record_leaf("document", "never-anchored", keccak(b"x"))
    other = record_leaf("document", "other", keccak(b"y"))
    tree = MerkleTree.build([leaf, other])
    forged = {
        "kind": "document",
        "ref": "never-anchored",
        "data_hash": "0x" + keccak(b"x").hex(),
        "leaf": "0x" + leaf.hex(),
        "proof": ["0x" + p.hex() for p in tree.proof(leaf)],
        "root": "0x" + tree.root.hex(),
        "contract": chain.registry.address,
        "chain_id": chain.chain_id,
        "tx_hash": "0x" + "00" * 32,
        "block": 1,
    }
    with pytest.raises(ChainError, match="unknown root"):
        verify_proof(forged, chain=chain)


def test_auditor_rejects_another_chain_or_contract_or_transaction(chain, proof: dict) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ChainError, match="chain id"):
        verify_proof({**proof, "chain_id": 1}, chain=chain)
    with pytest.raises(ChainError, match="not the trusted anchoring contract"):
        verify_proof({**proof, "contract": "0x" + "12" * 20}, chain=chain)
    other_tx = chain.transact(chain.fn(chain.financing, "setGracePeriod", 0), "bank")
    with pytest.raises(ChainError, match="did not anchor"):
        verify_proof({**proof, "tx_hash": "0x" + bytes(other_tx["transactionHash"]).hex()}, chain=chain)


def test_auditor_checks_the_original_record_when_given(chain, proof: dict) -> None:  # type: ignore[no-untyped-def]
    assert verify_proof(proof, chain=chain, data=b"record 2").ref == "doc-2"
    with pytest.raises(ChainError, match="tampered record"):
        verify_proof(proof, chain=chain, data=b"record 2!")


def test_a_proof_file_with_missing_fields_names_them(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"leaf": "0x00"}))
    with pytest.raises(ChainError, match="missing field"):
        verify_proof(path)
    path.write_text("{not json")
    with pytest.raises(ChainError, match="not valid JSON"):
        verify_proof(path)
    path.write_bytes(b"\xff\xfe{}")
    with pytest.raises(ChainError, match="not UTF-8"):
        verify_proof(path)


def test_two_flushes_racing_for_one_batch_both_finish_with_one_transaction(chain, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    first, second = AnchorOutbox(), AnchorOutbox()
    for i in range(4):
        first.enqueue(f"r{i}".encode(), "alert", f"race-{i}")
    first._claim_batches()
    with session_scope(first.engine) as s:
        root = bytes.fromhex(s.query(AnchorBatch).one().root[2:])
    # the other flush read anchors(root) == 0 just before this one anchored it
    paths_a = first.flush(chain, data_dir / "proofs")
    tx = second._send(1, chain, root, 4, "alert")  # reverts RootAlreadyAnchored → the first tx is found
    assert "0x" + bytes(tx).hex() == json.loads(paths_a[0].read_text())["tx_hash"]
    assert len(paths_a) == 4 and len(_anchored_events(chain)) == 1
