"""Model monitoring: PSI between the training population (the federated run's aggregates, no
rows) and a month's scored merchants, calibration of PDs against observed defaults, alerts
stored and shown in the metrics. Hand-computed values first."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pandas as pd
import pytest

from federation.metrics import calibration_z, grouped_counts, population_stability_index, quantile_groups
from federation.model import write_report
from federation.preprocess import compute_stats
from server import monitoring
from server.credit.accounts import CreditBook
from server.credit.promotion import promote
from server.loanbook import eod
from server.loanbook.metrics import metrics
from server.monitoring import TrainingPopulation, psi_categorical, psi_numeric, refresh, stored
from server.registry import Registry
from server.scoring import Scorer
from tests.bank.conftest import FEATURES, training_report
from tests.bank.test_review import rows
from tests.consent_helpers import report_consent


def test_psi_by_hand() -> None:
    # expected 50 / 50, actual 25 / 75: (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5)
    # = 0.25 ln 2 + 0.25 ln 1.5 = 0.173287 + 0.101366 = 0.274653
    assert population_stability_index(np.array([50, 50]), np.array([25, 75])) == pytest.approx(0.274653, abs=1e-5)
    value, expected, actual = psi_categorical({"a": 50, "b": 50}, ["a"] * 25 + ["b"] * 75)
    assert (round(value, 5), expected, actual) == (0.27465, [0.5, 0.5], [0.25, 0.75])
    same, _, _ = psi_categorical({"a": 50, "b": 50}, ["a", "b"] * 40)
    assert same == pytest.approx(0.0, abs=1e-9)


def test_training_bins_merge_into_groups_of_equal_share() -> None:
    # midpoints of the cumulative share: 5 %, 10 %, 25 %, 50 %, 80 % -> quartiles 0, 0, 1, 2, 3
    groups = quantile_groups(np.array([10, 0, 30, 20, 40]), 4)
    assert groups.tolist() == [0, 0, 1, 2, 3]
    assert grouped_counts(np.array([10, 0, 30, 20, 40]), groups).tolist() == [10, 30, 20, 40]


def test_a_numeric_feature_is_binned_on_the_training_sketch() -> None:
    rng = np.random.default_rng(0)
    training = compute_stats(pd.DataFrame({"amount": rng.uniform(500, 1500, 2000)}))
    bins = {b: m[0] for b, m in training.numeric["amount"].items()}
    same, _, _ = psi_numeric(bins, rng.uniform(500, 1500, 2000), 10)
    shifted, expected, actual = psi_numeric(bins, rng.uniform(3000, 5000, 500), 10)
    assert same < 0.02
    # every applicant falls in the top group; the sketch's bins are about 13 % wide at these
    # values, so 500-1,500 spans 9 of them and the top one held 1 % of the training rows
    assert len(expected) == 9 and actual[-1] == 1.0 and expected[-1] == 0.01
    assert shifted > 10  # groups left empty weigh in at ln(share / 1e-6) each


def test_calibration_z_by_hand() -> None:
    # PD 0.2 for five merchants, two defaulted: expected 1.0, variance 5 x 0.2 x 0.8 = 0.8,
    # z = (2 - 1) / sqrt(0.8) = 1.1180
    n, expected, defaults, z = calibration_z(np.full(5, 0.2), np.array([1, 1, 0, 0, 0]))
    assert (n, expected, defaults) == (5, pytest.approx(1.0), 2)
    assert z == pytest.approx(1 / math.sqrt(0.8))


def test_the_training_population_comes_from_the_run_reports_aggregates() -> None:
    population = TrainingPopulation.from_report(training_report())
    assert population is not None and population.rows == 2000
    assert set(population.numeric) == set(FEATURES.columns) - {"category"}
    assert population.scores is not None and population.scores[30] == 2000
    assert TrainingPopulation.from_report({"rounds": []}) is None


@pytest.fixture
def bank(db_url, make_model, tmp_path):
    registry = Registry(db_url, tmp_path / "store")
    model_dir = make_model(0.03)
    write_report(model_dir, training_report())
    registry.register(model_dir, anchor=False)
    promote(registry, "v1")
    book = CreditBook(db_url, registry=registry)
    eod.set_date(book, date(2026, 1, 1), "test")
    return book


def test_a_shifted_month_raises_a_stored_psi_alert_shown_in_the_metrics(bank) -> None:
    scorer = Scorer(bank.engine, registry=bank.scorer.registry, consent=lambda ids: np.ones(len(ids), dtype=bool))
    rng = np.random.default_rng(1)
    requests = []
    for i in range(150):  # amounts 3,000-5,000 yuan: far above the 500-1,500 the model learned on
        merchant_rows = rows([float(rng.uniform(3000, 5000))] * 3)
        for row in merchant_rows:
            row.update(category=str(rng.choice(["food", "toys", "books"])), count=float(rng.integers(5, 16)))
        requests.append((f"m{i}", merchant_rows))
    scorer.score_batch(requests)
    found = {r.metric: r for r in refresh(bank.engine, bank.scorer, "v1", "2026-01")}
    assert found["psi:amount"].alert and found["psi:amount"].level == "alert"
    assert found["psi:amount"].population == 150
    assert found["psi:score"].value == pytest.approx(0.0, abs=1e-9) and not found["psi:score"].alert
    assert not found["psi:count"].alert and not found["psi:category"].alert
    assert [r.metric for r in stored(bank.engine, "2026-01", alerts_only=True)] == [
        "psi:amount",
        "psi:avg_rating",
        "psi:growth",
        "psi:inventory_turnover",
    ]
    january = metrics(bank.engine, bank.policy.classification)["months"][-1]
    assert [a["metric"] for a in january["alerts"]] == [
        "psi:amount",
        "psi:avg_rating",
        "psi:growth",
        "psi:inventory_turnover",
    ]


def test_too_few_merchants_are_reported_but_not_alerted(bank) -> None:
    scorer = Scorer(bank.engine, registry=bank.scorer.registry, consent=lambda ids: np.ones(len(ids), dtype=bool))
    scorer.score_batch([(f"m{i}", rows([9000.0] * 3)) for i in range(20)])
    found = {r.metric: r for r in refresh(bank.engine, bank.scorer, "v1", "2026-01")}
    assert found["psi:amount"].value > 1 and found["psi:amount"].level == "too few"
    assert not any(r.alert for r in found.values())


def test_calibration_alerts_when_observed_defaults_run_far_above_the_pds(bank) -> None:
    merchants = [f"m{i:02d}" for i in range(40)]
    report_consent(bank.engine, merchants)
    lines = {m: bank.open(m, rows([1000.0, 2000.0, 3000.0])) for m in merchants}
    for line in lines.values():
        bank.draw(line.account_id, 100_000, 30)  # due 2026-01-31
    eod.set_date(bank, date(2026, 1, 31), "test")
    for m in merchants[10:]:  # 30 repay on the due day; 10 never do (substandard from 2026-05-02)
        owed = bank.get(lines[m].account_id)
        bank.repay(owed.account_id, owed.interest_fen + owed.principal_fen)
    eod.set_date(bank, date(2026, 8, 1), "test")  # January's decisions: 6-month window over
    found = {r.metric: r for r in refresh(bank.engine, bank.scorer, "v1", "2026-08")}
    overall = found["calibration:all"]
    # 40 lines at PD 0.03: expected 1.2 defaults, variance 40 x 0.03 x 0.97 = 1.164;
    # observed 10: z = (10 - 1.2) / sqrt(1.164) = 8.1565
    assert (overall.population, overall.detail["defaults"]) == (40, 10)
    assert overall.detail["observed_rate"] == 0.25
    assert overall.value == pytest.approx((10 - 40 * 0.03) / math.sqrt(40 * 0.03 * 0.97), rel=1e-5)
    assert overall.alert and found["calibration:B"].alert


def test_a_months_population_is_each_merchants_latest_decision(bank) -> None:
    """m1 scored twice in the month counts once, by its later decision; a decision the caller
    holds (`known`) is taken as given, not read back."""
    from federation.storage import session_scope

    scorer = Scorer(bank.engine, registry=bank.scorer.registry, consent=lambda ids: np.ones(len(ids), dtype=bool))
    first = scorer.score_batch([("m1", rows([600.0] * 3)), ("m2", rows([700.0] * 3))])
    [later] = scorer.score_batch([("m1", rows([1200.0] * 3))])
    columns = (["amount"], [])
    # held by the caller: a decision of the month (taken as given) and one no longer any
    # merchant's latest (left out, as the database says)
    known = monitoring.Sample.of(
        [{"amount": -1.0}, {"amount": -2.0}], [later.pd, 0.5], *columns, [later.decision_id, first[0].decision_id]
    )
    with session_scope(bank.engine) as session:
        found = monitoring.scored_population(session, "v1", "2026-01", columns)
        held = monitoring.scored_population(session, "v1", "2026-01", columns, known)
    assert sorted(found.numbers_of("amount").tolist()) == [700.0, 1200.0]
    assert sorted(found.pds.tolist()) == sorted([first[1].pd, later.pd])
    assert sorted(found.ids.tolist()) == sorted([first[1].decision_id, later.decision_id])
    assert sorted(held.numbers_of("amount").tolist()) == [-1.0, 700.0]
    assert sorted(held.pds.tolist()) == sorted([first[1].pd, later.pd])


def test_a_review_monitors_its_own_scores_as_a_read_back_would(bank) -> None:
    """The review hands its decisions' rows and PDs to the monitoring instead of reading them
    back; what it stores equals a refresh that reads every decision of the month."""
    from server.feature_store import FeatureStore
    from server.loanbook.review import review
    from server.monitoring import MonitorRecord

    rng = np.random.default_rng(3)
    merchants = [f"m{i:02d}" for i in range(30)]
    report_consent(bank.engine, [*merchants, "applicant"])
    reported = {m: rows([float(rng.uniform(500, 4000)) for _ in range(3)], first="2025-10") for m in merchants}
    FeatureStore(bank.engine).report("platform-1", reported)
    for m in merchants:
        bank.open(m, reported[m])
    bank.scorer.score("applicant", rows([2500.0] * 3, first="2025-10"))  # scored, not reviewed
    done = review(bank, "2025-12")
    assert done.reviewed == 30

    def records() -> dict[str, tuple[float | None, int]]:
        from sqlalchemy import select

        from federation.storage import session_scope

        with session_scope(bank.engine) as session:
            query = select(MonitorRecord.metric, MonitorRecord.value, MonitorRecord.population).where(
                MonitorRecord.month == "2026-01", MonitorRecord.metric.like("psi:%")
            )
            return {metric: (value, population) for metric, value, population in session.execute(query)}

    by_review = records()
    refresh(bank.engine, bank.scorer, "v1", "2026-01")
    assert by_review == records()
    assert by_review["psi:score"][1] == 31 and len(by_review) > 5


@pytest.mark.parametrize(
    "rows",
    [
        [{"amount": 1.0, "count": 2.0}, {"amount": 3.5, "count": 4.0}],  # every row numbers: the fast path
        [{"amount": 1.0, "count": True}, {"amount": 2, "count": 0.5}],  # bool and int are numbers too
        [{"amount": 1.0, "count": "1.5"}, {"amount": 2.0, "count": 3.0}],  # text is left out, not converted
        [{"amount": None, "count": 1.0}, {"amount": 2.0}],  # None and a missing column are left out
    ],
)
def test_a_sample_takes_numbers_only_as_one_row_at_a_time_would(rows) -> None:
    columns = ["amount", "count"]
    found = monitoring.Sample.of(rows, [0.1] * len(rows), columns)
    for column in columns:
        expected = [float(r[column]) for r in rows if isinstance(r.get(column), (int, float))]
        assert found.numbers_of(column).tolist() == expected


def test_samples_joined_and_taken_keep_each_row_together() -> None:
    """A review's processes hand the monitoring a sample per chunk: joined, then some rows
    taken, every column still describes the same rows, texts and missing values included."""
    one = monitoring.Sample.of(
        [{"amount": 1.0, "kind": "a"}, {"amount": "x"}], [0.1, 0.2], ["amount"], ["kind"], [11, 12]
    )
    two = monitoring.Sample.of([{"amount": 3.0, "kind": 7}], [0.3], ["amount"], ["kind"], [13])
    joined = monitoring.Sample.joined([one, two])
    assert len(joined) == 3 and joined.ids.tolist() == [11, 12, 13]
    assert joined.texts_of("kind") == ["a", "7"]
    taken = joined.take([2, 1])
    assert taken.ids.tolist() == [13, 12] and taken.pds.tolist() == [0.3, 0.2]
    assert taken.numbers_of("amount").tolist() == [3.0] and taken.texts["kind"] == ["7", None]
    assert len(monitoring.Sample.joined([])) == 0
    with pytest.raises(ValueError, match="expected one of each per row"):
        monitoring.Sample.of([{"amount": 1.0}], [0.1, 0.2])
