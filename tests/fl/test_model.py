"""Model directory: save/load round-trip, stable version hash, scoring order."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from federation.model import ModelError, build_model, get_weights, load_model, save_model, set_weights
from federation.preprocess import Encoder, compute_stats, load_labeled


@pytest.fixture()
def trained(fl_files, tmp_path):  # type: ignore[no-untyped-def]
    files, _ = fl_files
    table = load_labeled(files[0])
    encoder = Encoder.from_stats(compute_stats(table.frame))
    model = build_model(encoder.n_features, "mlp", hidden=8, seed=5)
    version = save_model(tmp_path / "m", model, encoder, {"architecture": "mlp", "hidden": 8, "label": "default"})
    return table, encoder, model, version, tmp_path / "m"


def test_load_gives_the_same_predictions_and_hash(trained) -> None:  # type: ignore[no-untyped-def]
    table, encoder, model, version, model_dir = trained
    loaded = load_model(model_dir)
    from federation.model import predict_proba_array

    expected = predict_proba_array(model, encoder.transform(table.frame))
    np.testing.assert_allclose(loaded.predict_proba(table.frame), expected, rtol=0, atol=1e-7)
    assert loaded.version_hash == version
    assert len(version) == 64
    assert sorted(p.name for p in model_dir.iterdir()) == ["encoder.json", "meta.json", "model.pt"]


def test_resaving_keeps_the_hash_and_new_weights_change_it(trained, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _, encoder, model, version, model_dir = trained
    loaded = load_model(model_dir)
    assert save_model(tmp_path / "again", loaded.model, loaded.encoder, loaded.meta) == version
    weights = get_weights(model)
    weights[0] = weights[0] + 0.5
    set_weights(model, weights)
    assert save_model(tmp_path / "changed", model, encoder, {"architecture": "mlp", "hidden": 8}) != version


def test_predictions_follow_row_order(trained) -> None:  # type: ignore[no-untyped-def]
    table, _, _, _, model_dir = trained
    loaded = load_model(model_dir)
    forward = loaded.predict_proba(table.frame)
    order = np.random.default_rng(0).permutation(len(table.frame))
    shuffled = loaded.predict_proba(table.frame.iloc[order].reset_index(drop=True))
    np.testing.assert_allclose(shuffled, forward[order], atol=1e-7)


def test_weights_of_the_wrong_shape_are_refused() -> None:
    model = build_model(4)
    with pytest.raises(ModelError, match="shape"):
        set_weights(model, [np.zeros((1, 5), np.float32), np.zeros(1, np.float32)])


def test_missing_model_directory_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ModelError, match=r"model\.pt missing"):
        load_model(tmp_path)


def test_scoring_refuses_a_column_the_model_does_not_know(trained) -> None:  # type: ignore[no-untyped-def]
    from federation.errors import DataError

    table, _, _, _, model_dir = trained
    frame = table.frame.assign(surprise=1.0)
    with pytest.raises(DataError, match="surprise"):
        load_model(model_dir).predict_proba(pd.DataFrame(frame), file="x.csv")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "model.pt").write_bytes(b"PK\x03\x04 not a torch file"), "model.pt: not the weights"),
        (lambda d: (d / "model.pt").write_bytes((d / "model.pt").read_bytes()[:100]), "model.pt: not the weights"),
        (lambda d: (d / "encoder.json").write_bytes(b"\xff\xfe{"), "encoder.json: damaged"),
        (lambda d: (d / "meta.json").write_text("[1, 2]"), "meta.json: damaged (expected a JSON object)"),
    ],
    ids=["not-torch", "truncated", "encoder-not-utf8", "meta-not-an-object"],
)
def test_a_damaged_model_directory_is_a_one_line_error(trained, damage, message) -> None:  # type: ignore[no-untyped-def]
    """Issue 11: a corrupt model.pt printed a traceback."""
    *_, model_dir = trained
    damage(model_dir)
    with pytest.raises(ModelError, match=re.escape(message)) as info:
        load_model(model_dir)
    assert "\n" not in str(info.value)


def test_weights_from_another_model_are_refused_not_mixed(trained, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A directory holding one model's encoder and another's weights (half-overwritten)."""
    _, encoder, model, _, model_dir = trained
    weights = get_weights(model)
    weights[0] = weights[0] + 1.0
    set_weights(model, weights)
    save_model(tmp_path / "other", model, encoder, {"architecture": "mlp", "hidden": 8})
    (model_dir / "model.pt").write_bytes((tmp_path / "other" / "model.pt").read_bytes())
    with pytest.raises(ModelError, match=r"do not match the version hash in meta\.json"):
        load_model(model_dir).require_consistent()


def test_saving_over_a_model_removes_its_commit_mark_first(trained, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A save killed after meta.json is removed but before it is rewritten leaves a directory that
    load_model refuses as incomplete (meta.json is written last)."""
    import torch

    _, encoder, model, _, model_dir = trained

    def killed(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        save_model(model_dir, model, encoder, {"architecture": "mlp", "hidden": 8})
    with pytest.raises(ModelError, match=r"meta\.json missing"):
        load_model(model_dir)
    assert not [p for p in model_dir.iterdir() if ".partial-" in p.name]
