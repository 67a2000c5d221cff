"""Credit-model metrics: AUC and KS, exact (central) and federated from score histograms.

Federated evaluation never moves scores: each platform bins its own scores per class into fixed
equal-width bins on [0, 1]; the bank adds the platforms' counts and computes AUC and KS from the
summed histograms. Ties inside a bin count one half, so with fine bins the federated AUC matches
the exact one to within the bin width's effect.

Model monitoring: the population stability index (PSI) between the training population's
histogram and a month's, over groups of about equal training share (`quantile_groups`), and a
calibration check of predicted PDs against observed defaults (`calibration_z`).
"""

from __future__ import annotations

import math

import numpy as np


def _as_arrays(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y).astype(np.int64).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != scores.shape:
        raise ValueError(f"labels ({y.shape[0]}) and scores ({scores.shape[0]}) differ in length")
    if not ((y == 0) | (y == 1)).all():
        raise ValueError("labels must be 0/1")
    return y, scores


def roc_auc(y: np.ndarray, scores: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count 1/2)."""
    y, scores = _as_arrays(y, scores)
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    # Mann-Whitney U with average ranks for ties.
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores), dtype=np.float64)
    _, first_index, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average_rank = first_index + (counts + 1) / 2.0  # 1-based average rank of each tie group
    ranks[order] = np.repeat(average_rank, counts)
    rank_sum = ranks[y == 1].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def ks_statistic(y: np.ndarray, scores: np.ndarray) -> float:
    """Largest gap between the cumulative score distributions of positives and negatives."""
    y, scores = _as_arrays(y, scores)
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    thresholds = np.unique(scores)
    pos_cdf = np.searchsorted(np.sort(scores[y == 1]), thresholds, side="right") / n_pos
    neg_cdf = np.searchsorted(np.sort(scores[y == 0]), thresholds, side="right") / n_neg
    return float(np.max(np.abs(pos_cdf - neg_cdf)))


def score_histograms(y: np.ndarray, scores: np.ndarray, bins: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Counts of positives and of negatives per equal-width score bin on [0, 1]."""
    y, scores = _as_arrays(y, scores)
    index = np.clip((scores * bins).astype(np.int64), 0, bins - 1)
    pos = np.bincount(index[y == 1], minlength=bins).astype(np.int64)
    neg = np.bincount(index[y == 0], minlength=bins).astype(np.int64)
    return pos, neg


def auc_ks_from_histograms(pos_counts: np.ndarray, neg_counts: np.ndarray) -> tuple[float, float]:
    """AUC and KS from (summed) per-class histograms over the same bins."""
    pos = np.asarray(pos_counts, dtype=np.float64)
    neg = np.asarray(neg_counts, dtype=np.float64)
    if pos.shape != neg.shape:
        raise ValueError("histograms must have the same bins")
    n_pos, n_neg = pos.sum(), neg.sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan"), float("nan")
    neg_below = np.concatenate([[0.0], np.cumsum(neg)[:-1]])  # negatives in strictly lower bins
    auc = float((pos * (neg_below + 0.5 * neg)).sum() / (n_pos * n_neg))
    ks = float(np.max(np.abs(np.cumsum(pos) / n_pos - np.cumsum(neg) / n_neg)))
    return auc, ks


def population_stability_index(expected: np.ndarray, actual: np.ndarray, eps: float = 1e-6) -> float:
    """PSI between two histograms over the same bins (score drift between periods/platforms)."""
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    e = e / e.sum() + eps
    a = a / a.sum() + eps
    return float(((a - e) * np.log(a / e)).sum())


def quantile_groups(counts: np.ndarray, groups: int = 10) -> np.ndarray:
    """Merge ordered histogram bins into about `groups` groups of equal expected share.

    `counts` is the expected (training) population over ordered bins. Returns, per bin, its
    group number (0, 1, ...; contiguous and non-decreasing): a bin goes to the group its
    population midpoint falls in, so each group holds about 1/`groups` of the population and an
    empty bin joins its neighbours. PSI over deciles of the expected population is the usual
    practice; the fine bins of a sketch would leave most bins empty in a month's sample. Bins
    the training population left empty join their neighbour's group: a month's values there
    count against that group's expected share instead of against zero.
    """
    c = np.asarray(counts, dtype=np.float64)
    if groups < 1 or c.ndim != 1 or len(c) == 0:
        raise ValueError("quantile_groups needs a 1-d histogram and at least one group")
    total = c.sum()
    if total <= 0:
        return np.zeros(len(c), dtype=np.int64)
    midpoint = np.cumsum(c) - c / 2.0
    raw = np.minimum((midpoint / total * groups).astype(np.int64), groups - 1)
    # An empty bin joins the group of the nearest non-empty bin before it (the first one for
    # empty bins at the start), so no group has an expected share of zero.
    filled = np.flatnonzero(c > 0)
    source = np.maximum.accumulate(np.where(c > 0, np.arange(len(c)), -1))
    raw = raw[np.where(source >= 0, source, filled[0])]
    _, numbered = np.unique(raw, return_inverse=True)
    return numbered.astype(np.int64)


def grouped_counts(counts: np.ndarray, group_of_bin: np.ndarray) -> np.ndarray:
    """Sum bin counts into their groups (`quantile_groups`' numbering)."""
    sums: np.ndarray = np.bincount(
        np.asarray(group_of_bin, dtype=np.int64),
        weights=np.asarray(counts, dtype=np.float64),
        minlength=int(np.max(group_of_bin)) + 1 if len(group_of_bin) else 0,
    )
    return sums


def calibration_z(predicted: np.ndarray, observed: np.ndarray) -> tuple[int, float, int, float]:
    """(n, expected defaults, observed defaults, z) for PDs against 0/1 outcomes.

    z = (observed - expected) / sqrt(sum p(1 - p)): how many standard deviations the observed
    count of defaults lies from what the PDs predict, if the PDs were right and the outcomes
    independent. |z| > 3 is a drift a bank acts on.
    """
    p = np.asarray(predicted, dtype=np.float64)
    y = np.asarray(observed, dtype=np.float64)
    if p.shape != y.shape:
        raise ValueError("predicted and observed must have the same length")
    expected = float(p.sum())
    defaults = int(y.sum())
    variance = float((p * (1.0 - p)).sum())
    if variance <= 0.0:
        z = 0.0 if abs(defaults - expected) < 1e-12 else math.copysign(math.inf, defaults - expected)
    else:
        z = (defaults - expected) / math.sqrt(variance)
    return len(p), expected, defaults, float(z)
