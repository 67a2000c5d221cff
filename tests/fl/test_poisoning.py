"""A federation that survives a poisoning or broken platform, with SecAgg+ on (issue 12).

The reproductions: a platform that flips its labels, or scales its update, trained with no
warning, and the federated AUC even rose, inflated by its own score histograms. Here one of four
platforms flips its labels, scales its update x100, sends NaN, or reports perfect scores; each
is found and excluded, with its reason in the report, and the final test AUC stays within 0.02
of the clean run. SecAgg+ stays on throughout: the bank only ever unmasks sums.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from server.fl.config import FederationConfig
from server.fl.report import Report
from tests.fl import hostile
from yinqi.harness.federated import run_federation

pytestmark = pytest.mark.slow

AUC_TOLERANCE = 0.02


@pytest.fixture(scope="module")
def four_platforms(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], Path, Path]:
    """Four non-IID platforms; the bank's held-out merchants split into its own validation file
    and a test file."""
    from federation.synth import make_feature_files

    root = tmp_path_factory.mktemp("poisoning")
    files, test = make_feature_files(root, platforms=4, merchants=100, months=6, seed=5)
    held_out = pd.read_csv(test)
    merchants = sorted(held_out["merchant_id"].unique())
    validation_ids = set(merchants[::2])
    validation, bank_test = root / "validation.csv", root / "bank_test.csv"
    held_out[held_out["merchant_id"].isin(validation_ids)].to_csv(validation, index=False)
    held_out[~held_out["merchant_id"].isin(validation_ids)].to_csv(bank_test, index=False)
    return files, validation, bank_test


def _config(files: list[Path], validation: Path, test: Path, out: Path) -> FederationConfig:
    # Defaults (DP over merchants, SecAgg+, 10 rounds); seeded noise so the runs are comparable.
    return FederationConfig(clients=files, validation=validation, test=test, out=out, seed=1, reproducible_noise=True)


@pytest.fixture(scope="module")
def clean(four_platforms, tmp_path_factory) -> Report:  # type: ignore[no-untyped-def]
    files, validation, test = four_platforms
    report = run_federation(_config(files, validation, test, tmp_path_factory.mktemp("clean") / "m"))
    assert report.status == "ok" and report.excluded == {} and all(r.aggregated for r in report.rounds)
    assert all(not r.flagged and r.rejected is None for r in report.rounds)
    return report


def _assert_secagg_all_along(report: Report) -> None:
    assert report.settings["secagg"] is True
    # The simulated platforms' policy requires SecAgg+: a round without its masking is refused.
    assert not any(r.refused for r in report.rounds)


def _assert_recovered(report: Report, clean: Report, bad: str) -> None:
    assert report.status == "ok"
    assert list(report.excluded) == [bad]
    last_round_with_it = max(r.round for r in report.rounds if bad in r.participants or bad in r.platform_auc)
    assert all(bad not in r.participants for r in report.rounds if r.round > last_round_with_it)
    assert report.rounds[-1].participants == sorted(p for p in clean.participants if p != bad)
    assert report.final["test_auc"] == pytest.approx(clean.final["test_auc"], abs=AUC_TOLERANCE)


def test_a_platform_scaling_its_update_x100_is_found_and_excluded(four_platforms, clean, tmp_path) -> None:  # type: ignore[no-untyped-def]
    files, validation, test = four_platforms
    report = run_federation(_config(files, validation, test, tmp_path / "m"), client_apps={1: hostile.scaled(100.0)})
    _assert_secagg_all_along(report)
    _assert_recovered(report, clean, "platform_2")
    rejected = [r for r in report.rounds if r.rejected]
    assert rejected and all("above the bound 5" in str(r.rejected) for r in rejected)
    # A refused aggregate leaves the model as it was.
    for r in rejected:
        before = report.initial["test_auc"] if r.round == 1 else report.rounds[r.round - 2].test_auc
        assert r.test_auc == before
    assert "failed the bank's checks in rounds" in report.excluded["platform_2"]
    assert "while the aggregate without it passed" in report.excluded["platform_2"]


def test_a_platform_sending_nan_is_found_and_excluded(four_platforms, clean, tmp_path) -> None:  # type: ignore[no-untyped-def]
    files, validation, test = four_platforms
    report = run_federation(_config(files, validation, test, tmp_path / "m"), client_apps={2: hostile.not_a_number()})
    _assert_secagg_all_along(report)
    _assert_recovered(report, clean, "platform_3")
    # SecAgg+ turns NaN into garbage in the field: the sum is far beyond the bound.
    assert all(r.check["norm"] > 100 for r in report.rounds if r.rejected)


def test_a_platform_flipping_its_labels_is_flagged_left_out_of_the_federated_auc_and_excluded(
    four_platforms, clean, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    files, validation, test = four_platforms
    flipped = hostile.flipped_labels(files[1], tmp_path / "platform_2.csv")
    report = run_federation(_config([files[0], flipped, files[2], files[3]], validation, test, tmp_path / "m"))
    _assert_secagg_all_along(report)
    _assert_recovered(report, clean, "platform_2")
    first = report.rounds[0]
    assert first.platform_auc["platform_2"] < 0.4 and "platform_2" in first.flagged
    assert "disagree with the others" in first.flagged["platform_2"]
    # Its histograms never count: the federated AUC is the other platforms' pooled AUC.
    assert first.federated_auc > min(v for k, v in first.platform_auc.items() if k != "platform_2") - 0.05
    assert "evaluation was flagged in rounds 1, 2" in report.excluded["platform_2"]


def test_a_platform_reporting_perfect_scores_cannot_inflate_the_federated_auc(four_platforms, clean, tmp_path) -> None:  # type: ignore[no-untyped-def]
    files, validation, test = four_platforms
    report = run_federation(_config(files, validation, test, tmp_path / "m"), client_apps={3: hostile.perfect_scores()})
    _assert_recovered(report, clean, "platform_4")
    first = report.rounds[0]
    assert first.platform_auc["platform_4"] == pytest.approx(1.0) and "platform_4" in first.flagged
    honest = [v for k, v in first.platform_auc.items() if k != "platform_4"]
    assert first.federated_auc < max(honest) + 0.02  # not pulled towards 1.0
