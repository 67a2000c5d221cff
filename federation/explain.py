"""Feature attributions of a credit score against a reference merchant, from the model itself.

A score is explained on the log-odds scale, relative to a *reference merchant*: the average
training merchant (every standardised numeric feature at its population mean, 0 after encoding;
every one-hot category at its population share). Each original feature (a numeric column, or a
categorical column's one-hot block) gets one number: how many log-odds it added to the score.

- Logistic model: exact, ``weight x (encoded value - reference)``; the contributions add up to
  ``logit(x) - logit(reference)``.
- MLP: integrated gradients (Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep
  Networks", ICML 2017) from the reference to the merchant, on the logit, with a midpoint
  Riemann sum; they add up to ``logit(x) - logit(reference)`` up to the sum's error, and on a
  linear model they equal the exact contributions.

Positive means "pushed the default probability up" (riskier). Pure numpy/torch, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from federation.preprocess import OTHER

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from federation.preprocess import Encoder

IG_STEPS = 32
IG_CHUNK = 4096  # merchants per integrated-gradients pass (memory: steps x chunk x features)


@dataclass(frozen=True)
class Attribution:
    """Contributions per merchant and original feature, in log-odds against the reference."""

    features: tuple[str, ...]
    values: np.ndarray  # (merchants, features)
    reference_logit: float

    def rows(self) -> list[dict[str, float]]:
        """Each merchant's contributions by feature, converted from the array at once (a
        review's chunk: ten thousand rows, each read out of the array on its own cost as much
        as their dicts)."""
        features = self.features
        return [dict(zip(features, values, strict=True)) for values in self.values.tolist()]


def feature_groups(encoder: Encoder) -> tuple[tuple[str, ...], np.ndarray]:
    """(original feature names, for each encoded column the index of its original feature).

    Encoded columns come in `Encoder.feature_names` order: numeric columns sorted, then each
    categorical column's vocabulary.
    """
    names = sorted(encoder.numeric) + sorted(encoder.categorical)
    owner = list(range(len(encoder.numeric)))
    for offset, column in enumerate(sorted(encoder.categorical)):
        owner.extend([len(encoder.numeric) + offset] * len(encoder.categorical[column]))
    return tuple(names), np.asarray(owner, dtype=np.int64)


def reference_vector(encoder: Encoder, category_counts: Mapping[str, Mapping[str, int]] | None = None) -> np.ndarray:
    """The encoded reference merchant: 0 for every numeric feature (the population mean after
    standardising), the population share of each category for one-hot columns.

    `category_counts` are the training population's value counts per categorical column (the
    federated agreement's aggregates). Values outside the vocabulary count for its `__other__`
    slot. Without counts every category gets the same share.
    """
    parts = [np.zeros(len(encoder.numeric))]
    for column in sorted(encoder.categorical):
        vocabulary = encoder.categorical[column]
        counts = (category_counts or {}).get(column)
        if not counts:
            parts.append(np.full(len(vocabulary), 1.0 / len(vocabulary)))
            continue
        share = np.zeros(len(vocabulary))
        index = {value: i for i, value in enumerate(vocabulary)}
        other = index.get(OTHER, len(vocabulary) - 1)
        for value, count in counts.items():
            share[index.get(str(value), other)] += float(count)
        total = share.sum()
        parts.append(share / total if total > 0 else np.full(len(vocabulary), 1.0 / len(vocabulary)))
    reference: np.ndarray = np.concatenate(parts)
    return reference


def _grouped(encoded: np.ndarray, owner: np.ndarray, n_features: int) -> np.ndarray:
    """Sum encoded-column contributions into their original features."""
    membership = np.zeros((len(owner), n_features))
    membership[np.arange(len(owner)), owner] = 1.0
    grouped: np.ndarray = np.asarray(encoded, dtype=np.float64) @ membership
    return grouped


def logistic_contributions(weight: np.ndarray, x: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Exact per-column contributions of a logistic model: weight x (x - reference)."""
    contributions: np.ndarray = np.asarray(weight, dtype=np.float64).reshape(1, -1) * (
        np.asarray(x, dtype=np.float64) - reference.reshape(1, -1)
    )
    return contributions


def integrated_gradients(
    model: torch.nn.Module, x: np.ndarray, reference: np.ndarray, steps: int = IG_STEPS
) -> np.ndarray:
    """Integrated gradients of the model's logit from `reference` to each row of `x`."""
    import torch

    if steps < 1:
        raise ValueError("integrated gradients need at least one step")
    x64 = np.asarray(x, dtype=np.float64)
    out = np.zeros_like(x64)
    base = torch.as_tensor(reference, dtype=torch.float32).reshape(1, 1, -1)
    alphas = ((torch.arange(steps, dtype=torch.float32) + 0.5) / steps).reshape(-1, 1, 1)
    model.eval()
    for start in range(0, len(x64), IG_CHUNK):
        chunk = torch.as_tensor(x64[start : start + IG_CHUNK], dtype=torch.float32).unsqueeze(0)
        path = (base + alphas * (chunk - base)).reshape(-1, chunk.shape[-1]).detach().requires_grad_(True)
        logits = model(path).sum()
        (gradient,) = torch.autograd.grad(logits, path)
        mean_gradient = gradient.reshape(steps, -1, chunk.shape[-1]).mean(dim=0)
        attributions = (mean_gradient * (chunk[0] - base[0])).detach().numpy().astype(np.float64)
        out[start : start + len(attributions)] = attributions
    return out


def reference_logit(model: torch.nn.Module, reference: np.ndarray) -> float:
    import torch

    model.eval()
    with torch.no_grad():
        return float(model(torch.as_tensor(reference, dtype=torch.float32).reshape(1, -1)).reshape(-1)[0])


def attribute(
    model: Any,
    architecture: str,
    encoder: Encoder,
    x: np.ndarray,
    reference: np.ndarray,
    steps: int = IG_STEPS,
) -> Attribution:
    """Contributions of every original feature for encoded rows `x` (see the module docstring)."""
    names, owner = feature_groups(encoder)
    if architecture == "logistic":
        weight = model[0].weight.detach().numpy().reshape(-1)
        encoded = logistic_contributions(weight, x, reference)
    else:
        encoded = integrated_gradients(model, x, reference, steps)
    return Attribution(names, _grouped(encoded, owner, len(names)), reference_logit(model, reference))


def top_features(values: np.ndarray, k: int, sign: int = 1) -> np.ndarray:
    """Per row, the indices of the `k` features pushing hardest in direction `sign` (+1: up,
    towards default; -1: down), largest first; entries that do not push that way are -1."""
    signed = np.asarray(values, dtype=np.float64) * sign
    k = min(k, signed.shape[1])
    order = np.argsort(-signed, axis=1, kind="stable")[:, :k]
    chosen = np.take_along_axis(signed, order, axis=1)
    result: np.ndarray = np.where(chosen > 0, order, -1)
    return result
