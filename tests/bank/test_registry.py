"""Model registry: versions with provenance, stored files, promotion, persistence."""

from __future__ import annotations

import pytest

from federation.storage import forget_engine
from server.credit.errors import BankError
from server.credit.promotion import promote
from server.registry import Registry


def test_register_reads_the_report_and_numbers_versions(db_url, make_model, tmp_path):
    registry = Registry(db_url, tmp_path / "store")
    first = registry.register(make_model(0.03), anchor=False)
    second = registry.register(make_model(0.01), anchor=False)
    assert (first.version, second.version) == ("v1", "v2")
    assert first.status == "candidate"
    assert (first.auc, first.ks, first.rounds) == (0.75, 0.35, 2)
    assert first.participants == ["platform_1", "platform_2", "platform_3"]
    assert first.epsilon == {"platform_1": 2.5, "platform_2": 2.75, "platform_3": 3.0}
    assert first.summary["dropped"] == ["platform_3"]
    assert first.created_at.tzinfo is not None


def test_registered_hash_is_the_model_content_hash_and_files_are_stored(db_url, make_model, tmp_path):
    from federation.model import load_model

    model_dir = make_model(0.03)
    row = Registry(db_url, tmp_path / "store").register(model_dir, anchor=False)
    assert row.sha256 == load_model(model_dir).version_hash
    assert load_model(row.path).version_hash == row.sha256
    assert row.path.endswith("/v1")


def test_registering_the_same_model_twice_returns_the_same_version(db_url, make_model, tmp_path):
    registry = Registry(db_url, tmp_path / "store")
    model_dir = make_model(0.03)
    assert (
        registry.register(model_dir, anchor=False).version == registry.register(model_dir, anchor=False).version == "v1"
    )
    assert len(registry.list()) == 1


def test_promote_retires_the_previous_version(db_url, make_model, tmp_path):
    registry = Registry(db_url, tmp_path / "store")
    registry.register(make_model(0.03), anchor=False)
    registry.register(make_model(0.01), anchor=False)
    promote(registry, "v1")
    promote(registry, "v2")
    assert [(m.version, m.status) for m in registry.list()] == [("v1", "retired"), ("v2", "promoted")]
    assert registry.promoted().version == "v2"


def test_unknown_version_is_not_found(db_url, tmp_path):
    with pytest.raises(BankError, match="model version 'v9' is not registered") as info:
        Registry(db_url, tmp_path / "store").get("v9")
    assert info.value.kind == "not_found"


def test_registry_survives_reopening_the_database(db_url, make_model, tmp_path):
    Registry(db_url, tmp_path / "store").register(make_model(0.03), anchor=False)
    promote(Registry(db_url, tmp_path / "store"), "v1")
    forget_engine(db_url)  # a bank restart: a new engine, a new connection pool
    reopened = Registry(db_url, tmp_path / "store")
    assert [(m.version, m.status, m.auc) for m in reopened.list()] == [("v1", "promoted", 0.75)]


def test_participants_are_the_platforms_that_trained_not_those_refused_every_round() -> None:
    from server.registry import summarize_report

    report = {
        "participants": ["a", "b", "c"],
        "epsilon": {"a": 7.9, "b": 7.8},
        "rounds": [
            {"round": 1, "participants": ["a", "b"], "refused": {"c": "privacy budget exceeded"}},
            {"round": 2, "participants": ["b", "a"], "refused": {"c": "privacy budget exceeded"}},
        ],
    }
    summary = summarize_report(report)
    assert summary["participants"] == ["a", "b"]
    assert summary["extra"]["joined"] == ["a", "b", "c"]
