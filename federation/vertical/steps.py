"""One training step of each half, with or without DP (`federation.vertical.privacy`).

Platform (`PlatformHalf`): `forward(rows)` releases the batch's clipped (and, with DP,
noised) embeddings; `backward(grads)` updates the bottom model from the gradients the bank
returned for that batch: the surrogate loss Σ⟨e_i, g_i⟩/B has exactly those gradients, and
with DP each row's parameter gradient is clipped and the sum noised (DP-SGD).

Bank (`BankHalf`): `step(b, e, y, matched)` updates the top model on the matched rows and
returns ∂ℓ_i/∂e_i for every row of the batch: zero for rows the bank does not hold (or keeps
out of training); with DP every row's gradient is clipped and noised, so the platform cannot
tell a matched row from an unmatched one beyond the bank's ε.

Per-row gradients come from `torch.func` (vmap of grad). Noise is drawn from a generator the
caller seeds (from OS entropy unless a run asks to be reproducible).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from federation.vertical.model import clip_rows

if TYPE_CHECKING:  # pragma: no cover
    import torch


@dataclass(frozen=True)
class Dp:
    """DP settings of one side: σ and the clip norms of its two parts."""

    noise_multiplier: float
    crossing_clip: float  # the embedding (platform) or the returned gradient (bank)
    model_clip: float = 1.0  # per-row parameter gradient (DP-SGD of the own half)


def secure_generator(seed: int | None) -> torch.Generator:
    """A torch generator: seeded from OS entropy, or from `seed` for reproducible runs."""
    import secrets

    import torch

    generator = torch.Generator()
    generator.manual_seed(secrets.randbits(63) if seed is None else int(seed))
    return generator


def _noisy_mean_update(
    model: torch.nn.Module, per_row: dict[str, torch.Tensor], rows: int, dp: Dp | None, generator: torch.Generator
) -> None:
    """Set `.grad` to the mean of per-row gradients (clipped + noised sum under DP)."""
    import torch

    if dp is not None:
        flat = torch.cat([g.reshape(g.shape[0], -1) for g in per_row.values()], 1)
        factor = torch.clamp(dp.model_clip / flat.norm(dim=1).clamp_min(1e-12), max=1.0)
    for name, param in model.named_parameters():
        grads = per_row[name]
        if dp is None:
            total = grads.sum(0)
        else:
            total = (grads * factor.view(-1, *[1] * (grads.dim() - 1))).sum(0)
            noise = torch.normal(0.0, dp.noise_multiplier * dp.model_clip, size=total.shape, generator=generator)
            total = total + noise
        param.grad = total / max(rows, 1)


class PlatformHalf:
    """The bottom model and its optimizer, stepping through batches of encoded rows."""

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        clip: float,
        lr: float,
        momentum: float = 0.9,
        dp: Dp | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        import torch

        self.model = model
        self.clip = clip
        self.dp = dp
        self.generator = generator or secure_generator(None)
        self.optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
        self._pending: Any = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """The batch's released embeddings; remembered until its gradients come back."""
        import torch

        self.model.eval()
        xs = torch.as_tensor(x, dtype=torch.float32)
        with torch.no_grad():
            e = clip_rows(self.model(xs), self.clip)
            if self.dp is not None:
                e = e + torch.normal(0.0, self.dp.noise_multiplier * self.clip, size=e.shape, generator=self.generator)
        self._pending = xs
        return e.numpy().astype(np.float32)

    def backward(self, grads: np.ndarray) -> None:
        """Apply the bank's gradients for the last forward batch."""
        import torch
        from torch.func import functional_call, grad, vmap

        if self._pending is None:
            raise ValueError("backward() without a forward batch")
        xs, self._pending = self._pending, None
        g = torch.as_tensor(np.asarray(grads, dtype=np.float32))
        if g.shape[0] != xs.shape[0]:
            raise ValueError(f"{g.shape[0]} gradients for a batch of {xs.shape[0]} rows")
        params = {k: v.detach() for k, v in self.model.named_parameters()}
        model, clip = self.model, self.clip

        def surrogate(p: dict[str, torch.Tensor], x: torch.Tensor, gi: torch.Tensor) -> torch.Tensor:
            e = clip_rows(functional_call(model, p, (x.unsqueeze(0),)), clip).squeeze(0)
            return (e * gi).sum()

        self.model.train()
        per_row = vmap(grad(surrogate), in_dims=(None, 0, 0))(params, xs, g)
        self.optimizer.zero_grad()
        _noisy_mean_update(self.model, per_row, xs.shape[0], self.dp, self.generator)
        self.optimizer.step()


class BankHalf:
    """The top model and its optimizer; one `step` per batch the platform releases."""

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        lr: float,
        momentum: float = 0.9,
        dp: Dp | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        import torch

        self.model = model
        self.dp = dp
        self.generator = generator or secure_generator(None)
        self.optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)

    def step(self, b: np.ndarray, e: np.ndarray, y: np.ndarray, matched: np.ndarray) -> tuple[np.ndarray, float]:
        """Update on the matched rows; (gradient per batch row, mean loss of matched rows).

        `b`, `y` are given for every batch row (any values where `matched` is False).
        """
        import torch
        from torch.func import functional_call, grad_and_value, vmap

        rows = e.shape[0]
        out = torch.zeros((rows, e.shape[1]), dtype=torch.float32)
        loss = float("nan")
        index = np.flatnonzero(matched)
        if len(index):
            bs = torch.as_tensor(b[index], dtype=torch.float32)
            es = torch.as_tensor(e[index], dtype=torch.float32)
            ys = torch.as_tensor(y[index], dtype=torch.float32)
            params = {k: v.detach() for k, v in self.model.named_parameters()}
            model = self.model

            def row_loss(
                p: dict[str, torch.Tensor], bi: torch.Tensor, ei: torch.Tensor, yi: torch.Tensor
            ) -> torch.Tensor:
                z = functional_call(model, p, (torch.cat([bi, ei]).unsqueeze(0),)).reshape(())
                return torch.nn.functional.binary_cross_entropy_with_logits(z, yi)

            self.model.train()
            (per_row, per_e), losses = vmap(grad_and_value(row_loss, argnums=(0, 2)), in_dims=(None, 0, 0, 0))(
                params, bs, es, ys
            )
            loss = float(losses.mean())
            if self.dp is not None:
                per_e = clip_rows(per_e, self.dp.crossing_clip)
            out[torch.as_tensor(index)] = per_e.detach()
            self.optimizer.zero_grad()
            _noisy_mean_update(self.model, per_row, len(index), self.dp, self.generator)
            self.optimizer.step()
        if self.dp is not None:  # every row, matched or not: the noise hides which is which
            out = out + torch.normal(
                0.0, self.dp.noise_multiplier * self.dp.crossing_clip, size=out.shape, generator=self.generator
            )
        return out.numpy().astype(np.float32), loss
