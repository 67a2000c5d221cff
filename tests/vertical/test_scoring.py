"""Scoring with a vertical model: the platform answers only the bank's operators, only for consented
merchants; and auditing a vertical version (`yinqi audit model`, `yinqi vertical hash`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from clients.consent import ConsentBook
from clients.vertical.embedding_service import EmbeddingService, build_embedding_server
from contracts.outbox import AnchorOutbox
from federation.errors import YinqiError
from federation.vertical.model import combined_digest
from proto.channel import RemoteError, connect
from server.credit.errors import BankError
from server.registry import Registry, anchor_record
from server.vertical.registry import register_vertical
from server.vertical.scoring import VerticalScorer
from tests.vertical.conftest import Pki
from tests.vertical.helpers import World, make_world
from yinqi.harness.vertical import simulate_vertical


@dataclass
class Deployed:
    world: World
    registry: Registry
    version: str
    address: str
    consented: str
    unconsented: str
    report: dict


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Deployed]:
    root = tmp_path_factory.mktemp("scoring")
    world = make_world(root, merchants=500)
    report = simulate_vertical(world.config(epochs=2), world.node())
    registry = Registry(world.bank_db, root / "store")
    row = register_vertical(registry, world.root / "top")
    consent_db = f"sqlite:///{root / 'consent.db'}"
    consented, unconsented = world.shared[0], world.shared[1]
    ConsentBook(consent_db).grant([consented])
    service = EmbeddingService(root / "bottom" / world.session, world.platform_file, consent_db, platform="platform-a")
    server = build_embedding_server("127.0.0.1:0", service, pki.server(pki.platform_server))
    server.start()
    yield Deployed(world, registry, row.version, f"127.0.0.1:{server.bound_port}", consented, unconsented, report)
    server.stop(0)


def test_a_consented_merchant_is_scored_with_both_registered_halves(deployed: Deployed, pki: Pki) -> None:
    scorer = VerticalScorer(deployed.registry, deployed.version, deployed.world.bank_file)
    score = scorer.score(deployed.consented, connect(deployed.address, pki.client(pki.operator)))
    assert 0.0 < score.default_probability < 1.0
    assert (score.top_sha256, score.bottom_sha256) == (deployed.report["top_sha256"], deployed.report["bottom_sha256"])
    assert (
        score.model_sha256 == combined_digest(score.top_sha256, score.bottom_sha256) == deployed.report["version_hash"]
    )
    assert score.platform == "platform-a"


def test_a_merchant_without_consent_cannot_be_scored(deployed: Deployed, pki: Pki) -> None:
    scorer = VerticalScorer(deployed.registry, deployed.version, deployed.world.bank_file)
    with pytest.raises(RemoteError, match=f"merchant '{deployed.unconsented}' has no consent in force") as refused:
        scorer.score(deployed.unconsented, connect(deployed.address, pki.client(pki.operator)))
    assert refused.value.code == "FAILED_PRECONDITION"


def test_only_the_banks_operators_may_ask_for_embeddings(deployed: Deployed, pki: Pki) -> None:
    scorer = VerticalScorer(deployed.registry, deployed.version, deployed.world.bank_file)
    for who in (pki.platform, pki.auditor, pki.no_role):
        with pytest.raises(RemoteError) as refused:
            scorer.score(deployed.consented, connect(deployed.address, pki.client(who)))
        assert refused.value.code == "PERMISSION_DENIED"
    with pytest.raises(RemoteError) as refused:  # a service certificate (serverAuth) is no client
        scorer.score(deployed.consented, connect(deployed.address, pki.client(pki.platform_server)))
    assert refused.value.code == "UNAVAILABLE" and "TLS handshake" in str(refused.value)
    with pytest.raises(RemoteError) as refused:
        scorer.score(deployed.consented, connect(deployed.address, pki.client(pki.stranger, pki.stranger_ca)))
    assert refused.value.code == "UNAVAILABLE"  # the TLS handshake fails: another CA


def test_the_platform_serves_only_the_registered_bottom_model(deployed: Deployed, pki: Pki) -> None:
    from proto import vertical_pb2, vertical_pb2_grpc
    from proto.channel import call

    stub = vertical_pb2_grpc.EmbeddingServiceStub(connect(deployed.address, pki.client(pki.operator)))
    with pytest.raises(RemoteError, match="this platform serves"):
        call(stub.Embed, vertical_pb2.EmbedRequest(merchant_id=deployed.consented, bottom_sha256="0" * 64))
    with pytest.raises(RemoteError, match="1-128 characters"):
        call(
            stub.Embed,
            vertical_pb2.EmbedRequest(merchant_id="x" * 1000, bottom_sha256=deployed.report["bottom_sha256"]),
        )


def test_the_registry_anchors_one_hash_binding_both_halves(deployed: Deployed) -> None:
    row = deployed.registry.get(deployed.version)
    assert row.sha256 == deployed.report["version_hash"]
    assert row.summary["top_sha256"] == deployed.report["top_sha256"]
    assert row.summary["bottom_sha256"] == deployed.report["bottom_sha256"]
    assert row.anchor_leaf is not None
    outbox = AnchorOutbox(deployed.world.bank_db)
    # the queued leaf is the record binding this version to the combined hash (enqueue is idempotent)
    assert outbox.enqueue(anchor_record(row.version, row.sha256), "model", row.version) == row.anchor_leaf
    assert outbox.pending() >= 1
    again = register_vertical(deployed.registry, deployed.world.root / "top")
    assert again.version == deployed.version  # the same model twice: the same version


def test_a_top_half_changed_after_training_is_refused(deployed: Deployed, tmp_path: Path) -> None:
    import shutil

    from federation.vertical.model import HalfError

    copy = tmp_path / "top"
    shutil.copytree(deployed.world.root / "top", copy)
    (copy / "encoder.json").write_text(
        (copy / "encoder.json").read_text().replace("account_age_months", "account_age_month")
    )
    with pytest.raises(HalfError, match="changed after saving"):
        register_vertical(deployed.registry, copy)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """An in-memory embedded chain (its deployments file in a temp data dir)."""
    from contracts.client import open_chain

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("YINQI_DATA_DIR", str(tmp_path_factory.mktemp("chain-data")))
        yield open_chain(persist=False)


def _anchored_copy(deployed: Deployed, tmp_path: Path, chain) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """The deployed top half registered in a registry of its own, its hash anchored."""
    url = f"sqlite:///{tmp_path / 'bank.db'}"
    row = register_vertical(Registry(url, tmp_path / "store"), deployed.world.root / "top")
    AnchorOutbox(url).flush(chain=chain, proof_dir=tmp_path / "proofs")
    return url, row.version


def test_audit_model_rehashes_what_the_bank_holds_of_a_vertical_version(
    deployed: Deployed, tmp_path: Path, chain
) -> None:
    from server.model_audit import audit_model

    url, version = _anchored_copy(deployed, tmp_path, chain)
    result = audit_model(version, engine=url, chain=chain)
    assert (result["mode"], result["files_match"], result["kind"], result["ref"]) == (
        "vertical",
        True,
        "model",
        version,
    )
    assert (result["top_sha256"], result["bottom_sha256"]) == (
        deployed.report["top_sha256"],
        deployed.report["bottom_sha256"],
    )
    assert result["sha256"] == deployed.report["version_hash"]  # the anchored binding of both halves


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda top: top / "encoder.json", "cannot be re-hashed"),  # files no longer match their meta.json
        (lambda top: top / "meta.json", "the bottom hash in the top half's meta.json is"),  # another bottom half
    ],
)
def test_audit_model_refuses_a_vertical_version_changed_after_registration(
    deployed: Deployed, tmp_path: Path, chain, tamper, message: str
) -> None:
    from server.model_audit import audit_model

    url, version = _anchored_copy(deployed, tmp_path, chain)
    target = tamper(tmp_path / "store" / version)
    if target.name == "meta.json":
        meta = json.loads(target.read_text())
        meta["bottom_sha256"] = "0" * 64
        target.write_text(json.dumps(meta))
    else:
        target.write_text(target.read_text().replace("account_age_months", "account_age_month"))
    with pytest.raises(BankError, match=message) as refused:
        audit_model(version, engine=url, chain=chain)
    assert "the model changed after registration" in str(refused.value)


def test_a_platform_checks_its_bottom_half_against_the_registered_hash(deployed: Deployed, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from yinqi.cli import app

    bottom = deployed.world.root / "bottom" / deployed.world.session
    runner = CliRunner()
    ok = runner.invoke(app, ["vertical", "hash", str(bottom), "--expect", deployed.report["bottom_sha256"], "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output) == {
        "half": "bottom",
        "sha256": deployed.report["bottom_sha256"],
        "expected": deployed.report["bottom_sha256"],
    }
    wrong = runner.invoke(app, ["vertical", "hash", str(bottom), "--expect", "0" * 64])
    assert isinstance(wrong.exception, YinqiError) and wrong.exception.exit_code == 2
    assert f"the bottom half hashes to {deployed.report['bottom_sha256']}, expected {'0' * 64}" in str(wrong.exception)
