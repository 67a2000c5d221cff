"""No value silently wrecks a model (issue 11).

The reproduction: one row with `amount = 1e300` from one platform gave the agreed encoder a scale
of 5.6e296, every platform's loss became NaN, all weights came out 4088.5376, test AUC fell from
0.70 to 0.5, and the run ended `status ok`, exit 0, model written.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from server.fl.errors import TrainingDiverged
from tests.fl.conftest import fast_config
from yinqi.harness.federated import run_federation


@pytest.fixture(scope="module")
def clean_run(fl_files, tmp_path_factory):  # type: ignore[no-untyped-def]
    files, test = fl_files
    return run_federation(fast_config(files, test, tmp_path_factory.mktemp("clean") / "m", dp=False, secagg=False))


def _with_amount(path, row: int, value: float, out):  # type: ignore[no-untyped-def]
    frame = pd.read_csv(path)
    frame.loc[row, "amount"] = value
    frame.to_csv(out, index=False)
    return out


def test_one_row_of_1e300_is_refused_with_its_row_and_the_model_stays_sound(fl_files, tmp_path, clean_run) -> None:  # type: ignore[no-untyped-def]
    files, test = fl_files
    careless = _with_amount(files[2], 3, 1e300, tmp_path / "platform_3.csv")
    report = run_federation(fast_config([files[0], files[1], careless], test, tmp_path / "m", dp=False, secagg=False))

    assert report.status == "ok"
    assert report.refused == {
        "platform_3": f"{careless}, column 'amount', row 4: implausible value 1e+300; expected a number within +-1e+15"
    }
    assert all(math.isfinite(c.loss) for r in report.rounds for c in r.clients if c.loss is not None)
    assert report.final["test_auc"] > 0.65
    assert report.final["test_auc"] == pytest.approx(clean_run.final["test_auc"], abs=0.03)


def test_a_plausible_but_extreme_value_is_clipped_at_the_agreed_quantiles(fl_files, tmp_path, clean_run) -> None:  # type: ignore[no-untyped-def]
    from federation.model import load_model

    files, test = fl_files
    careless = _with_amount(files[2], 3, 1e14, tmp_path / "platform_3.csv")
    report = run_federation(fast_config([files[0], files[1], careless], test, tmp_path / "m", dp=False, secagg=False))

    assert report.status == "ok" and report.participants == ["platform_1", "platform_2", "platform_3"]
    encoder = load_model(tmp_path / "m").encoder
    typical = pd.read_csv(files[0])["amount"]
    assert encoder.bounds["amount"][1] < 10 * typical.max()  # agreed from the pooled quantiles, not the max
    assert encoder.numeric["amount"][1] < 10 * typical.std()
    assert report.final["test_auc"] == pytest.approx(clean_run.final["test_auc"], abs=0.01)


def test_local_training_that_diverges_stops_the_run_naming_the_platform_and_round(fl_files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from server.fl.report import Report

    files, test = fl_files
    cfg = fast_config(files, test, tmp_path / "m", dp=False, secagg=True, lr=1e38)
    with pytest.raises(
        TrainingDiverged, match=r"round 1: platform platform_1, round 1: local training diverged \(loss"
    ):
        run_federation(cfg)
    assert not (tmp_path / "m" / "model.pt").exists() and not (tmp_path / "m" / "meta.json").exists()
    report = Report.read(tmp_path / "m" / "report.json")
    assert report.status == "failed" and "local training diverged" in str(report.error)
    diverged = {c.platform: c.diverged for c in report.rounds[0].clients}
    assert all(text and text.startswith(f"platform {name}, round 1:") for name, text in diverged.items())


class _Platform:
    """A stand-in for a ClientProxy: the strategy reads only its node id."""

    def __init__(self, node_id: int) -> None:
        self.node_id = node_id


def _strategy(secagg: bool):  # type: ignore[no-untyped-def]
    from server.fl.report import Report
    from server.fl.strategy import RunRecorder, make_strategy

    sound = [np.zeros((1, 3), np.float32), np.zeros(1, np.float32)]
    recorder = RunRecorder(Report(), {1: "p1", 2: "p2"}, min_clients=2)
    strategy = make_strategy(
        "fedavg", recorder=recorder, encoder_json="{}", min_clients=2, initial=sound, mu=0.0, secagg=secagg
    )
    return strategy, recorder, sound


def _results(updates):  # type: ignore[no-untyped-def]
    from flwr.common import Code, FitRes, Status, ndarrays_to_parameters

    return [
        (_Platform(n), FitRes(Status(Code.OK, "trained"), ndarrays_to_parameters(u), 300, {"platform": f"p{n}"}))
        for n, u in updates
    ]


def test_a_non_finite_update_in_a_plain_round_is_refused_naming_the_platform_and_round() -> None:
    """A node that is not yinqi's ClientApp (which withholds a non-finite update) sends inf in a
    plain round: the bank sees that update alone, refuses it and, with too few left, stops."""
    from server.fl.errors import FederationError

    strategy, _, sound = _strategy(secagg=False)
    broken = [np.array([[1.0, np.inf, 2.0]], np.float32), np.zeros(1, np.float32)]
    with pytest.raises(
        FederationError,
        match=r"round 4: only 1 platform update.*p2: refused by the bank's check: its update is not finite",
    ):
        strategy.aggregate_fit(4, _results([(1, sound), (2, broken)]), [])


def test_a_non_finite_aggregate_under_secagg_is_refused_and_the_model_kept() -> None:
    """Under SecAgg+ every result carries the same unmasked sum; a non-finite one is refused,
    the model stays as it was and the round says why."""
    from flwr.common import parameters_to_ndarrays

    strategy, recorder, sound = _strategy(secagg=True)
    broken = [np.array([[1.0, np.inf, 2.0]], np.float32), np.zeros(1, np.float32)]
    parameters, _ = strategy.aggregate_fit(4, _results([(1, broken), (2, broken)]), [])
    kept = parameters_to_ndarrays(parameters)
    assert all(np.array_equal(a, b) for a, b in zip(kept, sound, strict=True))
    record = recorder.round(4)
    assert not record.aggregated and "not finite" in str(record.rejected) and record.check["passed"] is False
