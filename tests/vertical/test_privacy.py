"""Privacy maths: every reported ε recomputed independently; randomized response's ratio."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.stats import norm

from federation.vertical.privacy import SENSITIVITY, ReleasePlan, flip_probability, randomized_response


def exact_gaussian_epsilon(noise_multiplier: float, releases: int, delta: float) -> float:
    """The tight ε of `releases` unit-sensitivity Gaussians (Balle & Wang 2018, analytic)."""
    s = noise_multiplier / math.sqrt(releases)  # R Gaussians compose to one with σ/√R

    def gap(eps: float) -> float:
        return norm.cdf(-eps * s + 1 / (2 * s)) - math.exp(eps) * norm.cdf(-eps * s - 1 / (2 * s)) - delta

    return float(brentq(gap, 0.0, 500.0))


def rdp_upper_bound(noise_multiplier: float, releases: int, delta: float) -> float:
    """Mironov's RDP → (ε, δ) conversion, minimised over integer orders: a looser upper bound."""
    return min(releases * a / (2 * noise_multiplier**2) + math.log(1 / delta) / (a - 1) for a in range(2, 256))


@pytest.mark.parametrize(("epsilon", "releases"), [(1.0, 1), (4.0, 5), (8.0, 6), (16.0, 11)])
def test_the_planned_noise_meets_the_budget_by_two_independent_analyses(epsilon: float, releases: int) -> None:
    plan = ReleasePlan.calibrate(epsilon, 1e-5, releases)
    unit = plan.noise_multiplier / SENSITIVITY
    reported = plan.spent(releases)
    assert reported <= epsilon + 1e-9
    assert exact_gaussian_epsilon(unit, releases, 1e-5) <= reported <= rdp_upper_bound(unit, releases, 1e-5)
    assert reported > 0.8 * epsilon  # calibrated, not wastefully noisy
    assert plan.spent(0) == 0.0
    assert plan.spent(max(1, releases - 1)) <= reported


def test_two_clipped_parts_under_replacement_have_sensitivity_two_root_two() -> None:
    # Each part moves by at most 2C when one row is replaced; in units of the noise scale σC
    # the concatenation moves by sqrt(2^2 + 2^2) = 2√2.
    assert pytest.approx(math.hypot(2.0, 2.0)) == SENSITIVITY


@pytest.mark.parametrize("epsilon", [0.5, 1.0, 2.0, 4.0])
def test_randomized_response_keeps_the_likelihood_ratio_at_e_to_the_epsilon(epsilon: float) -> None:
    p = flip_probability(epsilon)
    assert (1 - p) / p == pytest.approx(math.exp(epsilon))
    y = np.zeros(200_000, dtype=np.int8)
    flipped = randomized_response(y, epsilon, np.random.default_rng(0))
    assert flipped.mean() == pytest.approx(p, abs=4 * math.sqrt(p * (1 - p) / len(y)))
    assert set(np.unique(flipped)) <= {0, 1}
