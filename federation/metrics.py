"""Credit-model metrics: AUC and KS, exact (central) and federated from score histograms.

Federated evaluation never moves scores: each platform bins its own scores per class into fixed
equal-width bins on [0, 1]; the bank adds the platforms' counts and computes AUC and KS from the
summed histograms. Ties inside a bin count one half, so with fine bins the federated AUC matches
the exact one to within the bin width's effect.
"""

from __future__ import annotations

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
