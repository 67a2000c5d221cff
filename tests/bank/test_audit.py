"""`yinqi audit model VERSION`: stored files re-hashed, anchored hash verified on the embedded chain."""

from __future__ import annotations

import json

import pytest

from contracts.errors import ChainError
from contracts.outbox import AnchorOutbox
from server.credit.errors import BankError
from server.model_audit import audit_model
from server.registry import Registry, anchor_record


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """One in-memory embedded chain for the module (its deployments file in a temp data dir)."""
    from contracts.client import open_chain

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("YINQI_DATA_DIR", str(tmp_path_factory.mktemp("chain-data")))
        yield open_chain(persist=False)


@pytest.fixture
def registered(tmp_path, make_model):
    url = f"sqlite:///{tmp_path / 'bank.db'}"
    row = Registry(url, tmp_path / "store").register(make_model(0.03))
    return url, row


def test_registration_queues_the_model_hash_for_anchoring(registered):
    url, row = registered
    assert row.anchor_leaf is not None
    assert AnchorOutbox(url).pending() == 1


def test_audit_before_anchoring_says_to_flush(registered):
    url, _ = registered
    with pytest.raises(BankError, match=r"queued but not anchored yet: run `yinqi anchor flush`"):
        audit_model("v1", engine=url)


def test_audit_verifies_the_anchored_model_hash(registered, chain, tmp_path):
    url, row = registered
    AnchorOutbox(url).flush(chain=chain, proof_dir=tmp_path / "proofs")
    result = audit_model("v1", engine=url, chain=chain)
    assert result["sha256"] == row.sha256
    assert result["leaf"] == row.anchor_leaf
    assert result["kind"] == "model" and result["ref"] == "v1"
    from eth_utils import keccak

    assert result["data_hash"] == "0x" + keccak(anchor_record("v1", row.sha256)).hex()


def test_audit_detects_model_files_changed_after_registration(registered, chain, tmp_path):
    url, _row = registered
    AnchorOutbox(url).flush(chain=chain, proof_dir=tmp_path / "proofs")
    encoder = tmp_path / "store" / "v1" / "encoder.json"
    data = json.loads(encoder.read_text())
    data["numeric"]["amount"][0] += 1.0
    encoder.write_text(json.dumps(data))
    with pytest.raises(BankError, match="the model changed after registration"):
        audit_model("v1", engine=url, chain=chain)


def test_audit_refuses_a_registry_hash_that_differs_from_the_anchored_one(registered, chain, tmp_path):
    url, _row = registered
    AnchorOutbox(url).flush(chain=chain, proof_dir=tmp_path / "proofs")
    proof = AnchorOutbox(url).proof_for("model", "v1")
    from contracts.audit import verify_proof

    with pytest.raises(ChainError, match="tampered record"):
        verify_proof(proof, chain=chain, data=anchor_record("v1", "0" * 64))


def test_audit_model_command_on_the_persisted_embedded_chain(tmp_path, make_model):
    from typer.testing import CliRunner

    from yinqi.cli import app

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()
    registered = runner.invoke(app, ["bank", "register-model", str(make_model(0.03)), "--db", url, "--json"])
    assert registered.exit_code == 0, registered.output
    AnchorOutbox(url).flush()  # the configured chain: embedded EVM journaled in the data dir
    result = runner.invoke(app, ["audit", "model", "v1", "--db", url, "--json"])
    assert result.exit_code == 0, result.output
    verified = json.loads(result.output)
    assert verified["ref"] == "v1" and verified["files_match"] is True
