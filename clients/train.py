"""Local training on a platform's own rows: plain SGD over rows, or DP-SGD over privacy units
(`federation.dpsgd`: each merchant's rows sampled and clipped together), with FedProx's
proximal term (Li et al., 2020, "Federated Optimization in Heterogeneous Networks").

The proximal term mu/2 * ||w - w_global||^2 is applied as a separate, decoupled step after each
optimizer step. Its gradient mu * (w - w_global) depends only on the public global weights, so it
needs no clipping or noise and works unchanged under DP-SGD (Opacus only privatises the
per-sample gradients of the data loss).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from federation.privacy import NoiseSource, PrivacyState
from federation.units import PrivacyUnits


@dataclass
class LocalTraining:
    """How a platform trains in one round."""

    epochs: int = 1
    batch_size: int = 64
    lr: float = 0.1
    momentum: float = 0.9
    proximal_mu: float = 0.0
    seed: int = 0  # initial shuffling (plain SGD); DP noise and batches come from `noise`
    noise: NoiseSource = field(default_factory=NoiseSource)  # OS entropy unless a run asked for a seed


@dataclass
class TrainOutcome:
    """What one round of local training did."""

    loss: float
    steps: int
    seconds: float  # the whole round's local work, DP set-up included
    examples: int
    loop_seconds: float = 0.0  # the optimizer steps alone


def train_local(
    model,  # torch.nn.Module, already holding the global weights
    x: np.ndarray,
    y: np.ndarray,
    settings: LocalTraining,
) -> TrainOutcome:
    """Train `model` in place for `settings.epochs` epochs of plain SGD over rows (no DP)."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    started = time.perf_counter()
    torch.manual_seed(settings.seed)
    global_params = [p.detach().clone() for p in model.parameters()]
    dataset = TensorDataset(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32))
    generator = torch.Generator().manual_seed(settings.seed)
    loader = DataLoader(dataset, batch_size=settings.batch_size, shuffle=True, generator=generator)
    optimizer = torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.momentum)
    model.train()
    loss_fn = torch.nn.BCEWithLogitsLoss()
    params = list(model.parameters())
    total_loss, batches, steps = 0.0, 0, 0
    loop_started = time.perf_counter()
    for _ in range(settings.epochs):
        for xb, yb in loader:
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb).reshape(-1), yb)
            loss.backward()
            total_loss += float(loss.detach())
            batches += 1
            optimizer.step()
            steps += 1
            if settings.proximal_mu > 0:
                with torch.no_grad():
                    for p, g in zip(params, global_params, strict=True):
                        p.sub_(settings.lr * settings.proximal_mu * (p - g))
    loop_seconds = time.perf_counter() - loop_started
    model.eval()
    return TrainOutcome(
        loss=total_loss / max(batches, 1),
        steps=steps,
        seconds=time.perf_counter() - started,
        examples=len(x),
        loop_seconds=loop_seconds,
    )


def train_private(
    model,  # torch.nn.Module, already holding the global weights
    x: np.ndarray,
    y: np.ndarray,
    units: PrivacyUnits,
    settings: LocalTraining,
    privacy: PrivacyState,
) -> TrainOutcome:
    """One round of DP-SGD over `units` (the plan's steps, sample rate and clipping norm, the
    run's noise multiplier); the steps are added to `privacy.history`."""
    from federation.dpsgd import DPStepSettings, train_dp_units

    started = time.perf_counter()
    outcome = train_dp_units(
        model,
        x,
        y,
        units,
        DPStepSettings(
            steps=privacy.steps_per_round,
            sample_rate=privacy.sample_rate,
            lr=settings.lr,
            momentum=settings.momentum,
            max_grad_norm=privacy.max_grad_norm,
            noise_multiplier=privacy.noise_multiplier,
            proximal_mu=settings.proximal_mu,
        ),
        settings.noise,
    )
    privacy.record_round(outcome.steps)
    return TrainOutcome(
        loss=outcome.loss,
        steps=outcome.steps,
        seconds=time.perf_counter() - started,
        examples=len(x),
        loop_seconds=outcome.loop_seconds,
    )
