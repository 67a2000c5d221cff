"""The yardstick: the same torch model, and a RandomForest, trained on the pooled files.

Only possible where one party may see every row (a benchmark, a bank's own data); it tells how
much federation and DP cost. The encoder is built from the same merged statistics the
federation would agree on, so the numbers are comparable.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from server.fl.config import FederationConfig
from server.fl.errors import FederationError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from federation.preprocess import Encoder


@dataclass
class CentralResult:
    """Test (or, without a test file, training) AUC/KS of the central models."""

    torch_auc: float
    torch_ks: float
    rf_auc: float | None = None
    rf_ks: float | None = None
    seconds: float = 0.0
    rows: int = 0
    refused: dict[str, str] = field(default_factory=dict)
    version_hash: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _pooled(cfg: FederationConfig) -> tuple[Encoder, np.ndarray, np.ndarray, dict[str, str]]:
    from federation.errors import YinqiError
    from federation.preprocess import Encoder, compute_stats, load_labeled, merge_stats

    tables, refused = [], {}
    for path, name in zip(cfg.clients, cfg.platform_names, strict=True):
        try:
            tables.append(load_labeled(path, label=cfg.label, positive=cfg.positive))
        except YinqiError as exc:
            refused[name] = str(exc)
    if not tables:
        raise FederationError("no usable training file: " + "; ".join(f"{k}: {v}" for k, v in refused.items()))
    encoder = Encoder.from_stats(merge_stats([compute_stats(t.frame, t.source) for t in tables]), cfg.max_categories)
    x = np.vstack([encoder.transform(t.frame, file=t.source) for t in tables])
    y = np.concatenate([t.y for t in tables]).astype(np.float32)
    return encoder, x, y, refused


def train_torch(cfg: FederationConfig, x: np.ndarray, y: np.ndarray, n_features: int) -> torch.nn.Module:
    """The federated model's architecture and plain (no-DP) optimiser, trained on all rows at
    once for as many epochs as the federation's rounds x local epochs."""
    from dataclasses import replace

    from clients.train import LocalTraining, train_local
    from federation.model import build_model
    from federation.plan import local_plan

    model = build_model(n_features, cfg.architecture, cfg.hidden, cfg.seed)
    plan = local_plan(replace(cfg.plan_request(), dp=False), len(x))
    settings = LocalTraining(
        epochs=cfg.rounds * plan.epochs,
        batch_size=plan.batch_size or len(x),
        lr=plan.lr,
        momentum=plan.momentum,
        seed=cfg.seed,
    )
    train_local(model, x, y, settings)
    return model


def train_central(cfg: FederationConfig, *, random_forest: bool = True, save: bool = True) -> CentralResult:
    """Train on the pooled client files; evaluate on `cfg.test` (else on the pooled rows)."""
    import torch

    from federation.metrics import ks_statistic, roc_auc
    from federation.model import predict_proba_array, save_model, write_report
    from federation.preprocess import load_labeled

    torch.set_num_threads(1)
    started = time.perf_counter()
    encoder, x, y, refused = _pooled(cfg)
    if cfg.test is not None:
        test = load_labeled(cfg.test, label=cfg.label, positive=cfg.positive)
        x_test, y_test = encoder.transform(test.frame, file=str(cfg.test)), test.y.astype(np.int64)
    else:
        x_test, y_test = x, y.astype(np.int64)
    model = train_torch(cfg, x, y, encoder.n_features)
    p = predict_proba_array(model, x_test)
    result = CentralResult(torch_auc=roc_auc(y_test, p), torch_ks=ks_statistic(y_test, p), rows=len(y), refused=refused)
    if random_forest:
        from sklearn.ensemble import RandomForestClassifier

        forest = RandomForestClassifier(n_estimators=200, min_samples_leaf=10, random_state=cfg.seed, n_jobs=2)
        forest.fit(x, y.astype(np.int64))
        q = forest.predict_proba(x_test)[:, 1]
        result.rf_auc, result.rf_ks = roc_auc(y_test, q), ks_statistic(y_test, q)
    result.seconds = time.perf_counter() - started
    if save:
        meta = {
            "architecture": cfg.architecture,
            "hidden": cfg.hidden,
            "label": cfg.label,
            "positive": cfg.positive,
            "mode": "central",
        }
        result.version_hash = save_model(cfg.out, model, encoder, meta)
        write_report(cfg.out, {"mode": "central", "settings": cfg.to_run_config(), **result.to_dict()})
    return result


def evaluate_model_dir(
    model_dir: str | Path, test: str | Path, label: str, positive: str | None
) -> tuple[float, float]:
    """AUC/KS of a saved model on a labeled file."""
    from federation.metrics import ks_statistic, roc_auc
    from federation.model import load_model
    from federation.preprocess import load_labeled

    table = load_labeled(test, label=label, positive=positive)
    p = load_model(model_dir).predict_proba(table.frame, file=str(test))
    return roc_auc(table.y, p), ks_statistic(table.y, p)
