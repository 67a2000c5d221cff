"""Real federations on Flower's Simulation Engine (same ServerApp/ClientApp as deployment)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from server.fl.errors import FederationError
from tests.fl.conftest import fast_config
from tests.fl.test_privacy import independent_rdp_epsilon, prv_epsilon
from yinqi.harness.federated import run_federation


def test_dp_secagg_federation_improves_the_model_within_budget(fl_files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    files, test = fl_files
    cfg = fast_config(files, test, tmp_path / "model", epsilon=4.0, dp=True, secagg=True)
    report = run_federation(cfg)

    assert [r.round for r in report.rounds] == [1, 2]
    assert all(r.aggregated and len(r.participants) == 3 for r in report.rounds)
    # ~360 rows per platform at ε=4 over 2 rounds: the DP noise is large; seeded here (fast_config)
    assert report.final["test_auc"] > report.initial["test_auc"] + 0.05
    assert report.rounds[-1].federated_auc > 0.6
    assert sorted(report.epsilon) == sorted(cfg.platform_names)
    for client in report.rounds[-1].clients:
        assert client.dp_steps is not None and client.noise_multiplier is not None and client.sample_rate is not None
        recomputed = independent_rdp_epsilon(client.noise_multiplier, client.sample_rate, client.dp_steps)
        assert client.epsilon == pytest.approx(recomputed, rel=1e-6)
        assert client.epsilon <= cfg.epsilon
        assert prv_epsilon(client.noise_multiplier, client.sample_rate, client.dp_steps) <= cfg.epsilon
    first = {c.platform: c.epsilon for c in report.rounds[0].clients}
    assert all(first[c.platform] < c.epsilon for c in report.rounds[-1].clients)  # composed, not per round
    assert (tmp_path / "model" / "report.json").is_file() and (tmp_path / "model" / "model.pt").is_file()


def test_secagg_gives_the_same_aggregate_as_plain_fedavg(fl_files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from federation.model import load_model

    files, test = fl_files
    plain = run_federation(fast_config(files, test, tmp_path / "plain", dp=False, secagg=False, rounds=1))
    secure = run_federation(fast_config(files, test, tmp_path / "secure", dp=False, secagg=True, rounds=1))
    a = [p.detach().numpy() for p in load_model(tmp_path / "plain").model.parameters()]
    b = [p.detach().numpy() for p in load_model(tmp_path / "secure").model.parameters()]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, atol=1e-4)
    assert secure.final["test_auc"] == pytest.approx(plain.final["test_auc"], abs=1e-3)


@pytest.mark.parametrize(
    "corrupt, expected",
    [
        (lambda d: d.drop(columns=["default"]), "column 'default'"),
        (lambda d: d.assign(amount=d["amount"].where(d.index != 4, np.nan)), "column 'amount', row 5"),
        (lambda d: d.assign(default=0), "every row is negative"),
        (lambda d: d.assign(amount="lots"), "column 'amount'"),
        (lambda d: d.iloc[0:0], "no data rows"),
    ],
    ids=["missing-label", "nan", "single-class", "wrong-type", "empty"],
)
def test_a_bad_platform_file_is_refused_and_the_others_train(fl_files, tmp_path, corrupt, expected) -> None:  # type: ignore[no-untyped-def]
    files, test = fl_files
    bad = tmp_path / "bad_platform.csv"
    corrupt(pd.read_csv(files[2])).to_csv(bad, index=False)
    report = run_federation(fast_config([files[0], files[1], bad], test, tmp_path / "m", dp=False, rounds=1))
    assert list(report.refused) == ["bad_platform"]
    reason = report.refused["bad_platform"]
    assert expected in reason and "bad_platform.csv" in reason and "\n" not in reason
    assert report.participants == ["platform_1", "platform_2"]
    assert report.rounds[0].aggregated and report.rounds[0].participants == ["platform_1", "platform_2"]


def test_too_few_usable_platforms_stop_with_a_clear_error(fl_files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    files, test = fl_files
    bad = tmp_path / "broken.csv"
    pd.read_csv(files[1]).drop(columns=["default"]).to_csv(bad, index=False)
    with pytest.raises(FederationError, match=r"only 1 platform.*broken\.csv"):
        run_federation(fast_config([files[0], bad], test, tmp_path / "m", dp=False, rounds=1))


@pytest.mark.parametrize("secagg", [False, True], ids=["plain", "secagg"])
def test_a_round_with_no_aggregated_update_fails_loudly(fl_files, tmp_path, secagg) -> None:  # type: ignore[no-untyped-def]
    files, test = fl_files
    # Every platform's lifetime budget is far below what one round costs: all refuse.
    cfg = fast_config(files, test, tmp_path / "m", dp=True, secagg=secagg, epsilon=2.0, epsilon_budget=0.01)
    with pytest.raises(FederationError, match=r"round 1: .*NOT updated.*privacy budget"):
        run_federation(cfg)
    assert not (tmp_path / "m" / "model.pt").exists()
    from server.fl.report import Report

    report = Report.read(tmp_path / "m" / "report.json")
    assert report.status == "failed" and "NOT updated" in report.error
    assert set(report.rounds[0].refused) == set(cfg.platform_names)


def test_fedprox_runs_and_improves(fl_files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    files, test = fl_files
    report = run_federation(
        fast_config(files, test, tmp_path / "m", dp=False, secagg=False, strategy="fedprox", mu=0.1)
    )
    assert report.settings["strategy"] == "fedprox"
    assert report.final["test_auc"] > report.initial["test_auc"] + 0.1


def test_text_label_and_text_categories_train_federatedly(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A ready feature table like a public credit data set: string categories, string label."""
    rng = np.random.default_rng(0)
    n = 900
    purpose = rng.choice(["car", "education", "furniture", "business"], n)
    housing = rng.choice(["own", "rent", "free"], n)
    amount = rng.gamma(2.0, 1500.0, n)
    duration = rng.integers(6, 60, n)
    logit = -2.0 + 0.6 * (purpose == "business") + 0.8 * (housing == "rent") + 0.00025 * amount + 0.03 * duration
    status = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "bad", "good")
    frame = pd.DataFrame(
        {
            "id": [f"c{i}" for i in range(n)],
            "purpose": purpose,
            "housing": housing,
            "amount": amount,
            "duration": duration,
            "status": status,
        }
    )
    files = []
    for i in range(3):
        files.append(tmp_path / f"bank_{i}.csv")
        frame.iloc[i * 250 : (i + 1) * 250].to_csv(files[-1], index=False)
    test = tmp_path / "test.csv"
    frame.iloc[750:].to_csv(test, index=False)
    report = run_federation(
        fast_config(
            files,
            test,
            tmp_path / "m",
            label="status",
            positive="bad",
            dp=True,
            epsilon=8.0,
            architecture="mlp",
            rounds=3,
        )
    )
    assert report.participants == ["bank_0", "bank_1", "bank_2"] and not report.refused
    assert report.final["test_auc"] > 0.6
    from federation.model import load_model

    encoder = load_model(tmp_path / "m").encoder
    assert "purpose=business" in encoder.feature_names and "housing=rent" in encoder.feature_names


@pytest.mark.parametrize("secagg", [False, True], ids=["plain", "secagg"])
def test_a_platform_crashing_mid_round_is_dropped_and_named(fl_files, tmp_path, secagg) -> None:  # type: ignore[no-untyped-def]
    """Its ClientApp raises while training (its ledger database cannot be opened): the round
    aggregates the other two (SecAgg+ reconstructs the missing masks) and names the dropout."""
    from clients.app import app as client_app
    from server.fl.app import app as server_app
    from server.fl.report import Report
    from yinqi.harness.platforms import platform_node_configs
    from yinqi.harness.simulation import simulate

    files, test = fl_files
    cfg = fast_config(files, test, tmp_path / "m", dp=True, secagg=secagg, rounds=1)
    nodes = platform_node_configs(cfg)
    (tmp_path / "a-file").write_text("not a directory")
    nodes[2]["ledger-db"] = f"sqlite:///{tmp_path / 'a-file' / 'ledger.db'}"
    simulate(server_app, client_app, cfg.to_run_config(), nodes)
    report = Report.read(tmp_path / "m" / "report.json")
    assert report.status == "ok" and report.rounds[0].aggregated
    assert report.rounds[0].participants == ["platform_1", "platform_2"]
    assert any(text.startswith("platform_3:") for text in report.rounds[0].dropped)


@pytest.mark.slow
def test_ray_backend_runs_the_same_apps_to_the_same_model(fl_files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Flower's Ray actors (the stock Simulation Engine backend) and the in-process backend agree.

    Ray runs in a fresh `yinqi train --backend ray` process, as a user would start it (Ray's
    start-up does not share a process with the other tests' servers and signal handlers).
    """
    import json
    import subprocess
    import sys

    files, test = fl_files
    in_process = run_federation(fast_config(files, test, tmp_path / "inprocess", dp=False, secagg=True))
    args = [arg for f in files for arg in ("--client", str(f))]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "yinqi",
            "train",
            *args,
            "--test",
            str(test),
            "--out",
            str(tmp_path / "ray"),
            "--rounds",
            "2",  # the plan's defaults otherwise, as fast_config's in-process run
            "--seed",
            "1",
            "--no-dp",
            "--backend",
            "ray",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    on_ray = json.loads(done.stdout)

    assert on_ray["engine"] == "simulation (ray)"
    assert all(r["aggregated"] and len(r["participants"]) == 3 for r in on_ray["rounds"])
    assert on_ray["final"]["test_auc"] == pytest.approx(in_process.final["test_auc"], abs=1e-3)
