"""The synthetic generator is reproducible, non-IID and has a few percent defaults."""

from __future__ import annotations

import pandas as pd

from federation.synth import generate


def test_platforms_differ_and_defaults_are_a_few_percent(tmp_path):
    summary = generate(tmp_path, platforms=3, merchants=200, months=6, seed=7)
    assert summary.merchants == [300, 200, 100]
    assert all(0.01 < rate < 0.15 for rate in summary.default_rates)
    mixes = [pd.read_csv(p)["category"].value_counts(normalize=True) for p in summary.platform_files]
    assert max(abs(mixes[0].get(c, 0) - mixes[2].get(c, 0)) for c in mixes[0].index) > 0.05
    test = pd.read_csv(summary.test_file)
    train_ids = set().union(*(set(pd.read_csv(p)["merchant_id"]) for p in summary.platform_files))
    assert train_ids.isdisjoint(set(test["merchant_id"]))


def test_same_seed_same_files(tmp_path):
    a = generate(tmp_path / "a", platforms=2, merchants=20, months=3, seed=1)
    b = generate(tmp_path / "b", platforms=2, merchants=20, months=3, seed=1)
    assert a.platform_files[0].read_bytes() == b.platform_files[0].read_bytes()
