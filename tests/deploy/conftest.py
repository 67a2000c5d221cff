"""Fixtures for the deployment tests: small synthetic platform files, leftover checks."""

from __future__ import annotations

import time
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def platform_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], Path]:
    """Three platforms' feature files (a few hundred rows each) and a held-out test file."""
    from federation.synth import make_feature_files

    return make_feature_files(tmp_path_factory.mktemp("synth"), platforms=3, merchants=120, months=6, seed=3)


def assert_no_leftovers(flwr_home: Path, timeout: float = 15.0) -> None:
    """Every process that carried this deployment's FLWR_HOME is gone (polled, not slept)."""
    from federation.processes import processes_with_env

    deadline = time.monotonic() + timeout
    while (left := processes_with_env("FLWR_HOME", str(flwr_home))) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == [], f"processes left running: {left}"
