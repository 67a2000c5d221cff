"""Split neural network (SplitNN; Vepakomma et al., 2018) for two-party vertical credit scoring.

The platform's **bottom** model maps its encoded trade features to a `k`-dimensional
embedding, clipped to L2 norm `clip` per merchant (so what crosses is bounded, which DP needs);
the bank's **top** model maps [its encoded features, the embedding] to the default log-odds.
Each half is saved by its owner with its own encoder; a half's hash (`weights_digest`) covers
its weights and its encoder, and the bank's meta names the bottom hash it was trained with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from federation.errors import YinqiError
from federation.model import get_weights, set_weights, weights_digest
from federation.preprocess import Encoder

if TYPE_CHECKING:  # pragma: no cover
    import torch

BOTTOM_FILE, TOP_FILE = "bottom.pt", "model.pt"
ENCODER_FILE, META_FILE, REPORT_FILE = "encoder.json", "meta.json", "report.json"


class HalfError(YinqiError):
    """A model half that is missing, incomplete or does not fit the other half."""


def mlp(n_in: int, n_out: int, hidden: int, seed: int) -> torch.nn.Module:
    import torch
    from torch import nn

    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        if hidden <= 0:
            return nn.Sequential(nn.Linear(n_in, n_out))
        return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, n_out))
    finally:
        torch.random.set_rng_state(state)


def bottom_model(n_features: int, embedding_dim: int, hidden: int = 16, seed: int = 0) -> torch.nn.Module:
    """Platform half: features -> embedding (`hidden=0`: a linear map, i.e. partial logits for k=1)."""
    return mlp(n_features, embedding_dim, hidden, seed)


def top_model(n_features: int, embedding_dim: int, hidden: int = 16, seed: int = 0) -> torch.nn.Module:
    """Bank half: [bank features, embedding] -> default log-odds."""
    return mlp(n_features + embedding_dim, 1, hidden, seed + 1)


def clip_rows(e: torch.Tensor, clip: float) -> torch.Tensor:
    """Scale each row to L2 norm at most `clip` (differentiable)."""
    import torch

    norms = e.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return e * torch.clamp(clip / norms, max=1.0)


def embed(bottom: torch.nn.Module, x: np.ndarray, clip: float) -> np.ndarray:
    """Clipped embeddings of encoded rows (no gradient): what scoring sends."""
    import torch

    bottom.eval()
    with torch.no_grad():
        out: np.ndarray = clip_rows(bottom(torch.as_tensor(x, dtype=torch.float32)), clip).numpy().astype(np.float32)
    return out


def top_logits(top: torch.nn.Module, b: np.ndarray, e: np.ndarray) -> np.ndarray:
    import torch

    top.eval()
    with torch.no_grad():
        inputs = torch.cat([torch.as_tensor(b, dtype=torch.float32), torch.as_tensor(e, dtype=torch.float32)], 1)
        out: np.ndarray = top(inputs).reshape(-1).numpy().astype(np.float64)
    return out


def half_digest(model: torch.nn.Module, encoder: Encoder) -> str:
    return weights_digest(get_weights(model), encoder.to_dict())


def combined_digest(top_sha256: str, bottom_sha256: str) -> str:
    """One hash binding both halves: what the registry stores and anchors."""
    import hashlib

    record = json.dumps(
        {"bottom": bottom_sha256, "kind": "vertical", "top": top_sha256}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(record.encode()).hexdigest()


def save_half(directory: str | Path, file: str, model: torch.nn.Module, encoder: Encoder, meta: dict[str, Any]) -> str:
    """Write the half's weights, encoder and meta (with its hash); returns the hash."""
    import torch

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    digest = half_digest(model, encoder)
    torch.save(model.state_dict(), directory / file)
    (directory / ENCODER_FILE).write_text(json.dumps(encoder.to_dict(), indent=2, sort_keys=True))
    (directory / META_FILE).write_text(json.dumps({**meta, "sha256": digest}, indent=2, sort_keys=True, default=str))
    return digest


@dataclass
class LoadedHalf:
    model: torch.nn.Module
    encoder: Encoder
    meta: dict[str, Any]
    sha256: str


def load_half(directory: str | Path, *, bottom: bool) -> LoadedHalf:
    """Load a saved half and check that its files still hash to what its meta says."""
    import torch

    directory = Path(directory)
    file = BOTTOM_FILE if bottom else TOP_FILE
    for name in (file, ENCODER_FILE, META_FILE):
        if not (directory / name).is_file():
            raise HalfError(
                f"{directory}: {name} missing; not a vertical {'bottom' if bottom else 'top'} model directory"
            )
    meta = json.loads((directory / META_FILE).read_text())
    encoder = Encoder.from_dict(json.loads((directory / ENCODER_FILE).read_text()))
    k, hidden, seed = int(meta["embedding_dim"]), int(meta["hidden"]), int(meta.get("seed", 0))
    model = (
        bottom_model(encoder.n_features, k, hidden, seed) if bottom else top_model(encoder.n_features, k, hidden, seed)
    )
    state = torch.load(directory / file, weights_only=True)
    set_weights(model, [t.numpy() for t in state.values()])
    digest = half_digest(model, encoder)
    if digest != meta.get("sha256"):
        raise HalfError(
            f"{directory}: the files hash to {digest[:12]}…, meta.json says {str(meta.get('sha256'))[:12]}…: changed after saving"
        )
    return LoadedHalf(model, encoder, meta, digest)
