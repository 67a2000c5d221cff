"""The bank's checks on each round's aggregate and on each platform's evaluation (pure logic)."""

from __future__ import annotations

import numpy as np
import pytest

from server.fl.guard import (
    AUC_DEVIATION,
    Guard,
    PlatformEvaluation,
    auc_standard_error,
    check_aggregate,
    evaluation_outliers,
)

PLATFORMS = ["A", "B", "C", "D"]


def test_an_average_of_bounded_updates_passes_and_a_scaled_or_nan_one_does_not() -> None:
    rng = np.random.default_rng(0)
    updates = []
    for _ in range(4):
        u = rng.normal(size=20)
        updates.append(u * (5.0 / np.linalg.norm(u)))  # each at the bound
    mean = [np.mean(updates, axis=0)]
    assert check_aggregate(mean, 5.0).passed  # a convex combination stays within the bound
    scaled = [np.mean([*updates[:3], updates[3] * 100], axis=0)]
    result = check_aggregate(scaled, 5.0)
    assert not result.passed and "above the bound 5" in str(result.reason)
    broken = check_aggregate([np.array([1.0, np.nan])], 5.0)
    assert not broken.passed and "not finite" in str(broken.reason)


def test_the_bank_refuses_an_aggregate_that_makes_its_validation_loss_worse() -> None:
    def loss(weights: list[np.ndarray]) -> float:
        return float(np.abs(weights[0]).sum())

    current = [np.zeros(3)]
    good = check_aggregate([np.full(3, 0.001)], 5.0, loss, [np.full(3, 0.001)], loss(current))
    bad = check_aggregate([np.full(3, 1.0)], 5.0, loss, [np.full(3, 1.0)], loss(current))
    assert good.passed and good.validation_loss == pytest.approx(0.003)
    assert not bad.passed and "validation loss worse: 3.0000 against 0.0000" in str(bad.reason)


def _play(guard: Guard, bad: str, rounds: int) -> list[tuple[list[str], str | None, bool]]:
    """Rounds in which every aggregate containing `bad` fails."""
    played = []
    for r in range(1, rounds + 1):
        chosen, left_out = guard.choose(PLATFORMS)
        passed = bad not in chosen
        guard.record_round(r, chosen, left_out, passed)
        played.append((chosen, left_out, passed))
    return played


@pytest.mark.parametrize("bad", PLATFORMS)
def test_leaving_one_out_in_turn_finds_the_poisoning_platform_wherever_it_is(bad: str) -> None:
    guard = Guard(exclude_after=2, min_clients=3)
    played = _play(guard, bad, 8)
    assert list(guard.excluded) == [bad]
    assert "while the aggregate without it passed" in guard.excluded[bad]
    assert sum(1 for _, _, passed in played if not passed) <= len(PLATFORMS)  # rounds lost
    assert all(passed and bad not in chosen for chosen, _, passed in played[-3:])
    assert all(len(chosen) >= 3 for chosen, _, _ in played)  # every round stays a sum of 3


def test_an_honest_one_off_failure_excludes_nobody() -> None:
    guard = Guard(exclude_after=2, min_clients=3)
    guard.record_round(1, PLATFORMS, None, passed=False)  # e.g. a noisy round
    chosen, left_out = guard.choose(PLATFORMS)
    assert left_out == "A" and chosen == ["B", "C", "D"]
    guard.record_round(2, chosen, left_out, passed=True)
    chosen, left_out = guard.choose(PLATFORMS)
    assert left_out is None and chosen == PLATFORMS  # A's turn again, to confirm
    assert guard.record_round(3, chosen, None, passed=True) == {}
    assert guard.excluded == {} and guard.failing == {}


def test_with_too_few_platforms_to_leave_one_out_nobody_is_guessed() -> None:
    guard = Guard(exclude_after=2, min_clients=3)
    for r in range(1, 5):
        chosen, left_out = guard.choose(["A", "B", "C"])
        assert left_out is None
        guard.record_round(r, chosen, left_out, passed=False)
    assert guard.excluded == {} and guard.rejected_in_a_row == 4


def _evaluation(auc: float, positives: int = 40, negatives: int = 400) -> PlatformEvaluation:
    return PlatformEvaluation(auc, positives, negatives, rows_declared=positives + negatives)


def test_an_evaluation_far_from_the_others_is_flagged_in_either_direction() -> None:
    honest = {"A": _evaluation(0.80), "B": _evaluation(0.76), "C": _evaluation(0.83)}
    assert evaluation_outliers(honest) == {}
    flipped = evaluation_outliers({**honest, "D": _evaluation(0.2)})
    perfect = evaluation_outliers({**honest, "D": _evaluation(1.0)})
    assert list(flipped) == ["D"] and "0.200" in flipped["D"] and list(perfect) == ["D"]


def test_a_small_platform_is_judged_by_its_own_standard_error() -> None:
    """With 3 positives an AUC 0.2 from the median is within chance; with 40 it is not."""
    tiny = PlatformEvaluation(0.6, 3, 30, rows_declared=33)
    assert 3 * tiny.standard_error > AUC_DEVIATION + 0.05
    honest = {"A": _evaluation(0.80), "B": _evaluation(0.78), "C": _evaluation(0.82)}
    assert evaluation_outliers({**honest, "D": tiny}) == {}
    assert auc_standard_error(0.8, 0, 10) == float("inf")


def test_histograms_that_do_not_count_the_declared_rows_are_flagged() -> None:
    honest = {"A": _evaluation(0.80), "B": _evaluation(0.78)}
    padded = PlatformEvaluation(0.8, 4000, 40000, rows_declared=440)
    flagged = evaluation_outliers({**honest, "C": padded})
    assert flagged == {"C": "its score histograms count 44000 rows, but it declared 440"}


def test_a_platform_flagged_again_and_again_is_excluded() -> None:
    guard = Guard(exclude_after=2)
    assert guard.record_evaluation(1, {"D": "odd"}, PLATFORMS) == {}
    assert guard.record_evaluation(2, {}, PLATFORMS) == {}  # not in a row: starts over
    assert guard.record_evaluation(3, {"D": "odd"}, PLATFORMS) == {}
    excluded = guard.record_evaluation(4, {"D": "odd"}, PLATFORMS)
    assert excluded == {"D": "its evaluation was flagged in rounds 3, 4: odd"}
    assert guard.choose(PLATFORMS) == (["A", "B", "C"], None)


def test_without_secagg_a_bad_update_is_the_platforms_own() -> None:
    guard = Guard(exclude_after=2)
    assert guard.record_single(1, "B", "its update is not finite") == {}
    assert guard.record_single(3, "B", "its update is not finite") == {}  # not in a row
    assert list(guard.record_single(4, "B", "its update is not finite")) == ["B"]
    assert "rounds 3, 4" in guard.excluded["B"]
