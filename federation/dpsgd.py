"""DP-SGD with a privacy unit of several rows: every merchant's rows are sampled, and clipped,
together (Abadi et al., 2016, with the "user-level" unit of McMahan et al., 2018).

One step:

1. Poisson-sample units (merchants) with rate q, drawing from the run's `NoiseSource`; q = 1 is
   full-batch DP-GD (every unit, every step).
2. Per-row gradients of the loss from Opacus' `GradSampleModule`; each row weighted 1 / (rows of
   its unit), so summing a unit's rows gives the unit's gradient: the mean over its rows.
3. Opacus' `DPOptimizer` clips each *unit's* gradient to `max_grad_norm` C, sums them, adds
   Gaussian noise of standard deviation σC (Opacus' floating-point-safe noise with the secure
   source) and divides by the expected batch q·U.

A merchant with 1 row and a merchant with 1,000 rows therefore move the sum by at most C each:
the sensitivity the accountant assumes, whatever a unit's size. The accountant composes
(σ, q, steps) over the run (`federation.privacy`).
torch and opacus are imported lazily.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from federation.privacy import NoiseSource
    from federation.units import PrivacyUnits


ROW_CHUNK = 8192  # rows per backward pass; per-row gradients of one chunk are held at a time


@dataclass
class DPStepSettings:
    """One platform's DP-SGD settings for a round (the noise multiplier comes from the plan)."""

    steps: int
    sample_rate: float  # of units; 1.0 = full batch
    lr: float
    momentum: float
    max_grad_norm: float
    noise_multiplier: float
    proximal_mu: float = 0.0


@dataclass
class DPOutcome:
    loss: float
    steps: int
    loop_seconds: float
    units_seen: int  # units sampled, summed over the steps


def train_dp_units(
    model: torch.nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    units: PrivacyUnits,
    settings: DPStepSettings,
    noise: NoiseSource,
) -> DPOutcome:
    """Train `model` in place for `settings.steps` unit-level DP-SGD steps."""
    import torch
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer
    from opacus.validators import ModuleValidator

    model.train()
    ModuleValidator.validate(model, strict=True)
    generator = noise.generator()
    xt = torch.as_tensor(x, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.float32)
    unit_of_row = torch.as_tensor(units.index, dtype=torch.int64)
    all_rows = torch.arange(len(x), dtype=torch.int64)
    row_weight = torch.as_tensor(1.0 / units.rows[units.index], dtype=torch.float32)
    n_units = units.count

    global_params = [p.detach().clone() for p in model.parameters()]
    module = GradSampleModule(model, batch_first=True, loss_reduction="sum")
    optimizer = DPOptimizer(
        torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.momentum),
        noise_multiplier=settings.noise_multiplier,
        max_grad_norm=settings.max_grad_norm,
        expected_batch_size=max(1, round(settings.sample_rate * n_units)),
        loss_reduction="mean",
        generator=generator,
        secure_mode=noise.secure,
    )
    params = [p for p in model.parameters() if p.requires_grad]
    loss_fn = torch.nn.BCEWithLogitsLoss(reduction="none")
    total_loss, seen = 0.0, 0
    started = time.perf_counter()
    try:
        for _ in range(settings.steps):
            optimizer.zero_grad(set_to_none=True)
            if settings.sample_rate >= 1.0:
                chosen = np.arange(n_units)
            else:
                draw = torch.rand(n_units, generator=generator).numpy()
                chosen = np.flatnonzero(draw < settings.sample_rate)
            seen += len(chosen)
            if len(chosen):
                if len(chosen) == n_units:
                    rows, local_unit = all_rows, unit_of_row
                else:
                    picked = np.zeros(n_units, dtype=bool)
                    picked[chosen] = True
                    row_ids = np.flatnonzero(picked[units.index])
                    rows = torch.as_tensor(row_ids, dtype=torch.int64)
                    local_unit = torch.as_tensor(np.searchsorted(chosen, units.index[row_ids]), dtype=torch.int64)
                # Per-row gradients, summed into per-unit gradients (the unit is what gets
                # clipped), a chunk of rows at a time so memory stays bounded on large platforms.
                per_unit = [torch.zeros((len(chosen), *p.shape), dtype=p.dtype) for p in params]
                for start in range(0, len(rows), ROW_CHUNK):
                    part, owner = rows[start : start + ROW_CHUNK], local_unit[start : start + ROW_CHUNK]
                    module.zero_grad(set_to_none=True)
                    losses = loss_fn(module(xt[part]).reshape(-1), yt[part]) * row_weight[part]
                    chunk_loss = losses.sum()
                    chunk_loss.backward()
                    total_loss += float(chunk_loss.detach()) / len(chosen)
                    for summed, p in zip(per_unit, params, strict=True):
                        summed.index_add_(0, owner, p.grad_sample)  # type: ignore[attr-defined]  # Opacus' per-row gradients
                module.zero_grad(set_to_none=True)
            else:  # no unit sampled: the step is noise alone, as the accountant assumes
                per_unit = [torch.zeros((0, *p.shape), dtype=p.dtype) for p in params]
            for p, grads in zip(params, per_unit, strict=True):
                p.grad_sample = grads  # type: ignore[attr-defined]  # what DPOptimizer clips
            optimizer.step()
            if settings.proximal_mu > 0:  # FedProx: decoupled, depends on public weights only
                with torch.no_grad():
                    for p, g in zip(params, global_params, strict=True):
                        p.sub_(settings.lr * settings.proximal_mu * (p - g))
    finally:
        module.cleanup()  # remove Opacus' hooks and attributes from the caller's model
    model.eval()
    steps = max(settings.steps, 1)
    return DPOutcome(
        loss=total_loss / steps, steps=settings.steps, loop_seconds=time.perf_counter() - started, units_seen=seen
    )
