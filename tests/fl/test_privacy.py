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
def test_one_noise_multiplier_keeps_the_whole_run_within_budget(epsilon: float) -> None:
    state = PrivacyState.plan(
        epsilon=epsilon, delta=DELTA, rows=500, batch_size=64, local_epochs=2, rounds=5, max_grad_norm=1.0
    )
    total_steps = state.steps_per_round * state.rounds
    assert state.steps_per_round == 2 * 8
    composed = independent_rdp_epsilon(state.noise_multiplier, state.sample_rate, total_steps)
    assert composed <= epsilon
    assert composed >= 0.97 * epsilon  # the budget is used, not wasted on excess noise
    assert prv_epsilon(state.noise_multiplier, state.sample_rate, total_steps) <= epsilon


def test_epsilon_composes_across_rounds_and_survives_serialisation() -> None:
    state = PrivacyState.plan(
        epsilon=3.0, delta=DELTA, rows=300, batch_size=50, local_epochs=1, rounds=4, max_grad_norm=1.0
    )
    spent = []
    for _ in range(4):
        state.history.append((state.noise_multiplier, state.sample_rate, state.steps_per_round))
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
    from clients.train import LocalTraining, train_local
    from federation.model import build_model
    from federation.preprocess import Encoder, compute_stats, load_labeled

    table = load_labeled(fl_files[0][0])
    encoder = Encoder.from_stats(compute_stats(table.frame))
    x, y = encoder.transform(table.frame), table.y.astype("float32")
    state = PrivacyState.plan(
        epsilon=2.0, delta=DELTA, rows=len(x), batch_size=64, local_epochs=1, rounds=2, max_grad_norm=1.0
    )
    model = build_model(encoder.n_features)
    train_local(model, x, y, LocalTraining(epochs=1, batch_size=64), state)
    assert state.steps_taken == state.steps_per_round
    first = state.spent
    train_local(model, x, y, LocalTraining(epochs=1, batch_size=64, seed=1), state)
    assert state.steps_taken == 2 * state.steps_per_round
    assert first < state.spent <= 2.0
    assert state.spent == pytest.approx(
        independent_rdp_epsilon(state.noise_multiplier, state.sample_rate, state.steps_taken), rel=1e-6
    )


def test_an_impossible_budget_is_refused() -> None:
    with pytest.raises(PrivacyError, match="delta"):
        PrivacyState.plan(epsilon=1.0, delta=2.0, rows=100, batch_size=10, local_epochs=1, rounds=1, max_grad_norm=1.0)
