"""Budgets that mean something, checked by two independent accountants (issue 12).

The reproductions: `--epsilon inf` ran with σ = 10 and `--epsilon 1e6` with σ = 0.0045, both
reported as DP; nothing checked the reported ε against a second accountant.
"""

from __future__ import annotations

import json

import pytest

from federation.privacy import AccountingMismatch, PrivacyState, cross_check, prv_epsilon, weak_guarantee
from server.fl.errors import FederationError
from tests.fl import hostile
from tests.fl.conftest import fast_config
from yinqi.harness.federated import run_federation

DELTA = 1e-5


def test_the_prv_accountant_agrees_with_the_reported_rdp_epsilon() -> None:
    state = PrivacyState.plan(
        epsilon=3.0, delta=DELTA, sample_rate=1.0, steps_per_round=5, rounds=10, max_grad_norm=0.05
    )
    for _ in range(10):
        state.record_round(5)
    check = cross_check(state.history, DELTA)
    assert check.agrees and check.prv is not None
    assert 0.85 * check.reported < check.prv <= check.reported <= 3.0  # RDP is the looser bound


def test_a_reported_epsilon_below_the_independent_one_fails_loudly() -> None:
    history = [(4.5, 1.0, 50)]
    true = prv_epsilon(history, DELTA)
    assert true is not None
    with pytest.raises(AccountingMismatch, match=r"platform X: reported ε=3\.7\d+ is below the independent PRV"):
        cross_check(history, DELTA, reported=true / 2, who="platform X")


def test_an_epsilon_no_accountant_can_bound_is_not_cross_checked_but_is_marked_weak() -> None:
    assert prv_epsilon([(0.0045, 1.0, 50)], DELTA) is None
    assert cross_check([(0.0045, 1.0, 50)], DELTA, reported=1e6).agrees
    text = weak_guarantee(1e6)
    assert text is not None and "the guarantee is weak" in text and "more than 1e300" in text
    assert weak_guarantee(10.0) is None and weak_guarantee(12.0) is not None


def test_every_run_reports_both_accountants_per_platform(fl_files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from server.registry import summarize_report

    files, test = fl_files
    report = run_federation(fast_config(files, test, tmp_path / "m", epsilon=3.0))
    assert sorted(report.accounting) == sorted(report.platforms)
    for name, check in report.accounting.items():
        assert check["agrees"] and check["prv"] <= check["rdp"] == report.epsilon[name] <= 3.0
        assert check["unit"] == "merchant_id"
    assert report.weak_guarantee is None and "weak-guarantee" not in report.settings
    summary = summarize_report(json.loads((tmp_path / "m" / "report.json").read_text()))
    assert summary["extra"]["accounting"] == report.accounting


def test_a_run_above_the_ceiling_says_plainly_that_the_guarantee_is_weak(fl_files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from server.registry import summarize_report

    files, test = fl_files
    report = run_federation(fast_config(files, test, tmp_path / "m", epsilon=12.0, rounds=1))
    assert report.weak_guarantee is not None and report.weak_guarantee.startswith("ε=12 is above 10")
    assert report.settings["weak-guarantee"] is True
    meta = json.loads((tmp_path / "m" / "meta.json").read_text())
    assert meta["weak_guarantee"] == report.weak_guarantee
    summary = summarize_report(json.loads((tmp_path / "m" / "report.json").read_text()))
    assert summary["extra"]["weak_guarantee"] == report.weak_guarantee


def test_a_platform_under_reporting_its_epsilon_stops_the_run_with_no_model(fl_files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from server.fl.report import Report

    files, test = fl_files
    cfg = fast_config(files, test, tmp_path / "m", epsilon=3.0)
    with pytest.raises(
        FederationError, match=r"privacy accounting: platform platform_2: reported ε=.* is below the independent PRV"
    ):
        run_federation(cfg, client_apps={1: hostile.under_reporting(0.5)})
    assert not (tmp_path / "m" / "meta.json").exists()
    assert Report.read(tmp_path / "m" / "report.json").status == "failed"
