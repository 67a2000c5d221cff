"""Small synthetic platform files shared by the federated-learning tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def fl_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], Path]:
    """Three platforms' feature files (hundreds of rows each) and a held-out test file."""
    from federation.synth import make_feature_files

    return make_feature_files(tmp_path_factory.mktemp("fl-data"), platforms=3, merchants=60, months=6, seed=3)


def fast_config(files: list[Path], test: Path, out: Path, **overrides):  # type: ignore[no-untyped-def]
    """A quick run: two rounds of the default plan, and seeded DP noise so quality assertions
    are repeatable (the explicit reproducibility flag; the default, OS-entropy noise, is tested
    in test_noise.py)."""
    from server.fl.config import FederationConfig

    settings = dict(clients=files, test=test, out=out, rounds=2, seed=1, reproducible_noise=True)
    settings.update(overrides)
    return FederationConfig(**settings)
