"""A real 2-round federation with DP-SGD and SecAgg+ on a loopback SuperLink + 3 SuperNodes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.conftest import assert_no_leftovers

pytestmark = [pytest.mark.slow, pytest.mark.deployment]


def test_dp_secagg_federation_on_loopback_improves_model_within_budget(platform_files, tmp_path: Path) -> None:
    from server.fl.config import FederationConfig
    from yinqi.harness.loopback import run_deployed

    files, test = platform_files
    budget = 4.0
    config = FederationConfig(
        clients=files, rounds=2, epsilon=budget, dp=True, secagg=True, out=tmp_path / "model", test=test, min_clients=3
    )

    report = run_deployed(config, workdir=tmp_path / "deploy")

    assert report.engine.startswith("deployment")
    assert [r.aggregated for r in report.rounds] == [True, True]
    assert sorted(report.participants) == sorted(config.platform_names)
    assert [sorted(r.participants) for r in report.rounds] == [sorted(config.platform_names)] * 2
    assert report.final["test_auc"] > report.initial["test_auc"]
    assert set(report.epsilon) == set(config.platform_names)
    assert all(0 < eps <= budget for eps in report.epsilon.values())
    assert (tmp_path / "model" / "report.json").is_file()
    assert_no_leftovers(tmp_path / "deploy" / "flwr-home")
