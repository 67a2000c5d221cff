"""DP-SGD (Abadi et al., 2016) with Opacus, budgeted over a whole federated run.

A platform's `--epsilon E --delta D` is its TOTAL budget for the run. Before the first round the
client calibrates ONE noise multiplier for all the DP-SGD steps it will take over every round
(`get_noise_multiplier` on rounds x steps per round), so the composed ε after the last round is
at most E. The RDP accountant's history (noise multiplier, sample rate, steps) is carried from
round to round as JSON (the ClientApp keeps it in `context.state`), so the ε reported after round
r is the composition of rounds 1..r, not one round's ε.

The noise and the Poisson batch sampling draw from a `NoiseSource`: by default a generator seeded
with 64 bits of OS entropy (`os.urandom`) afresh for every round, with Opacus' floating-point-safe
noise (`secure_mode`: 2n Gaussian draws per value, Holohan et al. 2021), so nobody who knows the
run's settings (the bank chooses the seed) can regenerate the noise. A seeded, reproducible
source exists only behind an explicit flag, for tests and benchmarks; every report says which
source ran. (Opacus' own `secure_mode=True` also wants `torchcsprng`, which has no build for
torch 2.x: the generator here is torch's, seeded from the OS.)
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
# not filtered: the PrivacyEngine that emits it is not used (see `make_private`).
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


def calibrate_noise(epsilon: float, delta: float, sample_rate: float, total_steps: int) -> float:
    """The noise multiplier whose composed ε over `total_steps` DP-SGD steps is ≤ `epsilon`."""
    from opacus.accountants.utils import get_noise_multiplier

    if epsilon <= 0 or not 0 < delta < 1:
        raise PrivacyError(f"privacy budget epsilon={epsilon}, delta={delta}: expected epsilon > 0 and 0 < delta < 1")
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


def epsilon_of(history: list[tuple[float, float, int]], delta: float) -> float:
    """ε of a (noise multiplier, sample rate, steps) history: the RDP accountant's analysis
    (`compute_rdp` + `get_privacy_spent` over Opacus' default orders), per-step RDP cached."""
    import numpy as np
    from opacus.accountants.analysis.rdp import get_privacy_spent

    if not history:
        return 0.0
    rdp = sum(int(steps) * np.asarray(_rdp_per_step(float(noise), float(rate))) for noise, rate, steps in history)
    eps, _ = get_privacy_spent(orders=list(ORDERS), rdp=rdp, delta=delta)
    return float(eps)


@dataclass
class PrivacyState:
    """A platform's DP-SGD state for one run, carried across rounds (JSON in `context.state`).

    `history` is the Opacus RDP accountant history; `noise_multiplier` is calibrated once.
    """

    epsilon: float
    delta: float
    noise_multiplier: float
    sample_rate: float
    steps_per_round: int
    rounds: int
    max_grad_norm: float
    history: list[tuple[float, float, int]] = field(default_factory=list)

    @classmethod
    def plan(
        cls,
        *,
        epsilon: float,
        delta: float,
        rows: int,
        batch_size: int,
        local_epochs: int,
        rounds: int,
        max_grad_norm: float,
    ) -> PrivacyState:
        """Split the run's budget: one noise multiplier for rounds x steps-per-round steps."""
        batches = max(1, math.ceil(rows / batch_size))
        sample_rate = 1.0 / batches  # Opacus' Poisson loader: expected batch = rows / batches
        steps_per_round = local_epochs * batches
        noise = calibrate_noise(epsilon, delta, sample_rate, steps_per_round * rounds)
        return cls(epsilon, delta, noise, sample_rate, steps_per_round, rounds, max_grad_norm)

    @property
    def spent(self) -> float:
        """ε spent so far (composed over every round trained)."""
        return epsilon_of(self.history, self.delta)

    def projected(self, extra_steps: int | None = None) -> float:
        """ε after one more round (or `extra_steps` more steps) at the planned noise."""
        steps = self.steps_per_round if extra_steps is None else extra_steps
        return epsilon_of([*self.history, (self.noise_multiplier, self.sample_rate, steps)], self.delta)

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
        return cls(**data)


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


def make_private(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: torch.utils.data.DataLoader[Any],
    state: PrivacyState,
    noise: NoiseSource,
) -> tuple[Any, Any, Any, Any]:
    """Wrap model/optimizer/loader for DP-SGD with the run's noise multiplier, from Opacus'
    public parts (what `PrivacyEngine.make_private` assembles, with our noise source in place of
    its non-secure default); the RDP accountant resumes from `state.history`.

    Returns (module, optimizer, loader, accountant).
    """
    from opacus import GradSampleModule
    from opacus.accountants import RDPAccountant
    from opacus.data_loader import DPDataLoader
    from opacus.optimizers import DPOptimizer
    from opacus.validators import ModuleValidator

    ModuleValidator.validate(model, strict=True)
    generator = noise.generator()
    module = GradSampleModule(model, batch_first=True, loss_reduction="mean")
    module.forbid_grad_accumulation()  # Poisson batches: one step per batch
    dp_loader = DPDataLoader.from_data_loader(loader, generator=generator)
    sample_rate = 1 / len(dp_loader)
    dp_optimizer = DPOptimizer(
        optimizer,
        noise_multiplier=state.noise_multiplier,
        max_grad_norm=state.max_grad_norm,
        expected_batch_size=int(len(loader.dataset) * sample_rate),  # type: ignore[arg-type]
        loss_reduction="mean",
        generator=generator,
        secure_mode=noise.secure,
    )
    accountant = RDPAccountant()
    accountant.history = [tuple(h) for h in state.history]
    dp_optimizer.attach_step_hook(accountant.get_optimizer_hook_fn(sample_rate=sample_rate))
    return module, dp_optimizer, dp_loader, accountant
