"""A model from a real federated run (Simulation Engine, DP) registered, promoted and lending."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow


def test_federated_run_is_registered_with_its_report_and_scores_merchants(tmp_path):
    from federation.synth import make_feature_files
    from server.credit.accounts import CreditBook
    from server.credit.promotion import promote
    from server.fl.config import FederationConfig
    from server.registry import Registry
    from server.scoring import rows_from_frame
    from tests.consent_helpers import report_consent
    from yinqi.harness.federated import run_federation

    files, _ = make_feature_files(tmp_path / "data", platforms=3, merchants=60, months=6, seed=3)
    report = run_federation(FederationConfig(clients=files, rounds=2, out=tmp_path / "model", seed=0, min_clients=3))
    url = f"sqlite:///{tmp_path / 'bank.db'}"
    registry = Registry(url, tmp_path / "store")
    row = registry.register(Path(report.model_dir), anchor=False)
    assert row.sha256 == report.version_hash
    assert row.participants == sorted(report.participants)
    assert row.epsilon == pytest.approx(report.epsilon)
    assert (row.auc, row.ks, row.rounds) == (report.final["federated_auc"], report.final["federated_ks"], 2)
    promote(registry, row.version)

    merchant, rows = next(iter(rows_from_frame(pd.read_csv(files[0])).items()))
    report_consent(url, [merchant])
    line = CreditBook(url, registry=registry).open(merchant, rows)
    assert line.model_version == "v1"
    assert 0.0 < line.pd < 1.0
