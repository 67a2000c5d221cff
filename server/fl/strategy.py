"""FedAvg (McMahan et al., 2017) and FedProx (Li et al., 2020) for the bank, with bookkeeping.

Flower's legacy strategies (the only ones SecAgg+ runs with in flwr 1.42) plus what the bank
needs on top:

- every round's fit config carries the round number and the agreed encoder;
- refusals (weight 0: bad data, privacy budget spent, a run below the platform's own policy)
  and failures are recorded per platform and logged, the round goes on with the others; a round
  in which fewer than `min_clients` platforms' updates were aggregated raises `FederationError`
  instead of silently keeping the old model;
- a platform whose local training diverged (non-finite loss or weights; it sends no update),
  or an aggregate that is not finite, stops the run (`TrainingDiverged`): no model is written
  and the report names the platform and the round;
- federated evaluation sums the platforms' per-class score histograms into AUC/KS;
- the bank's own held-out file (optional) is scored centrally each round.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from flwr.common import EvaluateIns, EvaluateRes, FitIns, FitRes, Parameters, Scalar, parameters_to_ndarrays
from flwr.server.client_manager import ClientManager, SimpleClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.criterion import Criterion
from flwr.server.strategy import FedAvg, FedProx

from server.fl.errors import FederationError, TrainingDiverged
from server.fl.report import ClientRound, Report, RoundReport

log = logging.getLogger("yinqi.fl")


class _Accepted(Criterion):
    def __init__(self, accepted: set[int]) -> None:
        self.accepted = accepted

    def select(self, client: ClientProxy) -> bool:
        return client.node_id in self.accepted


class AcceptedClientManager(SimpleClientManager):
    """Samples only the nodes whose data passed the preprocessing round (the others stay
    registered, as Flower's node-update thread requires, but never get a round)."""

    def __init__(self, accepted: set[int]) -> None:
        super().__init__()
        self.accepted = _Accepted(accepted)

    def all(self) -> dict[str, ClientProxy]:
        return {cid: proxy for cid, proxy in super().all().items() if self.accepted.select(proxy)}

    def num_available(self) -> int:
        return len(self.all())

    def sample(
        self, num_clients: int, min_num_clients: int | None = None, criterion: Criterion | None = None
    ) -> list[ClientProxy]:
        return super().sample(num_clients, min_num_clients, criterion or self.accepted)


class RunRecorder:
    """Collects the report while the strategy runs (and writes it as progress, if given a path)."""

    def __init__(self, report: Report, node_names: dict[int, str], min_clients: int, path: Path | None = None) -> None:
        self.report = report
        self.node_names = node_names
        self.min_clients = min_clients
        self.path = path
        self.rounds: dict[int, RoundReport] = {}
        self.started: dict[int, float] = {}
        self.sampled: dict[int, list[ClientProxy]] = {}

    def progress(self) -> None:
        """Write the report as it stands (status "running"): an interrupted run keeps its rounds."""
        if self.path is not None:
            self.report.write(self.path)

    def round(self, server_round: int) -> RoundReport:
        if server_round not in self.rounds:
            self.rounds[server_round] = RoundReport(round=server_round)
            self.report.rounds.append(self.rounds[server_round])
        return self.rounds[server_round]

    def name(self, proxy: ClientProxy, metrics: dict[str, Any] | None = None) -> str:
        if metrics and metrics.get("platform") not in (None, "?"):
            return str(metrics["platform"])
        return self.node_names.get(proxy.node_id, str(proxy.node_id))

    def aggregated(self, server_round: int) -> bool:
        return server_round in self.rounds and self.rounds[server_round].aggregated


def _failure_text(failure: Any) -> str:
    if isinstance(failure, BaseException):
        return str(failure).splitlines()[0][:300] if str(failure) else type(failure).__name__
    _, res = failure
    return f"status {res.status.code.name}: {res.status.message}"


class _Bank:
    """Mix-in adding the bank's bookkeeping to a legacy Flower strategy."""

    recorder: RunRecorder
    encoder_json: str

    def _setup(self, recorder: RunRecorder, encoder_json: str) -> None:
        self.recorder = recorder
        self.encoder_json = encoder_json

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        self.recorder.started[server_round] = time.perf_counter()
        self.recorder.round(server_round)
        self.recorder.report.current_round = server_round
        self.recorder.progress()
        instructions = super().configure_fit(server_round, parameters, client_manager)  # type: ignore[misc]
        self.recorder.sampled[server_round] = [proxy for proxy, _ in instructions]
        for _, ins in instructions:
            # `platforms`: how many this round samples (a platform's policy may ask for a minimum).
            ins.config = {
                **ins.config,
                "round": server_round,
                "encoder": self.encoder_json,
                "platforms": len(instructions),
            }
        return instructions

    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, FitRes]],
        failures: list[tuple[ClientProxy, FitRes] | BaseException],
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        record = self.recorder.round(server_round)
        contributing = []
        diverged: list[str] = []
        for proxy, res in results:
            metrics = dict(res.metrics or {})
            name = self.recorder.name(proxy, metrics)
            refused = metrics.get("refused")
            record.clients.append(
                ClientRound(
                    platform=name,
                    examples=int(res.num_examples),
                    epsilon=float(metrics["epsilon"]) if "epsilon" in metrics else None,
                    loss=float(metrics["loss"]) if "loss" in metrics else None,
                    train_seconds=float(metrics["train-seconds"]) if "train-seconds" in metrics else None,
                    clamped=int(metrics.get("clamped", 0)),
                    refused=str(refused) if refused else None,
                    noise_multiplier=float(metrics["noise-multiplier"]) if "noise-multiplier" in metrics else None,
                    sample_rate=float(metrics["sample-rate"]) if "sample-rate" in metrics else None,
                    dp_steps=int(metrics["dp-steps"]) if "dp-steps" in metrics else None,
                    dp_noise=str(metrics["dp-noise"]) if "dp-noise" in metrics else None,
                    diverged=str(metrics["diverged"]) if "diverged" in metrics else None,
                )
            )
            if "epsilon" in metrics:  # spent, whether or not the update is used
                self.recorder.report.epsilon[name] = float(metrics["epsilon"])
            if "dp-noise" in metrics:
                self.recorder.report.dp_noise[name] = str(metrics["dp-noise"])
            if "diverged" in metrics:
                diverged.append(str(metrics["diverged"]))
                continue
            if refused or res.num_examples <= 0:
                record.refused[name] = str(refused or "no examples")
                log.warning("round %s: platform %s refused: %s", server_round, name, record.refused[name])
                continue
            contributing.append((proxy, res))
            record.participants.append(name)
        record.participants.sort()
        record.clients.sort(key=lambda c: c.platform)
        if diverged:
            raise TrainingDiverged(
                f"round {server_round}: {'; '.join(sorted(diverged))}; the run stops and no model is written"
            )
        # Sampled platforms with no result: dropped mid-round (SecAgg+ recovers their masks) or failed.
        answered = {proxy.node_id for proxy, _ in results} | {f[0].node_id for f in failures if isinstance(f, tuple)}
        for proxy in self.recorder.sampled.get(server_round, []):
            if proxy.node_id not in answered:
                record.dropped.append(f"{self.recorder.name(proxy)}: no update this round (dropped or failed)")
        for failure in failures:
            text = _failure_text(failure)
            if isinstance(failure, tuple):
                text = f"{self.recorder.name(failure[0])}: {text}"
            record.dropped.append(text)
        if len(contributing) < self.recorder.min_clients:
            why = "; ".join([f"{k}: {v}" for k, v in sorted(record.refused.items())] + record.dropped) or "no replies"
            raise FederationError(
                f"round {server_round}: only {len(contributing)} platform update(s) could be aggregated "
                f"(need {self.recorder.min_clients}); the model was NOT updated. Reasons: {why}"
            )
        # Failures were recorded above; aggregate the platforms that did contribute.
        parameters, metrics = super().aggregate_fit(server_round, contributing, [])  # type: ignore[misc]
        if parameters is None:
            raise FederationError(
                f"round {server_round}: the strategy produced no aggregate; the model was NOT updated"
            )
        if not all(np.isfinite(a).all() for a in parameters_to_ndarrays(parameters)):
            raise TrainingDiverged(
                f"round {server_round}: the aggregate of {', '.join(record.participants)} is not finite; "
                "the run stops and no model is written"
            )
        record.aggregated = True
        record.fit_seconds = time.perf_counter() - self.recorder.started.get(server_round, time.perf_counter())
        return parameters, metrics

    def configure_evaluate(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, EvaluateIns]]:
        instructions = super().configure_evaluate(server_round, parameters, client_manager)  # type: ignore[misc]
        for _, ins in instructions:
            ins.config = {**ins.config, "round": server_round, "encoder": self.encoder_json}
        return instructions

    def aggregate_evaluate(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, EvaluateRes]],
        failures: list[tuple[ClientProxy, EvaluateRes] | BaseException],
    ) -> tuple[float | None, dict[str, Scalar]]:
        from federation.metrics import auc_ks_from_histograms

        record = self.recorder.round(server_round)
        pos = neg = None
        loss_sum, n = 0.0, 0
        for _, res in results:
            metrics = res.metrics or {}
            if metrics.get("refused") or res.num_examples <= 0:
                continue
            p = np.frombuffer(_histogram(metrics["pos-hist"]), dtype=np.int64)
            q = np.frombuffer(_histogram(metrics["neg-hist"]), dtype=np.int64)
            pos = p.copy() if pos is None else pos + p
            neg = q.copy() if neg is None else neg + q
            loss_sum += float(res.loss) * res.num_examples
            n += res.num_examples
        for failure in failures:
            record.dropped.append("evaluate: " + _failure_text(failure))
        out: dict[str, Scalar] = {}
        if pos is not None and neg is not None:
            auc, ks = auc_ks_from_histograms(pos, neg)
            record.federated_auc, record.federated_ks = auc, ks
            both = pos + neg  # the latest round's scores of the training population, for monitoring
            self.recorder.report.agreement["scores"] = {
                "bins": len(both),
                "counts": {str(i): int(c) for i, c in enumerate(both) if c},
            }
            record.federated_loss = loss_sum / max(n, 1)
            out = {"auc": auc, "ks": ks}
        record.seconds = time.perf_counter() - self.recorder.started.get(server_round, time.perf_counter())
        self.recorder.progress()
        return (loss_sum / n if n else None), out


def _histogram(value: Scalar) -> bytes:
    """A platform's score histogram as sent (int64 counts as bytes); anything else is refused."""
    if not isinstance(value, bytes):
        raise FederationError(f"a platform sent a score histogram of type {type(value).__name__}, not bytes")
    return value


class BankFedAvg(_Bank, FedAvg):
    """FedAvg with the bank's bookkeeping."""


class BankFedProx(_Bank, FedProx):
    """FedProx (proximal term mu sent to the platforms) with the bank's bookkeeping."""


def _no_metrics(_: list[tuple[int, dict[str, Scalar]]]) -> dict[str, Scalar]:
    return {}


def make_strategy(
    name: str,
    *,
    recorder: RunRecorder,
    encoder_json: str,
    min_clients: int,
    initial: list[np.ndarray],
    mu: float,
    evaluate_fn: Any = None,
) -> BankFedAvg | BankFedProx:
    """The strategy for `name` ("fedavg" | "fedprox"), sampling every available accepted platform
    each round; a round starts once `min_clients` are available (a platform that died is not
    waited for)."""
    from flwr.common import ndarrays_to_parameters

    common = dict(
        fraction_fit=1.0,
        fraction_evaluate=1.0,
        min_fit_clients=min_clients,
        min_evaluate_clients=min_clients,
        min_available_clients=min_clients,
        initial_parameters=ndarrays_to_parameters(initial),
        evaluate_fn=evaluate_fn,
        accept_failures=False,
        fit_metrics_aggregation_fn=_no_metrics,  # per-platform metrics go to the report instead
    )
    strategy: BankFedAvg | BankFedProx
    if name == "fedprox":
        strategy = BankFedProx(proximal_mu=mu, **common)
    elif name == "fedavg":
        strategy = BankFedAvg(**common)
    else:
        raise FederationError(f"strategy '{name}' unknown; expected fedavg or fedprox")
    strategy._setup(recorder, encoder_json)
    return strategy


def encoder_to_json(encoder: Any) -> str:
    return json.dumps(encoder.to_dict(), sort_keys=True)
