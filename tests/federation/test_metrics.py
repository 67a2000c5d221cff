"""AUC and KS, exact and from histograms, against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from federation.metrics import (
    auc_ks_from_histograms,
    ks_statistic,
    population_stability_index,
    roc_auc,
    score_histograms,
)


def test_auc_counts_pairs_and_half_ties():
    y = np.array([0, 0, 1, 1])
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    # pairs (pos, neg): (0.35,0.1) win, (0.35,0.4) lose, (0.8,0.1) win, (0.8,0.4) win -> 3/4
    assert roc_auc(y, scores) == 0.75
    # a tie counts one half: positives {0.5, 0.9}, negatives {0.5, 0.1} -> (0.5 + 1 + 1 + 1)/4
    assert roc_auc(np.array([1, 1, 0, 0]), np.array([0.5, 0.9, 0.5, 0.1])) == 0.875


def test_ks_is_largest_cdf_gap():
    y = np.array([0, 0, 1, 1])
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    # at threshold 0.1: neg cdf 0.5, pos cdf 0 -> gap 0.5 (largest)
    assert ks_statistic(y, scores) == 0.5


def test_single_class_gives_nan_not_an_error():
    assert np.isnan(roc_auc(np.array([1, 1]), np.array([0.2, 0.3])))
    assert np.isnan(ks_statistic(np.array([0, 0]), np.array([0.2, 0.3])))


def test_histograms_bin_scores_per_class():
    pos, neg = score_histograms(np.array([1, 0, 0, 1]), np.array([0.05, 0.05, 0.95, 1.0]), bins=10)
    assert pos.tolist() == [1, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    assert neg.tolist() == [1, 0, 0, 0, 0, 0, 0, 0, 0, 1]


def test_histogram_metrics_match_hand_computation():
    # bins: pos = [1, 0, 2], neg = [2, 1, 0]
    # AUC = sum_b pos_b * (neg below b + neg_b / 2) / (3 * 3) = (1*1 + 0 + 2*3) / 9 = 7/9
    # KS: cdf pos [1/3, 1/3, 1], neg [2/3, 1, 1] -> max gap 2/3
    auc, ks = auc_ks_from_histograms(np.array([1, 0, 2]), np.array([2, 1, 0]))
    assert auc == pytest.approx(7 / 9)
    assert ks == pytest.approx(2 / 3)


def test_summed_client_histograms_approach_exact_pooled_metrics():
    rng = np.random.default_rng(3)
    parts = []
    for shift in (0.0, 0.3, -0.2):
        y = (rng.random(400) < 0.2).astype(int)
        scores = 1 / (1 + np.exp(-(rng.normal(0, 1, 400) + 1.5 * y + shift)))
        parts.append((y, scores))
    pos = sum(score_histograms(y, s)[0] for y, s in parts)
    neg = sum(score_histograms(y, s)[1] for y, s in parts)
    auc, ks = auc_ks_from_histograms(pos, neg)
    y_all = np.concatenate([y for y, _ in parts])
    s_all = np.concatenate([s for _, s in parts])
    assert auc == pytest.approx(roc_auc(y_all, s_all), abs=2e-3)
    assert ks == pytest.approx(ks_statistic(y_all, s_all), abs=5e-3)


def test_psi_is_zero_for_identical_and_positive_for_shifted():
    base = np.array([10, 20, 30, 40])
    assert population_stability_index(base, base) == pytest.approx(0.0, abs=1e-9)
    # hand value: a=[.4,.3,.2,.1], e=[.1,.2,.3,.4] -> sum (a-e) ln(a/e)
    expected = sum((a - e) * np.log(a / e) for a, e in zip([0.4, 0.3, 0.2, 0.1], [0.1, 0.2, 0.3, 0.4], strict=True))
    assert population_stability_index(base, base[::-1]) == pytest.approx(expected, rel=1e-4)
