"""How each platform trains in a round, chosen from public facts only, and why.

A new user runs with defaults, and tuning on private data would spend privacy too, so the
defaults must be accurate on a platform of 150 merchants and of thousands alike. What the bank
and the platforms know in public: the run's ε and δ, the rounds, each platform's row and unit
counts (shared in the preprocessing agreement). Never a label.

The defaults and the evidence for them (`bench/fl.py`, 3 non-IID platforms of 150-450 merchants,
ε = 1, 3, 8; docs/fl.md has the table):

- **Full-batch DP-GD**: every merchant in every step (sample rate 1). With a few hundred
  merchants a Poisson batch carries so few units that the noise swamps it; full batch has the
  least noise per step for the same ε, and the same plan then fits every platform size.
- **10 rounds x 5 local steps**: fewer steps leave the model short of converged; more steps
  spend the same ε on more, noisier steps (ε=1 got worse at 8 and at 20x5).
- **Clipping norm 0.05 with learning rate 20** (their product, the longest step a clipped
  gradient can make, is 1): nearly every merchant's gradient is clipped, so each merchant
  counts about equally and the step length no longer depends on the gradients' scale
  (normalised or "automatic" clipping, Bu et al. 2023). Clip 1 with lr 1 lost 0.03 AUC at ε=1.
- **FedAvg of the updates, no server momentum**: FedAvgM and FedAdam were no better here and
  worse at ε=1 (noise accumulates in the momentum).
- **Update norm bound 5**: each platform clips its round's update (new - global weights) to
  L2 norm 5 (5 steps of length at most 1, with room for the noise), and SecAgg+'s clipping range
  is set to it: no platform can move the model by more, and a larger aggregate is refused.

Without DP a platform runs plain SGD over rows (2 epochs of batches of 128, lr 0.1, momentum
0.9), which reaches the pooled central model. Every value can be given explicitly instead; the
run report says which were chosen and which were given.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Final

# DP-SGD over privacy units (merchants).
DP_LOCAL_STEPS = 5
DP_MAX_GRAD_NORM = 0.05
DP_STEP_LENGTH = 1.0  # learning rate x clipping norm
DP_MOMENTUM = 0.0
# Plain SGD over rows (no DP).
PLAIN_EPOCHS = 2
PLAIN_BATCH = 128
PLAIN_LR = 0.1
PLAIN_MOMENTUM = 0.9
# Both.
DEFAULT_ROUNDS = 10
UPDATE_BOUND = 5.0
SERVER_STRATEGY: Final = "fedavg"  # Final: its type is the literal, as FederationConfig.strategy wants


@dataclass(frozen=True)
class PlanRequest:
    """What the run asks for; None means: choose the default."""

    dp: bool = True
    local_steps: int | None = None
    local_epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    momentum: float | None = None
    max_grad_norm: float | None = None

    @classmethod
    def of(cls, settings: Any) -> PlanRequest:
        """The request a run's settings make (the bank's `FederationConfig` and the platform's
        reading of the run config carry the same attribute names)."""
        return cls(**{name: getattr(settings, name) for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class LocalPlan:
    """What one platform does in each round.

    DP: `steps` DP-SGD steps, each over a Poisson sample of units at `sample_rate` (1.0 = every
    unit, full-batch DP-GD), unit gradients clipped to `max_grad_norm`. Plain: `epochs` epochs
    of batches of `batch_size` rows.
    """

    dp: bool
    steps: int
    epochs: int
    batch_size: int | None
    sample_rate: float
    lr: float
    momentum: float
    max_grad_norm: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def local_plan(request: PlanRequest, units: int) -> LocalPlan:
    """The plan of a platform with `units` privacy units (merchants, or rows), from `request`."""
    units = max(int(units), 1)
    if not request.dp:
        return LocalPlan(
            dp=False,
            steps=0,
            epochs=request.local_epochs or PLAIN_EPOCHS,
            batch_size=request.batch_size or PLAIN_BATCH,
            sample_rate=1.0,
            lr=request.lr if request.lr is not None else PLAIN_LR,
            momentum=request.momentum if request.momentum is not None else PLAIN_MOMENTUM,
            max_grad_norm=None,
        )
    clip = request.max_grad_norm if request.max_grad_norm is not None else DP_MAX_GRAD_NORM
    rate = 1.0 if request.batch_size is None else min(1.0, request.batch_size / units)
    if request.local_steps is not None:
        steps = request.local_steps
    elif request.local_epochs is not None:  # epochs of Poisson batches: 1/q steps each
        steps = request.local_epochs * max(1, math.ceil(1.0 / rate))
    else:
        steps = DP_LOCAL_STEPS if rate >= 1.0 else DP_LOCAL_STEPS * max(1, math.ceil(1.0 / rate))
    return LocalPlan(
        dp=True,
        steps=int(steps),
        epochs=0,
        batch_size=request.batch_size,
        sample_rate=float(rate),
        lr=request.lr if request.lr is not None else DP_STEP_LENGTH / clip,
        momentum=request.momentum if request.momentum is not None else DP_MOMENTUM,
        max_grad_norm=float(clip),
    )


def describe(request: PlanRequest, units: dict[str, int], unit: str) -> dict[str, Any]:
    """The plan as the run report shows it: each platform's settings and which were defaults."""
    given = {k: v for k, v in asdict(request).items() if k != "dp" and v is not None}
    plans = {name: local_plan(request, n).to_dict() for name, n in sorted(units.items())}
    if request.dp:
        summary = (
            f"DP-SGD over {unit} units: "
            + ("full-batch DP-GD" if request.batch_size is None else f"Poisson batches of ~{request.batch_size} units")
            + f", clipping norm {next(iter(plans.values()))['max_grad_norm'] if plans else DP_MAX_GRAD_NORM:g}"
        )
    else:
        summary = "plain SGD over rows (no DP)"
    return {
        "summary": summary,
        "given": given,
        "defaults": "bench/fl.py evidence, see federation.plan" if len(given) < 6 else "none used",
        "platforms": plans,
    }
