"""The unit of privacy is a merchant (issue 12).

The reproduction: training rows are merchant-months and DP-SGD clipped and sampled rows, so the
reported ε protected one month of one merchant; a merchant with 12 months was protected at about
12x that ε. Now a merchant's rows are sampled and clipped together, and every report, ledger
entry and registry record states the unit.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from federation.units import PrivacyUnits
from tests.fl.conftest import fast_config
from yinqi.harness.federated import run_federation

CLIP = 0.5


def _summed_gradient(x: np.ndarray, y: np.ndarray, units: PrivacyUnits) -> np.ndarray:
    """The clipped per-unit gradients' sum from one noiseless full-batch DP step (lr 1: the step
    is minus the mean over units, so the sum is minus the step times the unit count)."""
    from federation.dpsgd import DPStepSettings, train_dp_units
    from federation.model import build_model, get_weights
    from federation.privacy import NoiseSource

    model = build_model(x.shape[1], seed=0)
    before = np.concatenate([w.ravel() for w in get_weights(model)])
    settings = DPStepSettings(steps=1, sample_rate=1.0, lr=1.0, momentum=0.0, max_grad_norm=CLIP, noise_multiplier=0.0)
    train_dp_units(model, x, y, units, settings, NoiseSource(seed=0))
    after = np.concatenate([w.ravel() for w in get_weights(model)])
    return (before - after) * units.count


def _merchants_with_one_large() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Ten merchants of 3 rows, and merchant BIG with 1,000 rows of extreme features."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 4)).astype(np.float32)
    y = (rng.random(30) < 0.3).astype(np.float32)
    ids = [f"M{i // 3}" for i in range(30)]
    big_x = rng.normal(loc=50.0, size=(1000, 4)).astype(np.float32)
    big_y = np.ones(1000, np.float32)
    return np.vstack([x, big_x]), np.concatenate([y, big_y]), ids + ["BIG"] * 1000


def test_a_merchants_contribution_is_bounded_by_the_clip_norm_whatever_its_rows() -> None:
    x, y, ids = _merchants_with_one_large()
    with_big = _summed_gradient(x, y, PrivacyUnits.of(pd.Series(ids), len(ids)))
    without_big = _summed_gradient(x[:30], y[:30], PrivacyUnits.of(pd.Series(ids[:30]), 30))
    # Adding or removing one merchant, 1,000 rows and all, moves the sum by at most the clip norm:
    # the sensitivity the accountant assumes.
    assert np.linalg.norm(with_big - without_big) <= CLIP * (1 + 1e-4)
    assert np.linalg.norm(with_big - without_big) > 0.9 * CLIP  # its gradient is clipped, not dropped


def test_with_rows_as_units_the_same_merchant_moves_the_sum_by_its_row_count() -> None:
    """Row-level DP (the explicit opt-in) bounds a row, not a merchant: group privacy shows."""
    x, y, _ = _merchants_with_one_large()
    with_big = _summed_gradient(x, y, PrivacyUnits.per_row(len(y)))
    without_big = _summed_gradient(x[:30], y[:30], PrivacyUnits.per_row(30))
    assert np.linalg.norm(with_big - without_big) > 100 * CLIP


def test_units_come_from_the_id_column_or_are_rows() -> None:
    units = PrivacyUnits.of(pd.Series(["b", "a", "b", "c", "b"]), 5)
    assert (units.name, units.count, units.rows.tolist(), units.index.tolist()) == (
        "merchant_id",
        3,
        [1, 3, 1],
        [1, 0, 1, 2, 1],
    )
    assert PrivacyUnits.of(None, 4).name == "row" and PrivacyUnits.of(None, 4).count == 4
    opted = PrivacyUnits.of(pd.Series(["a", "a"]), 2, column="row")
    assert (opted.name, opted.count) == ("row", 2)


def test_a_merchant_level_run_states_the_unit_in_report_ledger_model_and_registry(fl_files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from clients.ledger import PrivacyLedger
    from server.registry import summarize_report

    files, test = fl_files
    cfg = fast_config(files, test, tmp_path / "m", epsilon=3.0)
    report = run_federation(cfg)
    merchants = {p.stem: pd.read_csv(p)["merchant_id"].nunique() for p in files}
    assert report.privacy_unit == {
        name: {"unit": "merchant_id", "units": merchants[name], "rows": len(pd.read_csv(p))}
        for name, p in zip(cfg.platform_names, files, strict=True)
    }
    assert report.settings["privacy-unit"] == "merchant_id"
    assert {c.unit for r in report.rounds for c in r.clients} == {"merchant_id"}
    assert {c.units for r in report.rounds for c in r.clients} == set(merchants.values())
    entries = PrivacyLedger(cfg.ledger_url()).entries()
    assert entries and {e.unit for e in entries} == {"merchant_id"}
    meta = json.loads((tmp_path / "m" / "meta.json").read_text())
    assert meta["privacy_unit"] == "merchant_id"
    summary = summarize_report(json.loads((tmp_path / "m" / "report.json").read_text()))
    assert summary["extra"]["privacy_unit"]["platform_1"]["unit"] == "merchant_id"
    # The plan the defaults chose is in the report: full-batch DP-GD over the merchants.
    assert report.plan["given"] == {}
    assert {p["sample_rate"] for p in report.plan["platforms"].values()} == {1.0}
    assert "merchant_id" in report.plan["summary"]


def test_a_table_without_the_id_column_trains_each_row_as_its_own_unit_and_says_so(fl_files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """One row per borrower, no merchant_id: defaults only, and the report says rows are the unit."""
    files, test = fl_files
    borrowers = []
    for path in files:
        out = tmp_path / path.name
        pd.read_csv(path).drop(columns=["merchant_id"]).to_csv(out, index=False)
        borrowers.append(out)
    report = run_federation(fast_config(borrowers, test, tmp_path / "m"))
    assert report.status == "ok"
    assert {v["unit"] for v in report.privacy_unit.values()} == {"row"}
    assert all(v["units"] == v["rows"] for v in report.privacy_unit.values())
    assert report.settings["privacy-unit"] == "row"
    assert report.final["test_auc"] > 0.6


def test_the_unit_column_is_configurable(fl_files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    files, test = fl_files
    renamed = []
    for path in files:
        out = tmp_path / path.name
        pd.read_csv(path).rename(columns={"merchant_id": "shop"}).to_csv(out, index=False)
        renamed.append(out)
    report = run_federation(fast_config(renamed, test, tmp_path / "m", unit_column="shop"))
    shops = {p.stem: pd.read_csv(p)["shop"].nunique() for p in renamed}
    assert {k: v["units"] for k, v in report.privacy_unit.items()} == shops
    assert report.settings["privacy-unit"] == "shop"


def test_row_level_dp_is_an_explicit_opt_in_a_platform_policy_refuses_by_default(fl_files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from clients.policy import PrivacyPolicy, run_refusal
    from clients.runconfig import ClientRunConfig

    files, test = fl_files
    reason = run_refusal(PrivacyPolicy(source="policy.toml"), "A", ClientRunConfig(unit_column="row"))
    assert reason == (
        "platform A's policy (policy.toml) protects whole merchants; the run asks for row-level DP "
        "(--unit-column row), whose ε protects one row only"
    )
    assert run_refusal(PrivacyPolicy(allow_row_level=True), "A", ClientRunConfig(unit_column="row")) is None
    report = run_federation(fast_config(files, test, tmp_path / "m", unit_column="row"))  # the harness allows it
    assert {v["unit"] for v in report.privacy_unit.values()} == {"row"}
    assert all(v["units"] == v["rows"] for v in report.privacy_unit.values())


def test_a_ledger_from_before_units_gets_the_column_with_row(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Entries written before the unit was recorded were row-level guarantees."""
    import sqlite3

    from clients.ledger import PrivacyLedger

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE privacy_ledger (id INTEGER PRIMARY KEY, platform VARCHAR(200), run_id VARCHAR(64), "
            "round INTEGER, epsilon FLOAT, delta FLOAT, recorded_at DATETIME)"
        )
        db.execute(
            "INSERT INTO privacy_ledger (platform, run_id, round, epsilon, delta, recorded_at) "
            "VALUES ('A', 'r1', 1, 2.5, 1e-5, '2026-01-01 00:00:00.000000')"
        )
    ledger = PrivacyLedger(f"sqlite:///{path}")
    ledger.record("A", "r2", 1, 1.0, 1e-5, unit="merchant_id")
    assert [(e.run_id, e.unit) for e in ledger.entries("A")] == [("r1", "row"), ("r2", "merchant_id")]
    assert math.isclose(ledger.summary("A", "r3").spent_other_runs, 3.5)
