"""An empirical privacy audit: can an attacker tell whether a merchant's data trained a model?

It lives with the platform's code because its shadow models must be trained exactly as a
platform trains (`clients.train`); a platform audits its own released model, or the platforms
audit one together.

Membership inference against a released model, per privacy unit (a merchant: all of its rows),
with two attacks:

- **Loss threshold** (Yeom et al., 2018): members tend to have a lower loss. The score of a
  merchant is minus the mean loss of its rows under the model.
- **LiRA** (Carlini et al., 2022, "Membership Inference Attacks From First Principles"), online
  with a fixed variance: shadow models are trained the way the released model was (same
  architecture, rounds, plan and ε, as a federation of the same number of platforms), each on a
  random half of the known merchants, so every merchant is IN half of them and OUT of the other
  half. A merchant's statistic is the mean logit of the probability given to its true labels;
  the score is the log-likelihood ratio of the target model's statistic under the IN and the OUT
  Gaussians.

Each attack gives an AUC (0.5: the attacker cannot tell) and the true-positive rate at a 1 %
false-positive rate (what matters for the most exposed merchants). The audit attacks the
released model at its own ε, and — to show what the ε buys — models trained the same way on the
same members at ε = ∞ (no DP) and at a smaller ε. It also says where leakage concentrates
(merchants with and without a default). The members' and non-members' files are the auditor's:
a platform auditing its own model, or the platforms together; ε is about what *any* attacker
learns, and these attacks give a lower bound of that.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from federation.errors import DataError, YinqiError

if TYPE_CHECKING:  # pragma: no cover
    from federation.model import ScoringModel
    from federation.preprocess import Encoder

FPR_TARGET = 0.01
LOGIT_CLIP = 1e-6  # probabilities are clipped to [1e-6, 1 - 1e-6] before taking logits
INFINITY = math.inf


class AuditError(YinqiError):
    """A privacy audit that cannot run as asked."""


# -- the data: units (merchants) known to be members or not ---------------------------------------
@dataclass
class Units:
    """Encoded rows, each row's unit, and per unit: member or not, platform, a default or not."""

    x: np.ndarray
    y: np.ndarray
    unit_of_row: np.ndarray  # int64 in 0..n_units-1
    member: np.ndarray  # bool per unit
    platform: np.ndarray  # int per unit: the members' file it came from (-1: a non-member)
    defaulted: np.ndarray  # bool per unit: any row with label 1
    names: list[str]  # "file:unit id"
    unit: str  # what a unit is ("merchant_id", or "row")

    @property
    def count(self) -> int:
        return len(self.names)

    def rows_of(self, units: np.ndarray) -> np.ndarray:
        """Row indices of the given units."""
        chosen = np.zeros(self.count, dtype=bool)
        chosen[units] = True
        return np.flatnonzero(chosen[self.unit_of_row])


def load_units(
    members: list[Path], non_members: list[Path], encoder: Encoder, label: str, positive: str | None, unit_column: str
) -> Units:
    """Read and encode the auditor's files; a merchant in both is refused by name."""
    from federation.preprocess import load_labeled

    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    rows_unit: list[np.ndarray] = []
    member: list[bool] = []
    platform: list[int] = []
    defaulted: list[bool] = []
    names: list[str] = []
    where: dict[bool, dict[str, str]] = {True: {}, False: {}}  # unit id -> file, members / not
    unit_kinds: set[str] = set()
    for is_member, paths in ((True, members), (False, non_members)):
        for index, path in enumerate(paths):
            table = load_labeled(
                path, label=label, positive=positive, unit_column=unit_column, require_both_classes=False
            )
            units = table.privacy_units()
            unit_kinds.add(units.name)
            if units.grouped and table.unit_ids is not None:
                ids = np.empty(units.count, dtype=object)
                ids[units.index] = table.unit_ids.to_numpy()
            else:
                ids = np.array([f"row {r + 1}" for r in range(units.count)], dtype=object)
            for key in map(str, ids):
                other = where[not is_member].get(key)
                if units.grouped and other is not None:
                    raise DataError(
                        f"{unit_column} {key!r} is also in {other}: a merchant is a member or a non-member, not both",
                        file=str(path),
                        column=unit_column,
                    )
                where[is_member][key] = str(path)
            offset = len(names)
            names.extend(f"{path.name}:{key}" for key in ids)
            member.extend([is_member] * units.count)
            platform.extend([index if is_member else -1] * units.count)
            defaulted.extend((np.bincount(units.index, weights=table.y, minlength=units.count) > 0).tolist())
            xs.append(encoder.transform(table.frame, file=str(path)))
            ys.append(table.y.astype(np.float32))
            rows_unit.append(units.index + offset)
    if not any(member) or all(member):
        raise AuditError("an audit needs members and non-members (--members and --non-members files)")
    return Units(
        x=np.vstack(xs).astype(np.float32),
        y=np.concatenate(ys),
        unit_of_row=np.concatenate(rows_unit).astype(np.int64),
        member=np.array(member),
        platform=np.array(platform),
        defaulted=np.array(defaulted),
        names=names,
        unit=unit_kinds.pop() if len(unit_kinds) == 1 else "mixed",
    )


# -- training the way the released model was trained -----------------------------------------------
@dataclass(frozen=True)
class Recipe:
    """How the released model was trained, from its report: what shadow models repeat."""

    architecture: str = "logistic"
    hidden: int = 16
    rounds: int = 10
    dp: bool = True
    epsilon: float = 8.0
    delta: float = 1e-5
    unit_column: str = "merchant_id"
    update_bound: float = 5.0
    plan: dict[str, Any] = field(default_factory=dict)  # the run's explicit plan settings (None: default)
    seed: int = 0

    @classmethod
    def of(cls, model: ScoringModel) -> Recipe:
        settings = dict(model.report.get("settings") or {})
        meta = model.meta

        def number(key: str) -> float | None:
            value = settings.get(key)
            return None if value in (None, "") else float(value)

        plan = {
            key: number(key.replace("_", "-"))
            for key in ("local_steps", "local_epochs", "batch_size", "lr", "momentum", "max_grad_norm")
        }
        # A central yardstick's settings carry the run's DP flags, but it trained without DP.
        central = meta.get("mode") == "central"
        dp = not central and bool(meta.get("dp", settings.get("dp", False)))
        return cls(
            architecture=str(meta.get("architecture", "logistic")),
            hidden=int(meta.get("hidden", 16)),
            rounds=int(meta.get("rounds") or settings.get("rounds") or 10),
            dp=dp,
            epsilon=float(settings.get("epsilon", 8.0)) if dp else INFINITY,
            delta=float(settings.get("delta", 1e-5)),
            unit_column=str(meta.get("unit_column") or settings.get("unit-column") or "merchant_id"),
            update_bound=float(settings.get("update-bound") or 5.0),
            plan=plan,
            seed=int(settings.get("seed") or 0),
        )


def train_like(
    recipe: Recipe, epsilon: float, data: Units, units_by_platform: list[np.ndarray], seed: int
) -> list[np.ndarray]:
    """A model trained as `recipe` says (FedAvg of clipped updates over the given platforms,
    DP over units at `epsilon`, none at ε = ∞), on the given units; its weights."""
    from clients.train import LocalTraining, train_local, train_private
    from federation.model import build_model, get_weights, set_weights
    from federation.plan import PlanRequest, local_plan
    from federation.privacy import NoiseSource, PrivacyState
    from federation.units import PrivacyUnits

    dp = math.isfinite(epsilon)
    request = PlanRequest(
        dp=dp,
        **{
            k: (int(v) if k in ("local_steps", "local_epochs", "batch_size") else v)
            for k, v in recipe.plan.items()
            if v is not None
        },
    )
    n_features = data.x.shape[1]
    model = build_model(n_features, recipe.architecture, recipe.hidden, recipe.seed)
    weights = get_weights(model)
    parts = []
    for units in units_by_platform:
        rows = data.rows_of(units)
        local_units = np.searchsorted(np.sort(units), data.unit_of_row[rows])
        grouped = PrivacyUnits(recipe.unit_column, True, local_units.astype(np.int64), np.bincount(local_units))
        plan = local_plan(request, grouped.count)
        state = None
        if dp:
            state = PrivacyState.plan(
                epsilon=epsilon,
                delta=recipe.delta,
                sample_rate=plan.sample_rate,
                steps_per_round=plan.steps,
                rounds=recipe.rounds,
                max_grad_norm=float(plan.max_grad_norm or 0.0),
            )
        parts.append((data.x[rows], data.y[rows], grouped, plan, state))
    for r in range(recipe.rounds):
        total, summed = 0.0, [np.zeros_like(w, dtype=np.float64) for w in weights]
        for i, (x, y, grouped, plan, state) in enumerate(parts):
            set_weights(model, weights)
            settings = LocalTraining(
                epochs=plan.epochs,
                batch_size=plan.batch_size or 1,
                lr=plan.lr,
                momentum=plan.momentum,
                seed=seed * 7919 + r * 101 + i,
                noise=NoiseSource(seed=seed * 7919 + r * 101 + i),
            )
            if state is not None:
                train_private(model, x, y, grouped, settings, state)
            else:
                train_local(model, x, y, settings)
            update = [new - old for new, old in zip(get_weights(model), weights, strict=True)]
            norm = math.sqrt(sum(float(np.square(u, dtype=np.float64).sum()) for u in update))
            scale = min(1.0, recipe.update_bound / norm) if norm > 0 else 1.0
            weight = float(grouped.count if dp else len(x))
            summed = [s + weight * scale * u for s, u in zip(summed, update, strict=True)]
            total += weight
        weights = [(w + s / total).astype(w.dtype) for w, s in zip(weights, summed, strict=True)]
    return weights


# -- attack statistics -----------------------------------------------------------------------------
def unit_statistics(weights: list[np.ndarray], recipe: Recipe, data: Units) -> tuple[np.ndarray, np.ndarray]:
    """Per unit: (minus the mean loss, the mean logit of the probability of its true labels)."""
    from federation.model import build_model, predict_proba_array, set_weights

    model = build_model(data.x.shape[1], recipe.architecture, recipe.hidden, recipe.seed)
    set_weights(model, weights)
    p = np.clip(predict_proba_array(model, data.x), LOGIT_CLIP, 1 - LOGIT_CLIP)
    p_true = np.where(data.y > 0.5, p, 1 - p)
    loss = -np.log(p_true)
    confidence = np.log(p_true) - np.log(1 - p_true)
    counts = np.bincount(data.unit_of_row, minlength=data.count).astype(np.float64)
    mean_loss = np.bincount(data.unit_of_row, weights=loss, minlength=data.count) / counts
    mean_confidence = np.bincount(data.unit_of_row, weights=confidence, minlength=data.count) / counts
    return -mean_loss, mean_confidence


def lira_scores(target: np.ndarray, shadows: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Online LiRA with a fixed (global) variance: log N(t; μ_in, σ_in) - log N(t; μ_out, σ_out).

    `shadows[k, u]` is unit u's statistic under shadow k, `inside[k, u]` whether u trained it.
    """
    in_mean = np.nanmean(np.where(inside, shadows, np.nan), axis=0)
    out_mean = np.nanmean(np.where(~inside, shadows, np.nan), axis=0)
    in_std = float(np.nanstd(np.where(inside, shadows - in_mean, np.nan))) + 1e-6
    out_std = float(np.nanstd(np.where(~inside, shadows - out_mean, np.nan))) + 1e-6
    scores: np.ndarray = (
        ((target - out_mean) / out_std) ** 2 / 2
        + math.log(out_std)
        - ((target - in_mean) / in_std) ** 2 / 2
        - math.log(in_std)
    )
    return scores


@dataclass
class AttackResult:
    auc: float
    tpr_at_1pct_fpr: float
    roc: tuple[list[float], list[float]] = field(repr=False, default=([], []))

    def to_dict(self) -> dict[str, Any]:
        return {"auc": self.auc, "tpr_at_1pct_fpr": self.tpr_at_1pct_fpr}


def roc_curve(member: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false-positive rates, true-positive rates) at every threshold, from the highest score."""
    order = np.argsort(-scores, kind="mergesort")
    hits = member[order].astype(np.float64)
    tpr = np.concatenate([[0.0], np.cumsum(hits) / max(hits.sum(), 1.0)])
    fpr = np.concatenate([[0.0], np.cumsum(1 - hits) / max((1 - hits).sum(), 1.0)])
    return fpr, tpr


def evaluate_attack(member: np.ndarray, scores: np.ndarray) -> AttackResult:
    from federation.metrics import roc_auc

    fpr, tpr = roc_curve(member, scores)
    at = float(tpr[fpr <= FPR_TARGET].max()) if (fpr <= FPR_TARGET).any() else 0.0
    return AttackResult(roc_auc(member.astype(np.int64), scores), at, (fpr.tolist(), tpr.tolist()))


# -- the audit -------------------------------------------------------------------------------------
@dataclass
class LevelResult:
    """Both attacks against one model: the released one, or one retrained at another ε."""

    epsilon: float
    source: str  # "released model" | "retrained on the members"
    loss: AttackResult
    lira: AttackResult
    subgroups: dict[str, float] = field(default_factory=dict)  # LiRA AUC within groups of units
    most_exposed: list[dict[str, Any]] = field(default_factory=list)
    tpr_bound: float = 1.0  # the most TPR at 1 % FPR that (ε, δ)-DP allows any attack

    def to_dict(self) -> dict[str, Any]:
        return {
            "epsilon": None if math.isinf(self.epsilon) else self.epsilon,
            "epsilon_label": epsilon_label(self.epsilon),
            "source": self.source,
            "dp_tpr_bound_at_1pct_fpr": self.tpr_bound,
            "loss_attack": self.loss.to_dict(),
            "lira": self.lira.to_dict(),
            "subgroups": self.subgroups,
            "most_exposed": self.most_exposed,
        }


@dataclass
class AuditReport:
    model: str
    unit: str
    members: int
    non_members: int
    shadows: int
    recipe: dict[str, Any]
    levels: list[LevelResult]
    plot: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "unit": self.unit,
            "members": self.members,
            "non_members": self.non_members,
            "shadows": self.shadows,
            "recipe": self.recipe,
            "levels": [level.to_dict() for level in self.levels],
            "plot": self.plot,
            "seconds": self.seconds,
        }


def epsilon_label(epsilon: float) -> str:
    return "∞ (no DP)" if math.isinf(epsilon) else f"{epsilon:g}"


def _halves(n_units: int, shadows: int, rng: np.random.Generator) -> np.ndarray:
    """`inside[k, u]`: pairs of complementary random halves, so each unit is IN half the shadows."""
    inside = np.zeros((shadows, n_units), dtype=bool)
    for k in range(0, shadows, 2):
        half = rng.permutation(n_units) < n_units // 2
        inside[k] = half
        if k + 1 < shadows:
            inside[k + 1] = ~half
    return inside


def _platforms(units: np.ndarray, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Split units at random into `count` platforms."""
    shuffled = rng.permutation(units)
    return [np.sort(part) for part in np.array_split(shuffled, count)]


MAX_SHADOWS = 64


def parse_epsilon(text: str) -> float:
    """A comparison ε from the command line: a finite positive number, or `inf` (no DP)."""
    value = text.strip().lower()
    if value in ("inf", "infinity", "∞", "none", "no-dp"):
        return INFINITY
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if math.isnan(number) or number <= 0:
        raise AuditError(f"--compare {text!r}: expected a positive number or 'inf' (no DP)")
    return number


def dp_tpr_bound(epsilon: float, delta: float, fpr: float = FPR_TARGET) -> float:
    """The highest true-positive rate any attack can reach at `fpr` against an (ε, δ)-DP
    mechanism (Kairouz et al., 2015: TPR ≤ e^ε FPR + δ): what the audit's numbers sit under."""
    if math.isinf(epsilon):
        return 1.0
    return min(1.0, math.exp(min(epsilon, 700.0)) * fpr + delta)


def _check_request(members: list[Path], non_members: list[Path], shadows: int) -> None:
    """Refuse, in one line, what would make the audit meaningless."""
    if not members or not non_members:
        raise AuditError("an audit needs members and non-members (--members and --non-members files)")
    if shadows < 2 or shadows % 2 or shadows > MAX_SHADOWS:
        raise AuditError(f"--shadows {shadows}: expected an even number of shadow models from 2 to {MAX_SHADOWS}")
    both = sorted({str(Path(p).resolve()) for p in members} & {str(Path(p).resolve()) for p in non_members})
    if both:
        raise AuditError(f"{both[0]} is given as --members and as --non-members: a file is one or the other")


def audit_model(
    model_dir: str | Path,
    members: list[Path],
    non_members: list[Path],
    *,
    compare: list[float] | None = None,
    shadows: int = 8,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> AuditReport:
    """Attack the released model, and models trained the same way at the `compare` ε's."""
    import time

    from federation.model import get_weights, load_model

    started = time.perf_counter()
    say = progress or (lambda _message: None)
    members, non_members = [Path(p) for p in members], [Path(p) for p in non_members]
    _check_request(members, non_members, shadows)
    model = load_model(model_dir)
    model.require_consistent()
    recipe = Recipe.of(model)
    label = str(model.meta.get("label", "default"))
    positive = model.meta.get("positive")
    data = load_units(members, non_members, model.encoder, label, positive, recipe.unit_column)
    levels_wanted = [recipe.epsilon, *(compare if compare is not None else default_comparison(recipe.epsilon))]
    rng = np.random.default_rng(seed)
    inside = _halves(data.count, shadows, rng)
    shadow_platforms = [_platforms(np.flatnonzero(inside[k]), len(members), rng) for k in range(shadows)]
    member_platforms = [np.flatnonzero(data.platform == i) for i in range(len(members))]
    results = []
    for index, epsilon in enumerate(dict.fromkeys(levels_wanted)):
        released = index == 0
        say(f"ε={epsilon_label(epsilon)}: {'the released model' if released else 'a model retrained on the members'}")
        target = (
            get_weights(model.model)
            if released
            else train_like(recipe, epsilon, data, member_platforms, seed=seed * 1000 + 999 - index)
        )
        loss_score, confidence = unit_statistics(target, recipe, data)
        statistics = np.zeros((shadows, data.count))
        for k in range(shadows):
            say(f"ε={epsilon_label(epsilon)}: shadow model {k + 1} of {shadows}")
            weights = train_like(recipe, epsilon, data, shadow_platforms[k], seed=seed * 1000 + index * 100 + k)
            statistics[k] = unit_statistics(weights, recipe, data)[1]
        scores = lira_scores(confidence, statistics, inside)
        results.append(
            LevelResult(
                epsilon=epsilon,
                source="released model" if released else "retrained on the members",
                loss=evaluate_attack(data.member, loss_score),
                lira=evaluate_attack(data.member, scores),
                subgroups=_subgroups(data, scores),
                most_exposed=_most_exposed(data, scores),
                tpr_bound=dp_tpr_bound(epsilon, recipe.delta),
            )
        )
    return AuditReport(
        model=str(model_dir),
        unit=data.unit,
        members=int(data.member.sum()),
        non_members=int((~data.member).sum()),
        shadows=shadows,
        recipe=asdict(recipe),
        levels=results,
        seconds=time.perf_counter() - started,
    )


def default_comparison(own: float) -> list[float]:
    """ε = ∞ (what DP prevents) and a smaller ε (what more privacy would buy)."""
    smaller = 1.0 if own > 1.0 else own / 4
    return [INFINITY, smaller] if math.isfinite(own) else [8.0, 1.0]


def _subgroups(data: Units, scores: np.ndarray) -> dict[str, float]:
    """LiRA AUC among merchants with a default, and among those without (where it leaks)."""
    from federation.metrics import roc_auc

    out = {}
    for name, chosen in (("with a default", data.defaulted), ("without a default", ~data.defaulted)):
        member = data.member[chosen]
        if member.any() and (~member).any():
            out[name] = roc_auc(member.astype(np.int64), scores[chosen])
    return out


def _most_exposed(data: Units, scores: np.ndarray, count: int = 5) -> list[dict[str, Any]]:
    """The members the attack is surest about: what they have in common shows where it leaks."""
    rows = np.bincount(data.unit_of_row, minlength=data.count)
    members = np.flatnonzero(data.member)
    top = members[np.argsort(-scores[members], kind="mergesort")[:count]]
    return [
        {"unit": data.names[u], "score": float(scores[u]), "rows": int(rows[u]), "defaulted": bool(data.defaulted[u])}
        for u in top
    ]


def plot_roc(report: AuditReport, path: str | Path) -> Path:
    """ROC curves of both attacks at every ε (linear and log-log), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8))
    for colour, level in enumerate(report.levels):
        for attack, style in ((level.lira, "-"), (level.loss, "--")):
            name = "LiRA" if attack is level.lira else "loss"
            fpr, tpr = (np.asarray(v) for v in attack.roc)
            label = f"ε={epsilon_label(level.epsilon)} {name} (AUC {attack.auc:.3f})"
            axes[0].plot(fpr, tpr, style, color=f"C{colour}", label=label)
            axes[1].loglog(np.maximum(fpr, 1e-4), np.maximum(tpr, 1e-4), style, color=f"C{colour}", label=label)
    for ax, title in zip(axes, ("ROC", "ROC, log scale (low false-positive rates)"), strict=True):
        ax.plot([1e-4, 1], [1e-4, 1], ":", color="grey", linewidth=1)
        ax.set_xlabel("false-positive rate")
        ax.set_ylabel("true-positive rate")
        ax.set_title(title)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"Membership inference per {report.unit}: {Path(report.model).name}")
    fig.tight_layout()
    from federation import files

    files.write_with(path, lambda target: fig.savefig(target, format="png", dpi=110))
    plt.close(fig)
    return path
