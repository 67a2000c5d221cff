"""The bank's Flower ServerApp: preprocessing agreement, FedAvg/FedProx rounds (SecAgg+ by
default), federated evaluation, then the model directory and `report.json`.

The same `app` runs on the Simulation Engine (`yinqi.harness.federated.run_federation`) and on a real
SuperLink (`server.deploy`). Everything it needs is in `context.run_config`
(`FederationConfig.to_run_config()`); it writes its results to the run's `out` directory.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from federation.adapters import flwr as adapter

if TYPE_CHECKING:  # pragma: no cover
    from federation.preprocess import Encoder
    from server.fl.config import FederationConfig
    from server.fl.report import Report
    from server.fl.strategy import RunRecorder

app = ServerApp()
log = logging.getLogger("yinqi.fl")


def secagg_shape(n_clients: int) -> tuple[float, float]:
    """(num_shares, reconstruction_threshold) as fractions, so SecAgg+ adapts each round to the
    platforms actually sampled (one may have died since the last round).

    Up to 5 platforms every platform holds a share and any two thirds reconstruct: with 3 that is
    3 shares and a threshold of 2. More platforms: 5 neighbours (odd, as SecAgg+ wants) with a
    threshold of 3, so the cost per platform stays flat.
    """
    if n_clients <= 5:
        return 1.0, 2 / 3
    return 5 / n_clients, 0.6


def _validation_loss(cfg: FederationConfig, encoder: Encoder) -> Callable[[list[Any]], float] | None:
    """The bank's loss on its own labeled validation file (if any), for checking aggregates."""
    if cfg.validation is None:
        return None
    import numpy as np

    from federation.model import build_model, predict_proba_array, set_weights
    from federation.preprocess import load_labeled

    table = load_labeled(cfg.validation, label=cfg.label, positive=cfg.positive, unit_column=cfg.unit_column)
    x = encoder.transform(table.frame, file=str(cfg.validation))
    y = table.y.astype(np.float64)
    model = build_model(encoder.n_features, cfg.architecture, cfg.hidden, cfg.seed)

    def loss(weights: list[Any]) -> float:
        set_weights(model, weights)
        p = np.clip(predict_proba_array(model, x), 1e-7, 1 - 1e-7)
        return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())

    return loss


def _central_evaluator(
    cfg: FederationConfig, encoder: Encoder, recorder: RunRecorder
) -> Callable[[int, list[Any], dict[str, Any]], tuple[float, dict[str, Any]]] | None:
    """The bank scores its own held-out file (if any) with each round's global model."""
    if cfg.test is None:
        return None
    import numpy as np

    from federation.metrics import ks_statistic, roc_auc
    from federation.model import build_model, predict_proba_array, set_weights
    from federation.preprocess import load_labeled

    table = load_labeled(cfg.test, label=cfg.label, positive=cfg.positive, unit_column=cfg.unit_column)
    x = encoder.transform(table.frame, file=str(cfg.test))
    y = table.y.astype(np.int64)
    model = build_model(encoder.n_features, cfg.architecture, cfg.hidden, cfg.seed)

    def evaluate(server_round: int, weights: list[Any], _config: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        set_weights(model, weights)
        p = np.clip(predict_proba_array(model, x), 1e-7, 1 - 1e-7)
        loss = float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())
        auc, ks = roc_auc(y, p), ks_statistic(y, p)
        if server_round == 0:
            recorder.report.initial = {"test_auc": auc, "test_ks": ks, "test_loss": loss}
        else:
            record = recorder.round(server_round)
            record.test_auc, record.test_ks = auc, ks
        return loss, {"auc": auc, "ks": ks}

    return evaluate


def _checked(fit_workflow: Callable[[Grid, Context], None], recorder: RunRecorder) -> Callable[[Grid, Context], None]:
    """Run one fit round; a round that aggregated nothing is an error, never a silent no-op (a
    round whose aggregate the bank's checks refused is on record with its reason)."""
    import numpy as np

    from server.fl.errors import FederationError

    def run(grid: Grid, context: Context) -> None:
        server_round = adapter.current_round(context)
        try:
            # SecAgg+ divides by the summed weights: with every platform refusing that is 0/0,
            # which numpy only warns about; the check below turns it into a clear error.
            with np.errstate(divide="ignore", invalid="ignore"):
                fit_workflow(grid, context)
        except FederationError:
            raise
        except Exception as exc:  # SecAgg+ unmasking with zero total weight, etc.
            raise FederationError(
                f"round {server_round}: aggregation failed ({type(exc).__name__}: {exc}); the model was NOT updated"
            ) from exc
        if not recorder.aggregated(server_round) and not recorder.round(server_round).rejected:
            record = recorder.round(server_round)
            why = (
                "; ".join([f"{k}: {v}" for k, v in record.refused.items()] + record.dropped)
                or "the secure-aggregation protocol halted (too few platforms answered)"
            )
            raise FederationError(
                f"round {server_round}: no platform's update was aggregated; the model was NOT updated. Reasons: {why}"
            )

    return run


def run_server(grid: Grid, context: Context) -> None:
    """The bank's whole run (the ServerApp's main)."""
    from federation.model import ENCODER_FILE, META_FILE, MODEL_FILE
    from server.fl.config import FederationConfig
    from server.fl.errors import FederationError, RunInterrupted
    from server.fl.report import Report

    started = time.perf_counter()
    cfg = FederationConfig.from_run_config(dict(context.run_config))
    cfg.out.mkdir(parents=True, exist_ok=True)
    # The directory holds this run's outputs: a model from an earlier run is removed first (its
    # meta.json, the commit mark, before the rest), so a failed run never sits beside one.
    for name in (META_FILE, MODEL_FILE, ENCODER_FILE):
        (cfg.out / name).unlink(missing_ok=True)
    report = Report(
        engine=str(context.run_config.get("engine", "simulation")),
        status="running",
        settings={k: v for k, v in cfg.to_run_config().items() if k not in ("client-files",)},
        platforms=list(cfg.platform_names),
    )

    try:
        _run_rounds(grid, context, cfg, report, started)
    except FederationError as exc:
        # The failure is loud (raised) and also on record, with every round's reasons so far.
        if isinstance(exc, RunInterrupted):
            done = sum(1 for r in report.rounds if r.aggregated and r.federated_auc is not None)
            exc = RunInterrupted(
                f"interrupted at round {report.current_round} of {cfg.rounds} ({done} round(s) completed); "
                "no model written"
            )
            report.status = "interrupted"
        else:
            report.status = "failed"
        report.error = str(exc)
        report.seconds = time.perf_counter() - started
        report.settings["dp-noise"] = report.noise_summary
        report.write(cfg.out / "report.json")
        raise exc from None


def _run_rounds(grid: Grid, context: Context, cfg: FederationConfig, report: Report, started: float) -> None:
    from flwr.common import parameters_to_ndarrays
    from flwr.compat.common.recorddict_compat import arrayrecord_to_parameters
    from flwr.server import LegacyContext, ServerConfig
    from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow

    from federation.model import build_model, get_weights, save_model, set_weights
    from server.fl.agreement import agree, collect_stats, wait_for_nodes
    from server.fl.errors import FederationError
    from server.fl.guard import Guard
    from server.fl.strategy import AcceptedClientManager, RunRecorder, encoder_to_json, make_strategy

    # 1. Preprocessing agreement from aggregates.
    node_ids = wait_for_nodes(grid, len(cfg.clients), cfg.node_wait_seconds)
    agreement = agree(collect_stats(grid, node_ids), cfg.max_categories)
    report.refused = dict(agreement.refused)
    report.rows = dict(agreement.rows)
    if agreement.stats is not None:
        report.agreement["stats"] = agreement.stats.to_dict()
    report.participants = sorted(agreement.accepted.values())
    if len(agreement.accepted) < cfg.min_clients or agreement.encoder is None:
        reasons = (
            "; ".join(f"{k}: {v}" for k, v in sorted(agreement.refused.items())) or f"{len(node_ids)} node(s) connected"
        )
        raise FederationError(
            f"only {len(agreement.accepted)} platform(s) have usable data (need {cfg.min_clients}); refused: {reasons}"
        )
    for name, reason in agreement.refused.items():
        log.warning("platform %s refused: %s", name, reason)
    encoder = agreement.encoder
    n_ok = len(agreement.accepted)
    _describe_privacy(cfg, agreement, report)

    # 2. Strategy, SecAgg+ and the rounds.
    initial_model = build_model(encoder.n_features, cfg.architecture, cfg.hidden, cfg.seed)
    recorder = RunRecorder(report, agreement.node_names, cfg.min_clients, cfg.out / "report.json")
    strategy = make_strategy(
        cfg.strategy,
        recorder=recorder,
        encoder_json=encoder_to_json(encoder),
        min_clients=cfg.min_clients,
        initial=get_weights(initial_model),
        mu=cfg.mu,
        evaluate_fn=_central_evaluator(cfg, encoder, recorder),
        bound=cfg.update_bound,
        secagg=cfg.secagg,
        # Leaving one platform out must keep a round within the platforms' policies: by default
        # each wants 2 others in a SecAgg+ round, so probing needs 3 left.
        guard=Guard(exclude_after=cfg.exclude_after, min_clients=max(cfg.min_clients, 3 if cfg.secagg else 1)),
        validation_loss=_validation_loss(cfg, encoder),
    )
    legacy = LegacyContext(
        context=context,
        config=ServerConfig(num_rounds=cfg.rounds),
        strategy=strategy,
        client_manager=AcceptedClientManager(set(agreement.accepted)),
    )
    if cfg.secagg:
        shares, threshold = secagg_shape(n_ok)
        # A platform's weight is its unit count (rows without DP); SecAgg+'s clipping range is
        # the update norm bound, set deliberately: no platform's part of the sum can exceed it.
        weights = agreement.units if cfg.dp else agreement.rows
        fit = SecAggPlusWorkflow(
            num_shares=shares,
            reconstruction_threshold=threshold,
            max_weight=float(max(weights.values()) + 1),
            clipping_range=cfg.update_bound,
        )
    else:
        fit = adapter.plain_fit_workflow()
    DefaultWorkflow(fit_workflow=_checked(fit, recorder))(grid, legacy)

    # 3. The model directory and the report.
    parameters = arrayrecord_to_parameters(legacy.state.array_records[adapter.main_params_record()], keep_input=True)
    final = build_model(encoder.n_features, cfg.architecture, cfg.hidden, cfg.seed)
    set_weights(final, parameters_to_ndarrays(parameters))
    last = report.rounds[-1] if report.rounds else None
    report.final = {
        "test_auc": last.test_auc if last else None,
        "test_ks": last.test_ks if last else None,
        "federated_auc": last.federated_auc if last else None,
        "federated_ks": last.federated_ks if last else None,
    }
    if cfg.dp:
        _cross_check_accounting(report, cfg.delta)
    report.seconds = time.perf_counter() - started
    report.model_dir = str(cfg.out)
    report.settings["dp-noise"] = report.noise_summary
    meta = {
        "architecture": cfg.architecture,
        "hidden": cfg.hidden,
        "label": cfg.label,
        "positive": cfg.positive,
        "mode": "federated",
        "strategy": cfg.strategy,
        "rounds": cfg.rounds,
        "dp": cfg.dp,
        "secagg": cfg.secagg,
        "epsilon_spent": report.epsilon,
        "dp_noise": report.noise_summary,
        "privacy_unit": report.unit_summary if cfg.dp else None,
        "unit_column": cfg.unit_column,
        "weak_guarantee": report.weak_guarantee,
        "participants": report.participants,
    }
    report.version_hash = save_model(cfg.out, final, encoder, meta)
    report.status = "ok"
    report.write(cfg.out / "report.json")


def _describe_privacy(cfg: FederationConfig, agreement: Any, report: Report) -> None:
    """The report says, before any round, what ε is about and how each platform will train."""
    from federation.plan import describe
    from federation.privacy import weak_guarantee

    for name in sorted(agreement.accepted.values()):
        report.privacy_unit[name] = {
            "unit": agreement.unit.get(name, "row"),
            "units": agreement.units.get(name, agreement.rows.get(name, 0)),
            "rows": agreement.rows.get(name, 0),
        }
    units = {name: int(v["units"]) for name, v in report.privacy_unit.items()}
    report.plan = {
        **describe(cfg.plan_request(), units, report.unit_summary or "row"),
        "rounds": cfg.rounds,
        "server": cfg.strategy,
        "update_bound": cfg.update_bound,
        "secagg_clipping_range": cfg.update_bound if cfg.secagg else None,
        "shared_by_platforms": "row and unit counts, per-column sketches and value counts (the agreement); "
        "score histograms each round",
    }
    report.settings["privacy-unit"] = report.unit_summary if cfg.dp else None
    if cfg.dp:
        rowlevel = sorted(n for n, v in report.privacy_unit.items() if v["unit"] == "row")
        if rowlevel and cfg.unit_column != "row":
            log.warning(
                "platforms %s have no '%s' column: each of their rows is its own privacy unit",
                ", ".join(rowlevel),
                cfg.unit_column,
            )
        report.weak_guarantee = weak_guarantee(cfg.epsilon)
        if report.weak_guarantee:
            log.warning("%s", report.weak_guarantee)
            report.settings["weak-guarantee"] = True


def _cross_check_accounting(report: Report, delta: float) -> None:
    """Each platform's reported ε against an independent accountant (Opacus' PRV) on the same
    noise, sampling and steps; a reported ε below it stops the run loudly (no model)."""
    from federation.privacy import AccountingMismatch, cross_check
    from server.fl.errors import FederationError

    for name in sorted(report.epsilon):
        last = next(
            (c for r in reversed(report.rounds) for c in r.clients if c.platform == name and c.dp_steps),
            None,
        )
        if last is None or last.noise_multiplier is None or last.sample_rate is None or last.dp_steps is None:
            continue
        history = [(last.noise_multiplier, last.sample_rate, last.dp_steps)]
        try:
            check = cross_check(history, delta, reported=report.epsilon[name], who=f"platform {name}")
        except AccountingMismatch as exc:
            raise FederationError(f"privacy accounting: {exc}; no model is written") from None
        report.accounting[name] = {**check.to_dict(), "unit": report.privacy_unit.get(name, {}).get("unit")}


@app.main()
def main(grid: Grid, context: Context) -> None:
    run_server(grid, context)
