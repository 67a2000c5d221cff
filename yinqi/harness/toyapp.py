"""A tiny numpy ServerApp/ClientApp pair for measuring the deployment engine alone.

It follows the same shape as the real apps (legacy FedAvg + SecAgg+ workflow, a conditional
`secaggplus_mod`, node config `partition-id`), trains a logistic regression on a few hundred
synthetic rows per node and writes a JSON report with per-round wall times to the path in the
run config key `report-path`. Benchmarks and tests use it to time rounds without torch.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Context, Message
from flwr.client import Client, NumPyClient
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.common import EvaluateRes, FitIns, FitRes, NDArrays, Parameters, Scalar, ndarrays_to_parameters
from flwr.server import LegacyContext, ServerConfig
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import FedAvg
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.serverapp import Grid, ServerApp

N_FEATURES = 10
_TRUE_W = np.linspace(-1.0, 1.0, N_FEATURES)


def _partition(seed: int, rows: int = 256) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, N_FEATURES))
    y = (x @ _TRUE_W + rng.normal(scale=0.5, size=rows) > 0).astype(np.float64)
    return x, y


def _loss_acc(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    p = 1.0 / (1.0 + np.exp(-(x @ w)))
    eps = 1e-9
    loss = float(-np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps)))
    return loss, float(np.mean((p > 0.5) == (y > 0.5)))


class _ToyClient(NumPyClient):
    def __init__(self, seed: int) -> None:
        self.x, self.y = _partition(seed)

    def fit(self, parameters: NDArrays, config: dict[str, Scalar]) -> tuple[NDArrays, int, dict[str, Scalar]]:
        w = parameters[0].copy()
        for _ in range(5):
            p = 1.0 / (1.0 + np.exp(-(self.x @ w)))
            w -= 0.5 * self.x.T @ (p - self.y) / len(self.y)
        return [np.clip(w, -7.5, 7.5)], len(self.y), {}

    def evaluate(self, parameters: NDArrays, config: dict[str, Scalar]) -> tuple[float, int, dict[str, Scalar]]:
        loss, acc = _loss_acc(parameters[0], self.x, self.y)
        return loss, len(self.y), {"accuracy": acc}


def _client_fn(context: Context) -> Client:
    return _ToyClient(int(context.node_config.get("partition-id", 0))).to_client()


def _secagg_when_asked(msg: Message, ctxt: Context, call_next: Callable[[Message, Context], Message]) -> Message:
    """Apply SecAgg+ only to messages that carry its configs (plain rounds stay plain)."""
    if msg.metadata.message_type == "train" and "secaggplus_configs" in msg.content.config_records:
        return secaggplus_mod(msg, ctxt, call_next)
    return call_next(msg, ctxt)


clientapp = ClientApp(client_fn=_client_fn, mods=[_secagg_when_asked])


class _TimedFedAvg(FedAvg):
    """FedAvg that stamps the start and end of every round (fit → evaluate)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.round_start: dict[int, float] = {}
        self.round_end: dict[int, float] = {}
        self.fit_counts: dict[int, int] = {}
        self.accuracy: dict[int, float] = {}

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        self.round_start[server_round] = time.perf_counter()
        return super().configure_fit(server_round, parameters, client_manager)

    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, FitRes]],
        failures: list[tuple[ClientProxy, FitRes] | BaseException],
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        self.fit_counts[server_round] = len(results)
        if not results:
            raise RuntimeError(f"round {server_round}: no client update was aggregated ({len(failures)} failures)")
        return super().aggregate_fit(server_round, results, failures)

    def aggregate_evaluate(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, EvaluateRes]],
        failures: list[tuple[ClientProxy, EvaluateRes] | BaseException],
    ) -> tuple[float | None, dict[str, Scalar]]:
        out = super().aggregate_evaluate(server_round, results, failures)
        total = sum(r.num_examples for _, r in results) or 1
        self.accuracy[server_round] = sum(float(r.metrics["accuracy"]) * r.num_examples for _, r in results) / total
        self.round_end[server_round] = time.perf_counter()
        return out


serverapp = ServerApp()


@serverapp.main()
def _main(grid: Grid, context: Context) -> None:
    cfg = context.run_config
    rounds = int(cfg.get("num-server-rounds", 2))
    clients = int(cfg.get("min-clients", 3))
    secagg = bool(cfg.get("use-secagg", True))
    strategy = _TimedFedAvg(
        fraction_fit=1.0,
        fraction_evaluate=1.0,
        min_fit_clients=clients,
        min_evaluate_clients=clients,
        min_available_clients=clients,
        accept_failures=False,
        initial_parameters=ndarrays_to_parameters([np.zeros(N_FEATURES)]),
    )
    legacy = LegacyContext(context=context, config=ServerConfig(num_rounds=rounds), strategy=strategy)
    fit = SecAggPlusWorkflow(num_shares=clients, reconstruction_threshold=max(2, clients - 1)) if secagg else None
    started = time.perf_counter()
    DefaultWorkflow(fit_workflow=fit)(grid, legacy)
    report = {
        "rounds": rounds,
        "secagg": secagg,
        "round_seconds": [strategy.round_end[r] - strategy.round_start[r] for r in sorted(strategy.round_end)],
        "fit_counts": [strategy.fit_counts.get(r, 0) for r in range(1, rounds + 1)],
        "accuracy": [strategy.accuracy[r] for r in sorted(strategy.accuracy)],
        "total_seconds": time.perf_counter() - started,
    }
    path = cfg.get("report-path")
    if path:
        Path(str(path)).write_text(json.dumps(report))
