"""FedAvg (McMahan et al., 2017), FedProx (Li et al., 2020), FedAvgM (Hsu et al., 2019) and
FedAdam (Reddi et al., 2021) for the bank, with bookkeeping and defences.

Flower's legacy strategies (the only ones SecAgg+ runs with in flwr 1.42) plus what the bank
needs on top:

- platforms send their round's *update* (new minus global weights, clipped to the norm bound);
  the bank adds the checked aggregate to the global model, then lets the Flower strategy do its
  server step (plain averaging, momentum or Adam);
- each aggregate is checked (`server.fl.guard`): finite, within the norm bound, not worse on the
  bank's validation file; a refused one leaves the model as it was, the next rounds leave one
  platform out in turn, and a platform the failures follow is excluded with its reason;
- each platform's AUC on its own rows is reported, outliers are flagged and left out of the
  federated AUC, and a platform flagged again and again is excluded;
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from flwr.common import (
    EvaluateIns,
    EvaluateRes,
    FitIns,
    FitRes,
    Parameters,
    Scalar,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.server.client_manager import ClientManager, SimpleClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.criterion import Criterion
from flwr.server.strategy import FedAdam, FedAvg, FedAvgM, FedProx

from server.fl.errors import FederationError, TrainingDiverged
from server.fl.guard import AggregateCheck, Guard, PlatformEvaluation, check_aggregate, evaluation_outliers
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

    def exclude(self, node_id: int) -> None:
        """Never sample this node again (the bank excluded its platform)."""
        self.accepted.accepted.discard(node_id)

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


ValidationLoss = Callable[[list[np.ndarray]], float]


class _Bank:
    """Mix-in adding the bank's bookkeeping and defences to a legacy Flower strategy."""

    recorder: RunRecorder
    encoder_json: str
    guard: Guard
    bound: float
    secagg: bool
    validation_loss: ValidationLoss | None
    clients: AcceptedClientManager | None
    current: list[np.ndarray]
    current_loss: float | None

    def _setup(
        self,
        recorder: RunRecorder,
        encoder_json: str,
        *,
        initial: list[np.ndarray],
        bound: float = 5.0,
        secagg: bool = True,
        guard: Guard | None = None,
        validation_loss: ValidationLoss | None = None,
    ) -> None:
        self.recorder = recorder
        self.encoder_json = encoder_json
        self.guard = guard or Guard(min_clients=recorder.min_clients)
        self.bound = bound
        self.secagg = secagg
        self.validation_loss = validation_loss
        self.clients = None
        self.current = [np.asarray(w).copy() for w in initial]
        self.current_loss = validation_loss(self.current) if validation_loss is not None else None

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        self.recorder.started[server_round] = time.perf_counter()
        record = self.recorder.round(server_round)
        self.recorder.report.current_round = server_round
        self.recorder.progress()
        if isinstance(client_manager, AcceptedClientManager):
            self.clients = client_manager
        self.current = parameters_to_ndarrays(parameters)
        instructions = super().configure_fit(server_round, parameters, client_manager)  # type: ignore[misc]
        names = {proxy.node_id: self.recorder.name(proxy) for proxy, _ in instructions}
        chosen, left_out = self.guard.choose(sorted(names.values()))
        instructions = [(proxy, ins) for proxy, ins in instructions if names[proxy.node_id] in chosen]
        record.left_out = left_out
        if left_out is not None:
            log.warning(
                "round %s: leaving platform %s out to find the cause of a refused aggregate", server_round, left_out
            )
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
            record.clients.append(_client_round(name, res, metrics))
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
        if not self.secagg:  # the bank sees single updates here: check each one
            contributing = self._checked_singles(server_round, record, contributing)
        if len(contributing) < self.recorder.min_clients:
            why = "; ".join([f"{k}: {v}" for k, v in sorted(record.refused.items())] + record.dropped) or "no replies"
            raise FederationError(
                f"round {server_round}: only {len(contributing)} platform update(s) could be aggregated "
                f"(need {self.recorder.min_clients}); the model was NOT updated. Reasons: {why}"
            )
        participants = sorted(self.recorder.name(proxy, res.metrics) for proxy, res in contributing)
        update = _weighted_mean([(parameters_to_ndarrays(res.parameters), res.num_examples) for _, res in contributing])
        candidate = [(w + u).astype(w.dtype) for w, u in zip(self.current, update, strict=True)]
        check = check_aggregate(update, self.bound, self.validation_loss, candidate, self.current_loss)
        record.check = check.to_dict()
        self._note_round(server_round, record, participants, check)
        if not check.passed:
            record.rejected = f"the bank refused this round's aggregate of {', '.join(participants)}: {check.reason}"
            log.warning("round %s: %s", server_round, record.rejected)
            return ndarrays_to_parameters(self.current), {}
        # The checked update, as new weights, goes through the Flower strategy's server step.
        as_weights = ndarrays_to_parameters(candidate)
        for _, res in contributing:
            res.parameters = as_weights
        parameters, metrics = super().aggregate_fit(server_round, contributing, [])  # type: ignore[misc]
        if parameters is None:
            raise FederationError(
                f"round {server_round}: the strategy produced no aggregate; the model was NOT updated"
            )
        new = parameters_to_ndarrays(parameters)
        if not all(np.isfinite(a).all() for a in new):
            raise TrainingDiverged(
                f"round {server_round}: the aggregate of {', '.join(participants)} is not finite; "
                "the run stops and no model is written"
            )
        self.current = new
        if self.validation_loss is not None:
            self.current_loss = self.validation_loss(new)
        record.participants = participants
        record.aggregated = True
        record.fit_seconds = time.perf_counter() - self.recorder.started.get(server_round, time.perf_counter())
        return parameters, metrics

    def _checked_singles(
        self, server_round: int, record: RoundReport, contributing: list[tuple[ClientProxy, FitRes]]
    ) -> list[tuple[ClientProxy, FitRes]]:
        """Without SecAgg+ each update is checked alone; one that fails is left out of the round."""
        kept = []
        for proxy, res in contributing:
            name = self.recorder.name(proxy, res.metrics)
            single = check_aggregate(parameters_to_ndarrays(res.parameters), self.bound)
            if single.passed:
                kept.append((proxy, res))
                continue
            reason = (single.reason or "").replace("the aggregate update", "its update")
            record.refused[name] = f"refused by the bank's check: {reason}"
            self._exclude(record, self.guard.record_single(server_round, name, reason))
        return kept

    def _note_round(
        self, server_round: int, record: RoundReport, participants: list[str], check: AggregateCheck
    ) -> None:
        excluded = self.guard.record_round(server_round, participants, record.left_out, check.passed)
        self._exclude(record, excluded)
        limit = len(participants) + self.guard.exclude_after
        if not check.passed and self.guard.rejected_in_a_row > limit:
            raise FederationError(
                f"round {server_round}: the bank refused the aggregate {self.guard.rejected_in_a_row} rounds in a row "
                f"({check.reason}) and leaving out any one platform did not help; the run stops, no model is written"
            )

    def _exclude(self, record: RoundReport, excluded: dict[str, str]) -> None:
        for name, reason in excluded.items():
            record.excluded[name] = reason
            self.recorder.report.excluded[name] = reason
            log.warning("platform %s is excluded from the run: %s", name, reason)
            if self.clients is not None:
                for node_id, node_name in self.recorder.node_names.items():
                    if node_name == name:
                        self.clients.exclude(node_id)

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
        """Each platform's AUC from its own histograms; outliers flagged and left out of the
        federated AUC (so no platform can inflate it); repeatedly flagged ones excluded."""
        from federation.metrics import auc_ks_from_histograms

        record = self.recorder.round(server_round)
        histograms: dict[str, tuple[np.ndarray, np.ndarray, float, int]] = {}
        for proxy, res in results:
            metrics = res.metrics or {}
            name = self.recorder.name(proxy, metrics)
            if metrics.get("refused") or res.num_examples <= 0 or name in self.guard.excluded:
                continue
            p = np.frombuffer(_histogram(metrics["pos-hist"]), dtype=np.int64)
            q = np.frombuffer(_histogram(metrics["neg-hist"]), dtype=np.int64)
            histograms[name] = (p, q, float(res.loss), int(res.num_examples))
        for failure in failures:
            record.dropped.append("evaluate: " + _failure_text(failure))
        evaluations = {}
        for name, (p, q, _, _) in histograms.items():
            auc, _ = auc_ks_from_histograms(p, q)
            record.platform_auc[name] = auc
            evaluations[name] = PlatformEvaluation(
                auc, int(p.sum()), int(q.sum()), rows_declared=self.recorder.report.rows.get(name)
            )
        record.flagged = evaluation_outliers(evaluations)
        for name, reason in record.flagged.items():
            log.warning("round %s: platform %s's evaluation is left out: %s", server_round, name, reason)
        self._exclude(record, self.guard.record_evaluation(server_round, record.flagged, sorted(evaluations)))
        pos = neg = None
        loss_sum, n = 0.0, 0
        for name, (p, q, loss, examples) in histograms.items():
            if name in record.flagged:
                continue
            pos = p.copy() if pos is None else pos + p
            neg = q.copy() if neg is None else neg + q
            loss_sum += loss * examples
            n += examples
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


def _client_round(name: str, res: FitRes, metrics: dict[str, Any]) -> ClientRound:
    def number(key: str) -> float | None:
        return float(metrics[key]) if key in metrics else None

    refused = metrics.get("refused")
    return ClientRound(
        platform=name,
        examples=int(metrics["rows"]) if "rows" in metrics else int(res.num_examples),
        epsilon=number("epsilon"),
        loss=number("loss"),
        train_seconds=number("train-seconds"),
        refused=str(refused) if refused else None,
        noise_multiplier=number("noise-multiplier"),
        sample_rate=number("sample-rate"),
        dp_steps=int(metrics["dp-steps"]) if "dp-steps" in metrics else None,
        dp_noise=str(metrics["dp-noise"]) if "dp-noise" in metrics else None,
        diverged=str(metrics["diverged"]) if "diverged" in metrics else None,
        unit=str(metrics["unit"]) if "unit" in metrics else None,
        units=int(metrics["units"]) if "units" in metrics else None,
        rows=int(metrics["rows"]) if "rows" in metrics else None,
        lr=number("lr"),
        max_grad_norm=number("max-grad-norm"),
        update_clipped=bool(metrics.get("update-clipped", 0)),
    )


def _weighted_mean(parts: list[tuple[list[np.ndarray], int]]) -> list[np.ndarray]:
    total = float(sum(weight for _, weight in parts))
    return [
        sum((np.asarray(arrays[i], dtype=np.float64) * weight for arrays, weight in parts), np.zeros(())) / total
        for i in range(len(parts[0][0]))
    ]


def _histogram(value: Scalar) -> bytes:
    """A platform's score histogram as sent (int64 counts as bytes); anything else is refused."""
    if not isinstance(value, bytes):
        raise FederationError(f"a platform sent a score histogram of type {type(value).__name__}, not bytes")
    return value


class BankFedAvg(_Bank, FedAvg):
    """FedAvg with the bank's bookkeeping."""


class BankFedProx(_Bank, FedProx):
    """FedProx (proximal term mu sent to the platforms) with the bank's bookkeeping."""


class BankFedAvgM(_Bank, FedAvgM):
    """FedAvg with server momentum (0.9, server learning rate 1) and the bank's bookkeeping."""


class BankFedAdam(_Bank, FedAdam):
    """FedAdam (server-side Adam on the averaged update) with the bank's bookkeeping."""


BankStrategy = BankFedAvg | BankFedProx | BankFedAvgM | BankFedAdam


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
    bound: float = 5.0,
    secagg: bool = True,
    guard: Guard | None = None,
    validation_loss: ValidationLoss | None = None,
) -> BankStrategy:
    """The strategy for `name` ("fedavg" | "fedprox" | "fedavgm" | "fedadam"), sampling every
    available accepted platform each round (less one while probing for a poisoning platform); a
    round starts once `min_clients` are available (a platform that died is not waited for)."""
    from flwr.common import ndarrays_to_parameters

    common: dict[str, Any] = dict(
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
    strategy: BankStrategy
    if name == "fedprox":
        strategy = BankFedProx(proximal_mu=mu, **common)
    elif name == "fedavg":
        strategy = BankFedAvg(**common)
    elif name == "fedavgm":
        strategy = BankFedAvgM(server_learning_rate=1.0, server_momentum=0.9, **common)
    elif name == "fedadam":
        strategy = BankFedAdam(eta=0.1, eta_l=0.1, beta_1=0.9, beta_2=0.99, tau=1e-3, **common)
    else:
        raise FederationError(f"strategy '{name}' unknown; expected fedavg, fedprox, fedavgm or fedadam")
    strategy._setup(
        recorder,
        encoder_json,
        initial=initial,
        bound=bound,
        secagg=secagg,
        guard=guard,
        validation_loss=validation_loss,
    )
    return strategy


def encoder_to_json(encoder: Any) -> str:
    return json.dumps(encoder.to_dict(), sort_keys=True)
