"""DP noise the bank cannot predict: OS entropy by default, seeded only when a run asks for it.

Issue 10's reproduction: a platform's DP noise was seeded from values the bank chooses (run seed,
partition, round) and Opacus' secure-RNG warning was filtered at import, so whoever knew the seed
could regenerate the noise and subtract it.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from federation.privacy import OS_ENTROPY, SEEDED, NoiseSource, PrivacyState
from tests.fl.conftest import fast_config


def _train_once(noise: NoiseSource, rate: float = 1.0) -> list[np.ndarray]:
    from clients.train import LocalTraining, train_private
    from federation.model import build_model, get_weights
    from federation.units import PrivacyUnits

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6)).astype(np.float32)
    y = (x[:, 0] + rng.normal(size=400) > 0).astype(np.float32)
    state = PrivacyState.plan(
        epsilon=4.0, delta=1e-5, sample_rate=rate, steps_per_round=5, rounds=2, max_grad_norm=0.05
    )
    model = build_model(6, seed=3)
    units = PrivacyUnits.of(None, 400)
    train_private(model, x, y, units, LocalTraining(lr=20.0, momentum=0.0, seed=3, noise=noise), state)
    return get_weights(model)


@pytest.mark.parametrize("rate", [1.0, 0.25], ids=["full-batch", "poisson-sampled units"])
def test_the_same_settings_draw_different_noise_unless_seeded(rate: float) -> None:
    first, second = _train_once(NoiseSource(), rate), _train_once(NoiseSource(), rate)
    assert np.abs(first[0] - second[0]).max() > 1e-4
    seeded = [_train_once(NoiseSource(seed=42), rate) for _ in range(2)]
    np.testing.assert_array_equal(seeded[0][0], seeded[1][0])


def test_os_entropy_noise_is_opacus_floating_point_safe_noise(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The DP optimizer runs in Opacus' secure mode with the OS-seeded generator, and only then."""
    import opacus.optimizers

    from federation.dpsgd import DPStepSettings, train_dp_units
    from federation.model import build_model
    from federation.units import PrivacyUnits

    made: list[tuple[bool, object]] = []
    original = opacus.optimizers.DPOptimizer.__init__

    def spy(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        made.append((kwargs["secure_mode"], kwargs["generator"]))
        original(self, *args, **kwargs)

    monkeypatch.setattr(opacus.optimizers.DPOptimizer, "__init__", spy)
    x, y = np.zeros((8, 3), np.float32), np.array([0, 1] * 4, np.float32)
    for noise in (NoiseSource(), NoiseSource(seed=1)):
        train_dp_units(
            build_model(3), x, y, PrivacyUnits.of(None, 8), DPStepSettings(1, 1.0, 0.1, 0.0, 1.0, 1.0), noise
        )
    assert [secure for secure, _ in made] == [True, False]
    assert all(generator is not None for _, generator in made)
    assert (NoiseSource().kind, NoiseSource(seed=1).kind) == (OS_ENTROPY, SEEDED)


def test_opacus_secure_rng_warning_is_not_silenced_at_import() -> None:
    import federation.privacy  # noqa: F401

    silenced = [f for f in warnings.filters if f[1] is not None and f[1].search("Secure RNG turned off")]
    assert silenced == []


@pytest.mark.parametrize("reproducible", [False, True], ids=["os-entropy", "seeded"])
def test_two_federated_runs_with_identical_settings(fl_files, tmp_path, reproducible) -> None:  # type: ignore[no-untyped-def]
    from federation.model import load_model
    from yinqi.harness.federated import run_federation

    files, test = fl_files
    reports, weights = [], []
    for name in ("a", "b"):
        cfg = fast_config(
            files, test, tmp_path / name, rounds=1, dp=True, secagg=False, reproducible_noise=reproducible
        )
        reports.append(run_federation(cfg))
        weights.append(
            np.concatenate([p.detach().numpy().ravel() for p in load_model(tmp_path / name).model.parameters()])
        )

    kind = SEEDED if reproducible else OS_ENTROPY
    for report, name in zip(reports, ("a", "b"), strict=True):
        assert report.dp_noise == {p: kind for p in report.platforms}
        assert report.settings["dp-noise"] == kind
        assert json.loads((tmp_path / name / "meta.json").read_text())["dp_noise"] == kind
        assert all(c.dp_noise == kind for c in report.rounds[0].clients)
    difference = np.abs(weights[0] - weights[1]).max()
    if reproducible:  # the same noise; only the order replies are summed in may differ (float rounding)
        assert difference < 1e-6
    else:
        assert difference > 1e-4
