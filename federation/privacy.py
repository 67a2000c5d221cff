"""Differential privacy over a whole federated run: noise calibration, two accountants, budgets.

A platform's `--epsilon E --delta D` is its TOTAL budget for the run, per *privacy unit*: a
merchant by default (`federation.units`), so ε bounds what the model reveals about whether one
merchant, with all of its rows, took part. Before the first round the platform calibrates ONE
noise multiplier for all the DP-SGD steps it will take over every round (`get_noise_multiplier`
on rounds x steps per round at the unit sampling rate), so the composed ε after the last round is
at most E. The RDP accountant's history (noise multiplier, sample rate, steps) is carried from
round to round as JSON (the ClientApp keeps it in `context.state`), so the ε reported after round
r is the composition of rounds 1..r.

Every ε is also computed by a second, independent accountant, Opacus' PRV accountant (Gopi et
al., 2021, numerical composition of privacy loss distributions): `cross_check` fails loudly
(`AccountingMismatch`) if the reported (RDP) ε is below PRV's upper bound, which would mean the
reported guarantee is not met. A budget must be finite and positive (`check_budget`); above
`WEAK_EPSILON` a run is marked as a weak guarantee (`weak_guarantee`).

The noise and any Poisson sampling of units draw from a `NoiseSource`: by default a generator
seeded with 64 bits of OS entropy (`os.urandom`) afresh for every round, with Opacus'
floating-point-safe noise (`secure_mode`: 2n Gaussian draws per value, Holohan et al. 2021), so
nobody who knows the run's settings (the bank chooses the seed) can regenerate the noise. A
seeded, reproducible source exists only behind an explicit flag, for tests and benchmarks; every
report says which source ran. (Opacus' own `secure_mode=True` also wants `torchcsprng`, which has
no build for torch 2.x: the generator here is torch's, seeded from the OS.)
torch and opacus are imported lazily.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from federation.errors import YinqiError

if TYPE_CHECKING:  # pragma: no cover
    import torch

ACCOUNTANT = "rdp"

# Opacus warns about hooks on input-less modules, and when the optimal RDP order is the largest
# one tried (the bound is then valid but slightly loose). Its "Secure RNG turned off" warning is
# not filtered: the PrivacyEngine that emits it is not used (`federation.dpsgd` assembles
# Opacus' DPOptimizer around the secure generator instead).
for _pattern in ("Optimal order is the largest alpha", "Full backward hook is firing"):
    warnings.filterwarnings("ignore", message=_pattern)

OS_ENTROPY = "os-entropy"
SEEDED = "seeded (reproducible)"


class PrivacyError(YinqiError):
    """A privacy budget that cannot be met or has been used up."""


# RDP orders used for reporting ε: Opacus' defaults (RDPAccountant.DEFAULT_ALPHAS).
ORDERS: tuple[float, ...] = tuple([1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)))
# Calibration searches with a subset of those orders: ε over a subset is an upper bound of ε over
# all of them, so the noise found keeps the reported ε <= budget, and the search runs 3-5x
# faster (integer orders have a closed form; fractional ones need a slow series).
CALIBRATION_ORDERS: tuple[float, ...] = (1.25, 1.5, 1.75, *range(2, 64))


WEAK_EPSILON = 10.0  # above this ε per run, a report says plainly that the guarantee is weak


class AccountingMismatch(PrivacyError):
    """The reported ε is below what an independent accountant computes: the guarantee is not met."""


def check_budget(epsilon: float, delta: float) -> None:
    """A DP budget must be a finite ε > 0 and 0 < δ < 1 (one line naming what is wrong)."""
    if not (isinstance(epsilon, (int, float)) and math.isfinite(epsilon) and epsilon > 0):
        raise PrivacyError(
            f"privacy budget ε={epsilon}: expected a finite number above 0 (e.g. 1, 3 or 8); "
            "to train without differential privacy say --no-dp"
        )
    if not (isinstance(delta, (int, float)) and math.isfinite(delta) and 0 < delta < 1):
        raise PrivacyError(f"privacy budget δ={delta}: expected a number between 0 and 1 (e.g. 1e-5)")


def weak_guarantee(epsilon: float | None) -> str | None:
    """The plain warning for a budget above `WEAK_EPSILON`, else None."""
    if epsilon is None or epsilon <= WEAK_EPSILON:
        return None
    factor = f"{math.exp(epsilon):.3g}" if epsilon < 690 else "more than 1e300"
    return (
        f"ε={epsilon:g} is above {WEAK_EPSILON:g}: the guarantee is weak (an observer's odds of telling whether "
        f"one unit's data was used may grow by a factor up to e^ε, {factor}); for a meaningful one use ε ≤ {WEAK_EPSILON:g}"
    )


@lru_cache(maxsize=256)
def calibrate_noise(epsilon: float, delta: float, sample_rate: float, total_steps: int) -> float:
    """The noise multiplier whose composed ε over `total_steps` DP-SGD steps is ≤ `epsilon`
    (cached: the same budget and plan always give the same noise)."""
    from opacus.accountants.utils import get_noise_multiplier

    check_budget(epsilon, delta)
    if total_steps <= 0 or not 0 < sample_rate <= 1:
        raise PrivacyError(f"cannot calibrate noise for {total_steps} steps at sample rate {sample_rate}")
    try:
        return float(
            get_noise_multiplier(
                target_epsilon=epsilon,
                target_delta=delta,
                sample_rate=sample_rate,
                steps=total_steps,
                accountant=ACCOUNTANT,
                epsilon_tolerance=0.01,
                alphas=list(CALIBRATION_ORDERS),
            )
        )
    except ValueError as exc:
        raise PrivacyError(f"privacy budget epsilon={epsilon} too small for {total_steps} steps: {exc}") from None


@lru_cache(maxsize=1024)
def _rdp_per_step(noise_multiplier: float, sample_rate: float) -> tuple[float, ...]:
    """RDP of one subsampled-Gaussian step at every order (RDP adds up over steps)."""
    from opacus.accountants.analysis.rdp import compute_rdp

    return tuple(
        float(v) for v in compute_rdp(q=sample_rate, noise_multiplier=noise_multiplier, steps=1, orders=list(ORDERS))
    )


History = list[tuple[float, float, int]]


def epsilon_of(history: History, delta: float) -> float:
    """ε of a (noise multiplier, sample rate, steps) history: the RDP accountant's analysis
    (`compute_rdp` + `get_privacy_spent` over Opacus' default orders), per-step RDP cached."""
    import numpy as np
    from opacus.accountants.analysis.rdp import get_privacy_spent

    if not history:
        return 0.0
    rdp = sum(int(steps) * np.asarray(_rdp_per_step(float(noise), float(rate))) for noise, rate, steps in history)
    eps, _ = get_privacy_spent(orders=list(ORDERS), rdp=rdp, delta=delta)
    return float(eps)


def prv_epsilon(history: History, delta: float) -> float | None:
    """ε of the same history from Opacus' PRV accountant (its upper bound, error ≤ 0.01), or
    None where it cannot be computed (noise so small that the privacy loss has no useful domain:
    ε in the thousands, a guarantee only in name)."""
    import numpy as np
    from opacus.accountants import PRVAccountant

    if not history:
        return 0.0
    accountant = PRVAccountant()
    accountant.history = [(float(n), float(q), int(t)) for n, q, t in history]
    # q = 1 (full batch) makes its sampling formula take log(0): harmless, but it warns.
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            value = float(accountant.get_epsilon(delta=delta))
        except (MemoryError, ValueError, OverflowError, FloatingPointError, RuntimeError):
            return None
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class AccountantCheck:
    """One history's ε from both accountants; `reported` is the RDP ε the platform states."""

    reported: float
    prv: float | None

    @property
    def agrees(self) -> bool:
        return self.prv is None or self.reported >= self.prv - 1e-9

    def to_dict(self) -> dict[str, Any]:
        return {"rdp": self.reported, "prv": self.prv, "agrees": self.agrees}


def cross_check(history: History, delta: float, reported: float | None = None, who: str = "") -> AccountantCheck:
    """Both accountants on `history`; raise `AccountingMismatch` when the reported ε (default:
    the RDP accountant's) is below the PRV accountant's upper bound."""
    check = AccountantCheck(
        reported=epsilon_of(history, delta) if reported is None else reported, prv=prv_epsilon(history, delta)
    )
    if not check.agrees:
        raise AccountingMismatch(
            f"{who + ': ' if who else ''}reported ε={check.reported:.4f} is below the independent PRV accountant's "
            f"ε={check.prv:.4f} for the same noise, sampling and steps; the stated guarantee does not hold"
        )
    return check


@lru_cache(maxsize=256)
def _check_plan(noise: float, sample_rate: float, steps: int, delta: float) -> AccountantCheck:
    """Both accountants on a planned run (cached: a plan is checked once per process)."""
    return cross_check([(noise, sample_rate, steps)], delta, who=f"the planned run (σ={noise:.4g}, q={sample_rate:g})")


@dataclass
class PrivacyState:
    """A platform's DP-SGD state for one run, carried across rounds (JSON in `context.state`).

    `history` is the Opacus RDP accountant history; `noise_multiplier` is calibrated once for
    `rounds` x `steps_per_round` steps at `sample_rate` (of units: 1.0 is full-batch DP-GD).
    `unit` names the privacy unit (`merchant_id`, or `row`), `units` how many the platform has.
    """

    epsilon: float
    delta: float
    noise_multiplier: float
    sample_rate: float
    steps_per_round: int
    rounds: int
    max_grad_norm: float
    history: History = field(default_factory=list)
    unit: str = "row"
    units: int = 0

    @classmethod
    def plan(
        cls,
        *,
        epsilon: float,
        delta: float,
        sample_rate: float,
        steps_per_round: int,
        rounds: int,
        max_grad_norm: float,
        unit: str = "row",
        units: int = 0,
    ) -> PrivacyState:
        """One noise multiplier for rounds x steps-per-round steps, checked by both accountants."""
        noise = calibrate_noise(epsilon, delta, sample_rate, steps_per_round * rounds)
        _check_plan(noise, sample_rate, steps_per_round * rounds, delta)
        return cls(epsilon, delta, noise, sample_rate, steps_per_round, rounds, max_grad_norm, unit=unit, units=units)

    @property
    def spent(self) -> float:
        """ε spent so far (composed over every round trained)."""
        return epsilon_of(self.history, self.delta)

    def projected(self, extra_steps: int | None = None) -> float:
        """ε after one more round (or `extra_steps` more steps) at the planned noise."""
        steps = self.steps_per_round if extra_steps is None else extra_steps
        return epsilon_of([*self.history, (self.noise_multiplier, self.sample_rate, steps)], self.delta)

    def record_round(self, steps: int) -> None:
        """Add `steps` DP-SGD steps at the planned noise and sample rate to the history."""
        if steps <= 0:
            return
        last = self.history[-1] if self.history else None
        if last is not None and last[0] == self.noise_multiplier and last[1] == self.sample_rate:
            self.history[-1] = (last[0], last[1], last[2] + steps)
        else:
            self.history.append((self.noise_multiplier, self.sample_rate, steps))

    @property
    def steps_taken(self) -> int:
        return sum(int(h[2]) for h in self.history)

    def to_json(self) -> str:
        data = self.__dict__.copy()
        data["history"] = [list(h) for h in self.history]
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> PrivacyState:
        data: dict[str, Any] = json.loads(text)
        data["history"] = [(float(a), float(b), int(c)) for a, b, c in data.get("history", [])]
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass(frozen=True)
class NoiseSource:
    """Where DP-SGD draws its Gaussian noise and Poisson batches from.

    `seed=None` (the default, on every path a platform runs): 64 bits of OS entropy per
    generator, and Opacus' floating-point-safe noise. An integer `seed`: reproducible noise, only
    when a run asks for it explicitly (tests, benchmarks) and the platform allows it.
    """

    seed: int | None = None

    @property
    def kind(self) -> str:
        return OS_ENTROPY if self.seed is None else SEEDED

    @property
    def secure(self) -> bool:
        return self.seed is None

    def generator(self) -> torch.Generator:
        import torch

        seed = int.from_bytes(os.urandom(8), "little") if self.seed is None else self.seed
        return torch.Generator().manual_seed(seed)
