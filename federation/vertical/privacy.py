"""Differential privacy for what crosses between the two halves, accounted per merchant.

Each side protects its own data with the Gaussian mechanism on everything its data touches in
a step where a merchant's row takes part:

- the platform: the merchant's clipped embedding (noise σ·C_e) and its DP-SGD update of the
  bottom model (per-row gradients clipped to C_m, noise σ·C_m on the sum);
- the bank: the merchant's clipped returned gradient (σ·C_g) and its DP-SGD update of the top
  model (σ·C_m), which protects the labels (and the bank's features).

The other side knows which rows are in a batch (they are named by handle), so there is no
amplification by subsampling: each step a row takes part in is one Gaussian mechanism. With
replace-one adjacency each clipped part moves by at most 2C; two parts with noise σ times
their clip make one mechanism of L2 sensitivity 2√2 in units of the noise scale σ, i.e. a
unit-sensitivity Gaussian with noise multiplier σ/(2√2). A row that takes part in R steps
composes R of them (RDP, Mironov 2017), converted to (ε, δ) with Opacus' accountant
functions (`federation.privacy`). Calibration picks σ so the planned R give ε ≤ the budget.
Anything computed from released values afterwards is post-processing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from federation.privacy import PrivacyError, calibrate_noise, epsilon_of

SENSITIVITY = 2.0 * math.sqrt(2.0)  # replace-one, two clipped parts, in units of the noise scale


@dataclass(frozen=True)
class ReleasePlan:
    """σ for a budget (ε, δ) over `releases` steps per row."""

    epsilon: float
    delta: float
    releases: int
    noise_multiplier: float  # σ: noise std in units of each part's clip norm

    @classmethod
    def calibrate(cls, epsilon: float, delta: float, releases: int) -> ReleasePlan:
        if releases < 1:
            raise PrivacyError(f"{releases} releases per merchant: expected at least 1")
        unit = calibrate_noise(epsilon, delta, 1.0, releases)
        return cls(float(epsilon), float(delta), int(releases), unit * SENSITIVITY)

    def spent(self, releases: int) -> float:
        """ε after a row took part in `releases` steps (0 before any)."""
        if releases <= 0:
            return 0.0
        return epsilon_of([(self.noise_multiplier / SENSITIVITY, 1.0, int(releases))], self.delta)


def flip_probability(epsilon: float) -> float:
    """Randomized response on a binary label: keep it with e^ε/(1+e^ε), flip it otherwise."""
    return 1.0 / (1.0 + math.exp(epsilon))


def randomized_response(y: np.ndarray, epsilon: float, generator: np.random.Generator) -> np.ndarray:
    """ε-label-DP labels (Warner 1965; Ghazi et al., NeurIPS 2021): each label flipped with
    probability 1/(1+e^ε), once per run. Everything computed from them is post-processing, so
    the bank's ε does not grow with epochs or steps (unlike noise on each returned gradient)."""
    flip = generator.random(len(y)) < flip_probability(epsilon)
    return np.where(flip, 1 - y, y).astype(y.dtype)
