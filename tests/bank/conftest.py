"""Fixtures for the bank services: one database per test on SQLite and on PostgreSQL, and
model directories whose default probability is known exactly (zero weights, a chosen bias)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

FEATURES = pd.DataFrame(
    {
        "category": ["food", "toys", "food", "books"],
        "amount": [1000.0, 2500.0, 400.0, 3200.0],
        "count": [10, 25, 4, 30],
        "avg_rating": [4.5, 4.0, 3.5, 4.8],
        "inventory_turnover": [2.0, 3.0, 1.5, 4.0],
        "growth": [0.0, 0.1, -0.2, 0.05],
        "first_month": [1, 0, 0, 0],
        "past_defaults": [0, 0, 1, 0],
    }
)


def merchant_rows(amounts: list[float], category: str = "food") -> list[dict]:
    """Feature rows of one merchant, one per month, with the given monthly amounts."""
    return [
        {
            "month": f"2026-{i + 1:02d}",
            "category": category,
            "amount": amount,
            "count": 10,
            "avg_rating": 4.5,
            "inventory_turnover": 2.0,
            "growth": 0.0,
            "first_month": int(i == 0),
            "past_defaults": 0,
        }
        for i, amount in enumerate(amounts)
    ]


@pytest.fixture(autouse=True)
def _data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YINQI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("YINQI_DB_URL", raising=False)
    monkeypatch.delenv("YINQI_CREDIT_POLICY", raising=False)
    monkeypatch.delenv("YINQI_CONSENT_DB", raising=False)


@pytest.fixture
def make_model(tmp_path: Path) -> Callable[..., Path]:
    """`make_model(pd, name)` -> a model directory that gives every merchant default probability `pd`."""
    import torch

    from federation.model import build_model, save_model, write_report
    from federation.preprocess import Encoder, compute_stats

    encoder = Encoder.from_stats(compute_stats(FEATURES))

    def make(pd_value: float, name: str | None = None, report: dict | None = None) -> Path:
        model = build_model(encoder.n_features, "logistic")
        with torch.no_grad():
            model[0].weight.zero_()
            model[0].bias.fill_(math.log(pd_value / (1 - pd_value)))
        out = tmp_path / "trained" / (name or f"pd{pd_value}")
        save_model(out, model, encoder, {"architecture": "logistic"})
        write_report(
            out,
            report
            or {
                "rounds": [
                    {"round": 1, "federated_auc": 0.70, "federated_ks": 0.30, "dropped": []},
                    {"round": 2, "federated_auc": 0.75, "federated_ks": 0.35, "dropped": ["platform_3"]},
                ],
                "final": {"federated_auc": 0.75, "federated_ks": 0.35},
                "participants": ["platform_1", "platform_2", "platform_3"],
                "epsilon": {"platform_1": 2.5, "platform_2": 2.75, "platform_3": 3.0},
            },
        )
        return out

    return make
