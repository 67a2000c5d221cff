"""The platform's Flower ClientApp: preprocessing statistics, local (DP-)training, evaluation.

Three handlers, all speaking the legacy record layout that Flower 1.42's SecAgg+ needs
(`fitins.*` in, `fitres.*` out):

- `query`: the platform's aggregate statistics for the federated preprocessing agreement, or a
  refusal naming the file/column/row when its data is unusable.
- `train`: local training from the global weights, DP-SGD over privacy units (merchants by
  default: all of a merchant's rows sampled and clipped together) with the run's budget split
  over all rounds (accountant history kept in `context.state`), noise from OS entropy, ε and the
  unit recorded in the privacy ledger; past the budget the round is refused (weight 0, reason in
  the metrics) and the others go on. The reply is the round's *update* (new minus global
  weights), clipped to the run's L2 bound, weighted by the platform's unit count. A loss or
  update that is not finite is never sent: the reply says the local training diverged, and the
  bank stops the run.
- `evaluate`: per-class score histograms of the platform's own rows, never scores or rows.

Every handler first holds the bank's run to the platform's own policy (`clients.policy`, from
the node config): a run below it (no DP, no SecAgg+, ε or δ above the cap, seeded noise, too few
other platforms in a round) is refused with a one-line reason, logged on the platform's side
(`clients.refusals`) and returned to the bank.

SecAgg+ (`secaggplus_mod`) wraps `train` only when the message carries SecAgg+ configs, so
plain rounds are not broken by it. torch, opacus, pandas and SQLAlchemy are imported inside the
handlers: the three crypto-only SecAgg+ stages never load them.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp

from clients.policy import PrivacyPolicy
from clients.refusals import record_refusal
from clients.runconfig import ClientRunConfig
from federation.adapters import flwr as adapter
from federation.errors import DataError, YinqiError

if TYPE_CHECKING:  # pragma: no cover
    from federation.plan import LocalPlan
    from federation.preprocess import LabeledTable
    from federation.privacy import PrivacyState
    from federation.units import PrivacyUnits

STATE_RECORD = "yinqi"
SECAGG_CONFIGS_KEY = adapter.secagg_configs_key()
STATS_RECORD = "yinqi-stats"

app = ClientApp()


@dataclass
class NodeSettings:
    """What this platform's SuperNode was started with (`node_config`)."""

    data_path: str
    platform: str
    ledger_db: str
    epsilon_budget: float | None  # lifetime ε across runs (None: the run's ε caps the run)
    index: int
    consent_db: str | None = None
    policy: PrivacyPolicy = field(default_factory=PrivacyPolicy)
    node_config: dict[str, Any] = field(default_factory=dict)


def node_settings(context: Context) -> NodeSettings:
    """Read `data-path`, `platform-name`, `ledger-db`, `epsilon-budget`, `consent-db` and the
    policy from the node config (which only the platform sets).

    Under `flwr run` simulation, where nodes only get `partition-id`, the data file falls back to
    the run config's `client-files`/`platform-names` lists indexed by partition. The ledger never
    comes from the run config: the bank must not choose the book that caps its own requests.
    """
    node = dict(context.node_config)
    run = dict(context.run_config)
    index = int(node.get("partition-id", -1))
    path = node.get("data-path")
    name = node.get("platform-name")
    if path is None and index >= 0:
        files = [p for p in str(run.get("client-files", "")).split("|") if p]
        names = [p for p in str(run.get("platform-names", "")).split("|") if p]
        if index < len(files):
            path = files[index]
            name = name or (names[index] if index < len(names) else None)
    if path is None:
        raise DataError(
            "this SuperNode has no 'data-path' in its node config; start it with --node-config \"data-path=FILE\""
        )
    name = str(name or f"platform-{index if index >= 0 else context.node_id}")
    if index < 0:
        index = zlib.crc32(name.encode()) % 10_000
    ledger = node.get("ledger-db") or ""
    if not ledger:
        from federation.config import db_url

        ledger = db_url("platform")
    policy = PrivacyPolicy.from_node_config(node)
    budget = node.get("epsilon-budget")
    lifetime = float(budget) if budget not in (None, "") else policy.lifetime_epsilon
    if budget not in (None, "") and policy.lifetime_epsilon is not None:
        lifetime = min(float(budget), policy.lifetime_epsilon)
    consent = node.get("consent-db") or None
    return NodeSettings(
        str(path),
        name,
        str(ledger),
        lifetime,
        index,
        consent_db=consent and str(consent),
        policy=policy,
        node_config=node,
    )


class PolicyRefusal(YinqiError):
    """The bank's run or round is below this platform's policy (the message says how)."""


def _hold_to_policy(context: Context, settings: NodeSettings, cfg: ClientRunConfig, stage: str) -> None:
    """Raise `PolicyRefusal` (recorded on the platform's side) when the run is below the policy."""
    from clients.policy import run_refusal

    reason = run_refusal(settings.policy, settings.platform, cfg)
    if reason is not None:
        record_refusal(settings.node_config, context.run_id, stage, reason)
        raise PolicyRefusal(reason)


def _config(context: Context) -> ClientRunConfig:
    return ClientRunConfig.from_run_config(dict(context.run_config))


def _reply(msg: Message, config: dict[str, Any]) -> Message:
    return Message(RecordDict({STATS_RECORD: ConfigRecord(config)}), reply_to=msg)


@app.query()
def query(msg: Message, context: Context) -> Message:
    """Local aggregates for the preprocessing agreement (or a one-line refusal)."""
    from clients.data import load_platform_table, local_stats

    platform = "?"
    try:
        settings = node_settings(context)
        platform = settings.platform
        cfg = _config(context)
        _hold_to_policy(context, settings, cfg, "statistics")
        table = load_platform_table(
            settings.data_path, cfg.label, cfg.positive, consent_db=settings.consent_db, unit_column=cfg.unit_column
        )
        stats = local_stats(table)
        return _reply(msg, {"platform": platform, "stats": json.dumps(stats.to_dict())})
    except YinqiError as exc:
        return _reply(msg, {"platform": platform, "refused": str(exc)})


def secaggplus_when_requested(msg: Message, ctxt: Context, call_next: Callable[[Message, Context], Message]) -> Message:
    """Apply Flower's `secaggplus_mod` only to SecAgg+ rounds (notes/flower.md, pitfall 1)."""
    if SECAGG_CONFIGS_KEY in msg.content.config_records:
        return secaggplus_mod(msg, ctxt, call_next)
    return call_next(msg, ctxt)


def _privacy_state(context: Context, cfg: ClientRunConfig, plan: LocalPlan, units: PrivacyUnits) -> PrivacyState:
    """The run's DP state: planned (noise calibrated, both accountants checked) in the first
    round, then carried in `context.state`, so a later round cannot change what was planned."""
    from federation.privacy import PrivacyState

    record = context.state.config_records.get(STATE_RECORD)
    if record is not None and "privacy" in record:
        return PrivacyState.from_json(str(record["privacy"]))
    return PrivacyState.plan(
        epsilon=cfg.epsilon,
        delta=cfg.delta,
        sample_rate=plan.sample_rate,
        steps_per_round=plan.steps,
        rounds=cfg.rounds,
        max_grad_norm=float(plan.max_grad_norm or 0.0),
        unit=units.name,
        units=units.count,
    )


def _local_model(
    context: Context, settings: NodeSettings, config: Any, parameters: Any
) -> tuple[ClientRunConfig, Any, Any, Any, LabeledTable]:
    """The platform's own rows, encoded as agreed, the model set to the received weights, and
    the table (for its privacy units).

    Shared by training and evaluation; raises `YinqiError` (a refusal) for unusable data.
    """
    import numpy as np
    from flwr.common import parameters_to_ndarrays

    from clients.data import encode, load_platform_table
    from federation.model import build_model, set_weights
    from federation.preprocess import Encoder

    cfg = _config(context)
    encoder = Encoder.from_dict(json.loads(str(config["encoder"])))
    table = load_platform_table(
        settings.data_path, cfg.label, cfg.positive, consent_db=settings.consent_db, unit_column=cfg.unit_column
    )
    x, y = encode(table, encoder)
    model = build_model(encoder.n_features, cfg.architecture, cfg.hidden, cfg.seed)
    weights = parameters_to_ndarrays(parameters)
    if not all(np.isfinite(w).all() for w in weights):
        raise PolicyRefusal(f"platform {settings.platform}: the global model the bank sent has non-finite weights")
    set_weights(model, weights)
    return cfg, x, y, model, table


@app.train(mods=[secaggplus_when_requested])
def train(msg: Message, context: Context) -> Message:
    """One round of local training from the global weights."""
    from flwr.common import Code, FitRes, Status
    from flwr.compat.common.recorddict_compat import fitres_to_recorddict, recorddict_to_fitins

    fitins = recorddict_to_fitins(msg.content, keep_input=True)
    server_round = int(fitins.config.get("round", 0))
    platform = "?"
    try:
        settings = node_settings(context)
        platform = settings.platform
        cfg = _config(context)
        _hold_to_policy(context, settings, cfg, f"round {server_round}")
        _hold_round_to_policy(msg, context, settings, fitins.config, server_round)
        fitres = _train_round(context, settings, cfg, fitins, server_round)
    except YinqiError as exc:
        # Refused: weight 0, so the round goes on with the other platforms.
        zero = _zero_update(fitins.parameters)  # weight 0 and no update: adds nothing to the sum
        fitres = FitRes(Status(Code.OK, "refused"), zero, 0, {"platform": platform, "refused": str(exc)})
    return Message(fitres_to_recorddict(fitres, keep_input=False), reply_to=msg)


def _zero_update(parameters: Any) -> Any:
    """An update of zeros shaped like the global weights (a refusal's reply under SecAgg+)."""
    import numpy as np
    from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays

    return ndarrays_to_parameters([np.zeros_like(w) for w in parameters_to_ndarrays(parameters)])


def _hold_round_to_policy(
    msg: Message, context: Context, settings: NodeSettings, config: dict[str, Any], server_round: int
) -> None:
    """This round's aggregation must meet the policy: SecAgg+ masking, enough other platforms."""
    from clients.policy import round_refusal

    claimed = config.get("platforms")
    reason = round_refusal(
        settings.policy,
        settings.platform,
        secagg_neighbours=adapter.secagg_neighbours(msg),
        claimed_platforms=int(claimed) if isinstance(claimed, (int, float)) else None,
    )
    if reason is not None:
        record_refusal(settings.node_config, context.run_id, f"round {server_round}", reason)
        raise PolicyRefusal(reason)


def _train_round(context: Context, settings: NodeSettings, cfg: ClientRunConfig, fitins: Any, server_round: int) -> Any:
    """Train on the platform's rows; the FitRes to send: the clipped update, weighted by the
    unit count (a `diverged` one, with no update, when training stopped being finite)."""
    import math

    import numpy as np
    from flwr.common import Code, FitRes, Status, ndarrays_to_parameters

    from clients.ledger import PrivacyLedger
    from clients.train import LocalTraining, train_local, train_private
    from federation.model import get_weights
    from federation.plan import local_plan
    from federation.privacy import NoiseSource

    platform = settings.platform
    cfg, x, y, model, table = _local_model(context, settings, fitins.config, fitins.parameters)
    units = table.privacy_units()
    plan = local_plan(cfg.plan_request(), units.count)
    start = get_weights(model)
    noise = NoiseSource(cfg.seed * 1_000_003 + settings.index * 1009 + server_round if cfg.reproducible_noise else None)
    local = LocalTraining(
        epochs=plan.epochs,
        batch_size=plan.batch_size or 1,
        lr=plan.lr,
        momentum=plan.momentum,
        proximal_mu=float(fitins.config.get("proximal_mu", 0.0)),
        seed=cfg.seed * 1_000_003 + settings.index * 1009 + server_round,
        noise=noise,
    )
    metrics: dict[str, Any] = {"unit": units.name, "units": units.count, "rows": len(x), "lr": plan.lr}
    if cfg.dp:
        privacy = _privacy_state(context, cfg, plan, units)
        steps_before = privacy.steps_taken
        projected = privacy.projected()
        # A platform's lifetime budget (its policy, or the node's epsilon-budget) spans runs;
        # without one, the run's ε caps it.
        lifetime = settings.epsilon_budget is not None
        budget = settings.epsilon_budget if settings.epsilon_budget is not None else cfg.epsilon
        try:
            PrivacyLedger(settings.ledger_db).check_budget(
                platform, str(context.run_id), projected, budget, lifetime=lifetime
            )
        except YinqiError as exc:
            record_refusal(settings.node_config, context.run_id, f"round {server_round}", str(exc))
            raise
        outcome = train_private(model, x, y, units, local, privacy)
        # RDP composes additively in steps: after exactly the planned steps, ε is the
        # projection already computed (saves one accountant evaluation per round).
        spent = projected if privacy.steps_taken == steps_before + privacy.steps_per_round else privacy.spent
        PrivacyLedger(settings.ledger_db).record(
            platform, str(context.run_id), server_round, spent, cfg.delta, unit=units.name
        )
        context.state.config_records[STATE_RECORD] = ConfigRecord({"privacy": privacy.to_json()})
        metrics.update(
            {
                "epsilon": spent,
                "noise-multiplier": privacy.noise_multiplier,
                "sample-rate": privacy.sample_rate,
                "dp-steps": privacy.steps_taken,
                "dp-noise": noise.kind,
                "max-grad-norm": privacy.max_grad_norm,
            }
        )
    else:
        outcome = train_local(model, x, y, local)
    update = [new - old for new, old in zip(get_weights(model), start, strict=True)]
    if not math.isfinite(outcome.loss) or not all(np.isfinite(u).all() for u in update):
        what = f"loss {outcome.loss:g}" if not math.isfinite(outcome.loss) else "non-finite weights"
        reason = f"platform {platform}, round {server_round}: local training diverged ({what}); its update was not sent"
        record_refusal(settings.node_config, context.run_id, f"round {server_round}", reason)
        return FitRes(
            Status(Code.OK, "diverged"),
            _zero_update(fitins.parameters),
            0,
            {"platform": platform, "diverged": reason, **metrics},
        )
    # The update's L2 norm is bounded (post-processing of the DP output, so no privacy cost):
    # with SecAgg+ the bank sees only the sum, and this bound is what keeps any one platform's
    # part of it small. SecAgg+'s clipping range is the same bound.
    norm = math.sqrt(sum(float(np.square(u, dtype=np.float64).sum()) for u in update))
    clipped = norm > cfg.update_bound
    if clipped:
        update = [u * np.float32(cfg.update_bound / norm) for u in update]
    metrics.update(
        {
            "platform": platform,
            "loss": outcome.loss,
            "train-seconds": outcome.seconds,
            "steps": outcome.steps,
            "update-clipped": int(clipped),
        }
    )
    weight = units.count if cfg.dp else len(x)
    return FitRes(Status(Code.OK, "trained"), ndarrays_to_parameters(update), weight, metrics)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """Score the platform's own rows; only per-class histograms leave."""
    import numpy as np
    from flwr.common import Code, EvaluateRes, Status
    from flwr.compat.common.recorddict_compat import evaluateres_to_recorddict, recorddict_to_evaluateins

    from federation.metrics import score_histograms
    from federation.model import predict_proba_array

    evalins = recorddict_to_evaluateins(msg.content, keep_input=True)
    platform = "?"
    try:
        settings = node_settings(context)
        platform = settings.platform
        _hold_to_policy(context, settings, _config(context), f"evaluation {int(evalins.config.get('round', 0))}")
        _, x, y, model, _ = _local_model(context, settings, evalins.config, evalins.parameters)
        p = np.clip(predict_proba_array(model, x), 1e-7, 1 - 1e-7)
        loss = float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())
        pos, neg = score_histograms(y.astype(np.int64), p, bins=int(evalins.config.get("bins", 1000)))
        res = EvaluateRes(
            Status(Code.OK, "evaluated"),
            loss,
            len(x),
            {"platform": platform, "pos-hist": pos.tobytes(), "neg-hist": neg.tobytes()},
        )
    except YinqiError as exc:
        res = EvaluateRes(Status(Code.OK, "refused"), 0.0, 0, {"platform": platform, "refused": str(exc)})
    return Message(evaluateres_to_recorddict(res), reply_to=msg)
