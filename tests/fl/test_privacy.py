"""DP budget split over rounds, composition across rounds, checked with independent accountants."""

from __future__ import annotations

import pytest
from opacus.accountants import PRVAccountant, RDPAccountant

from federation.privacy import PrivacyError, PrivacyState

DELTA = 1e-5


def independent_rdp_epsilon(noise: float, rate: float, steps: int, delta: float = DELTA) -> float:
    """ε from a fresh Opacus `RDPAccountant` (the client computes its ε with its own cached code)."""
    accountant = RDPAccountant()
    accountant.history = [(noise, rate, steps)]
    return float(accountant.get_epsilon(delta=delta))


def prv_epsilon(noise: float, rate: float, steps: int, delta: float = DELTA) -> float:
    accountant = PRVAccountant()
    accountant.history = [(noise, rate, steps)]
    return float(accountant.get_epsilon(delta=delta))


@pytest.mark.parametrize("epsilon", [1.0, 3.0, 8.0])
@pytest.mark.parametrize("rate", [1.0, 64 / 500], ids=["full-batch", "poisson"])
def test_one_noise_multiplier_keeps_the_whole_run_within_budget(epsilon: float, rate: float) -> None:
    state = PrivacyState.plan(
        epsilon=epsilon, delta=DELTA, sample_rate=rate, steps_per_round=16, rounds=5, max_grad_norm=1.0
    )
    total_steps = state.steps_per_round * state.rounds
    composed = independent_rdp_epsilon(state.noise_multiplier, state.sample_rate, total_steps)
    assert composed <= epsilon
    assert composed >= 0.97 * epsilon  # the budget is used, not wasted on excess noise
    assert prv_epsilon(state.noise_multiplier, state.sample_rate, total_steps) <= epsilon


def test_epsilon_composes_across_rounds_and_survives_serialisation() -> None:
    state = PrivacyState.plan(
        epsilon=3.0, delta=DELTA, sample_rate=50 / 300, steps_per_round=6, rounds=4, max_grad_norm=1.0
    )
    spent = []
    for _ in range(4):
        state.record_round(state.steps_per_round)
        state = PrivacyState.from_json(state.to_json())  # what the ClientApp keeps in context.state
        spent.append(state.spent)
    assert spent == sorted(spent) and spent[0] < spent[-1]
    assert spent[-1] <= 3.0
    assert spent[1] == pytest.approx(
        independent_rdp_epsilon(state.noise_multiplier, state.sample_rate, 2 * state.steps_per_round), rel=1e-6
    )
    assert spent[-1] == pytest.approx(
        independent_rdp_epsilon(state.noise_multiplier, state.sample_rate, 4 * state.steps_per_round), rel=1e-6
    )


def test_training_records_the_steps_it_took(fl_files) -> None:  # type: ignore[no-untyped-def]
    from clients.train import LocalTraining, train_private
    from federation.model import build_model
    from federation.preprocess import Encoder, compute_stats, load_labeled

    table = load_labeled(fl_files[0][0])
    units = table.privacy_units()
    encoder = Encoder.from_stats(compute_stats(table.frame))
    x, y = encoder.transform(table.frame), table.y.astype("float32")
    state = PrivacyState.plan(epsilon=2.0, delta=DELTA, sample_rate=0.5, steps_per_round=4, rounds=2, max_grad_norm=1.0)
    model = build_model(encoder.n_features)
    train_private(model, x, y, units, LocalTraining(lr=1.0, momentum=0.0), state)
    assert state.steps_taken == state.steps_per_round
    first = state.spent
    train_private(model, x, y, units, LocalTraining(lr=1.0, momentum=0.0, seed=1), state)
    assert state.steps_taken == 2 * state.steps_per_round
    assert first < state.spent <= 2.0
    assert state.spent == pytest.approx(
        independent_rdp_epsilon(state.noise_multiplier, state.sample_rate, state.steps_taken), rel=1e-6
    )


@pytest.mark.parametrize(
    "epsilon, delta, message",
    [
        (1.0, 2.0, "δ=2.0: expected a number between 0 and 1"),
        (0.0, 1e-5, "ε=0.0: expected a finite number above 0"),
        (-1.0, 1e-5, "ε=-1.0: expected a finite number above 0"),
        (float("nan"), 1e-5, "ε=nan: expected a finite number above 0"),
        (float("inf"), 1e-5, "ε=inf: expected a finite number above 0 .*--no-dp"),
    ],
)
def test_an_impossible_budget_is_refused(epsilon: float, delta: float, message: str) -> None:
    with pytest.raises(PrivacyError, match=message):
        PrivacyState.plan(epsilon=epsilon, delta=delta, sample_rate=0.1, steps_per_round=1, rounds=1, max_grad_norm=1.0)
