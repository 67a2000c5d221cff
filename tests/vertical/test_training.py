"""Vertical training on Flower's simulation engine: both halves, privacy on both sides."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clients.consent import ConsentBook
from clients.ledger import PrivacyLedger
from federation.vertical.model import combined_digest, load_half
from server.vertical.ledger import LabelBudgetExceeded, LabelLedger
from server.vertical.training import VerticalError
from tests.vertical.helpers import World, make_world
from yinqi.harness.vertical import simulate_vertical


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return make_world(tmp_path_factory.mktemp("vertical"))


def test_a_run_trains_both_halves_and_binds_their_hashes(world: World, tmp_path: Path) -> None:
    cfg = world.config(out=tmp_path / "top", epochs=8)
    report = simulate_vertical(cfg, world.node(model_dir=tmp_path / "bottom"))
    assert report["status"] == "completed"
    assert report["aligned"] == len(world.shared)
    assert report["train_rows"] + report["final"]["test_rows"] == len(world.shared)
    top = load_half(cfg.out, bottom=False)
    bottom = load_half(tmp_path / "bottom" / world.session, bottom=True)  # on the platform's side
    assert (top.sha256, bottom.sha256) == (report["top_sha256"], report["bottom_sha256"])
    assert report["version_hash"] == combined_digest(top.sha256, bottom.sha256)
    assert report["final"]["test_auc"] > 0.7  # the bank-only logistic model reaches ~0.79 on these rows
    assert report["epoch_loss"][-1] < report["epoch_loss"][0]


def test_label_privacy_is_charged_to_the_banks_ledger_and_refused_past_its_budget(world: World, tmp_path: Path) -> None:
    bank_db = world.fresh_bank_db(tmp_path / "bank.db")
    node = world.node(model_dir=tmp_path / "bottom")
    simulate_vertical(
        world.config(out=tmp_path / "a", bank_db=bank_db, label_epsilon=2.0, label_epsilon_budget=3.0), node
    )
    assert [(e.mechanism, e.epsilon) for e in LabelLedger(bank_db).entries()] == [("rr", 2.0)]
    with pytest.raises(LabelBudgetExceeded, match="label privacy budget epsilon=3 would be exceeded"):
        simulate_vertical(
            world.config(out=tmp_path / "b", bank_db=bank_db, label_epsilon=2.0, label_epsilon_budget=3.0), node
        )
    assert len(LabelLedger(bank_db).entries()) == 1
    assert not (tmp_path / "b" / "model.pt").exists()


def test_the_platforms_own_dp_floor_applies_even_when_the_bank_asks_for_none(world: World, tmp_path: Path) -> None:
    ledger_db = world.fresh_platform_db(tmp_path / "platform.db")
    node = world.node(platform_db=ledger_db, model_dir=tmp_path / "bottom", feature_epsilon=6.0, epsilon_budget=10.0)
    report = simulate_vertical(world.config(out=tmp_path / "top", label_dp="off"), node)
    spent = report["epsilon"]["features (platform-a)"]
    assert 0 < spent <= 6.0
    entries = PrivacyLedger(ledger_db).entries("platform-a")
    assert max(e.epsilon for e in entries) == pytest.approx(6.0)  # reserved, then settled below it
    with pytest.raises(VerticalError, match="privacy budget epsilon=10 would be exceeded"):
        simulate_vertical(world.config(out=tmp_path / "again", label_dp="off"), node)


def test_merchants_who_withdrew_consent_are_withheld_from_training(world: World, tmp_path: Path) -> None:
    consent_db = f"sqlite:///{tmp_path / 'consent.db'}"
    book = ConsentBook(consent_db)
    book.grant(world.shared)
    withdrawn = world.shared[:50]
    book.withdraw(withdrawn)
    report = simulate_vertical(
        world.config(out=tmp_path / "top"), world.node(consent_db=consent_db, model_dir=tmp_path / "b")
    )
    assert report["aligned"] == len(world.shared) - len(withdrawn)


def test_a_cardinality_only_session_cannot_be_trained_on(world: World, tmp_path: Path) -> None:
    from federation.psi.protocol import PsiResult
    from server.vertical.store import PsiStore

    PsiStore(world.bank_db).save("ab" * 16, "platform-a", PsiResult(10, 100, 100, None))
    with pytest.raises(VerticalError, match="cardinality-only"):
        simulate_vertical(world.config(out=tmp_path / "top", session="ab" * 16), world.node(model_dir=tmp_path / "b"))


def test_gaussian_label_dp_noises_every_returned_gradient() -> None:
    from federation.vertical.model import top_model
    from federation.vertical.steps import BankHalf, Dp, secure_generator

    half = BankHalf(top_model(3, 2, 4, 0), lr=0.1, dp=Dp(2.0, 0.1, 1.0), generator=secure_generator(1))
    grads, _ = half.step(
        np.zeros((4, 3), np.float32), np.zeros((4, 2), np.float32), np.ones(4, np.float32), np.array([1, 1, 0, 0], bool)
    )
    assert np.all(grads != 0)  # unmatched rows carry noise too: matched and unmatched look alike
    assert np.std(grads) > 0.1  # noise of std 2 * 0.1 against clipped gradients of norm <= 0.1


def test_the_bank_trains_with_the_platform_that_holds_the_session(world: World, tmp_path: Path) -> None:
    stranger = world.node(
        platform_name="platform-b", platform_db=f"sqlite:///{tmp_path / 'b.db'}", model_dir=tmp_path / "b"
    )
    report = simulate_vertical(
        world.config(out=tmp_path / "top"), world.node(model_dir=tmp_path / "a"), others=(stranger,)
    )
    assert report["platform"] == "platform-a"
    assert not (tmp_path / "b").exists()  # the other platform released nothing and saved nothing


def test_two_platforms_claiming_one_session_stop_the_run(world: World, tmp_path: Path) -> None:
    twin = world.node(platform_name="platform-twin", model_dir=tmp_path / "twin")
    with pytest.raises(VerticalError, match="2 connected platforms hold this PSI session"):
        simulate_vertical(world.config(out=tmp_path / "top"), world.node(model_dir=tmp_path / "a"), others=(twin,))
