"""The torch credit model (logistic regression or a small MLP) and its model directory.

One model class serves centralized training, every platform's local training and scoring, so
weights move between them as a plain list of numpy arrays (Flower's `NDArrays`). A model
directory holds `model.pt` (state dict), `encoder.json` (the federated preprocessing),
`meta.json` (architecture, label, training settings) and `report.json` (how it was trained).
torch is imported lazily: importing this module costs nothing, so the SecAgg+ crypto stages of a
ClientApp never pay for it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from federation import files
from federation.errors import YinqiError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import torch

    from federation.preprocess import Encoder

MODEL_FILE = "model.pt"
ENCODER_FILE = "encoder.json"
META_FILE = "meta.json"
REPORT_FILE = "report.json"
ARCHITECTURES = ("logistic", "mlp")


class ModelError(YinqiError):
    """A model directory that cannot be used (missing, incomplete, wrong architecture)."""


def build_model(n_features: int, architecture: str = "logistic", hidden: int = 16, seed: int = 0) -> torch.nn.Module:
    """A fresh model with seeded initial weights (the same seed gives the same start everywhere)."""
    import torch
    from torch import nn

    if architecture not in ARCHITECTURES:
        raise ModelError(f"model architecture '{architecture}' unknown; expected one of {list(ARCHITECTURES)}")
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        if architecture == "logistic":
            model: nn.Module = nn.Sequential(nn.Linear(n_features, 1))
        else:
            model = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, 1))
    finally:
        torch.random.set_rng_state(generator_state)
    return model


def get_weights(model: torch.nn.Module) -> list[np.ndarray]:
    """The model's state as numpy arrays, in state-dict order (Flower's NDArrays)."""
    return [t.detach().cpu().numpy().copy() for t in model.state_dict().values()]


def set_weights(model: torch.nn.Module, weights: list[np.ndarray]) -> None:
    """Load numpy arrays (state-dict order) into the model; shapes must match exactly."""
    import torch

    keys = list(model.state_dict().keys())
    if len(keys) != len(weights):
        raise ModelError(f"expected {len(keys)} weight arrays, got {len(weights)}")
    state = {}
    for key, current, array in zip(keys, model.state_dict().values(), weights, strict=True):
        if tuple(current.shape) != tuple(np.shape(array)):
            raise ModelError(f"weight '{key}' has shape {tuple(np.shape(array))}, expected {tuple(current.shape)}")
        state[key] = torch.as_tensor(np.asarray(array), dtype=current.dtype)
    model.load_state_dict(state, strict=True)


def predict_logits(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """Raw scores (log-odds) for encoded rows."""
    import torch

    model.eval()
    with torch.no_grad():
        logits: np.ndarray = model(torch.as_tensor(x, dtype=torch.float32)).reshape(-1).numpy().astype(np.float64)
    return logits


def predict_proba_array(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """Default probabilities for encoded rows."""
    logits = predict_logits(model, x)
    probabilities: np.ndarray = 1.0 / (1.0 + np.exp(-np.clip(logits, -50, 50)))
    return probabilities


def weights_digest(weights: list[np.ndarray], encoder_dict: dict[str, Any]) -> str:
    """sha256 over the weights' dtype/shape/bytes and the canonical encoder JSON.

    Computed from content, not file bytes, so re-saving the same model gives the same hash.
    """
    digest = hashlib.sha256()
    for array in weights:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())
    digest.update(json.dumps(encoder_dict, sort_keys=True, separators=(",", ":")).encode())
    return digest.hexdigest()


def save_model(model_dir: str | Path, model: torch.nn.Module, encoder: Encoder, meta: dict[str, Any]) -> str:
    """Write `model.pt`, `encoder.json` and `meta.json` into `model_dir`; returns the version hash.

    Whole or absent: each file is written to a temporary name and renamed, and `meta.json` (which
    names the version hash of the weights and the encoder) is removed first and written last, so
    a process killed half-way leaves a directory `load_model` refuses, never a mixed model.
    `meta` must name the `architecture` (and `hidden` for the MLP); the version hash is added.
    """
    import torch

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / META_FILE).unlink(missing_ok=True)
    encoder_dict = encoder.to_dict()
    version = weights_digest(get_weights(model), encoder_dict)
    files.write_with(model_dir / MODEL_FILE, lambda path: torch.save(model.state_dict(), path))
    files.write_text(model_dir / ENCODER_FILE, json.dumps(encoder_dict, indent=2, sort_keys=True))
    full_meta = {
        "architecture": "logistic",
        "hidden": 16,
        **meta,
        "n_features": encoder.n_features,
        "version_hash": version,
    }
    files.write_text(model_dir / META_FILE, json.dumps(full_meta, indent=2, sort_keys=True, default=str))
    return version


def write_report(model_dir: str | Path, report: dict[str, Any]) -> Path:
    """Write `report.json` beside the model (whole or absent)."""
    return files.write_text(Path(model_dir) / REPORT_FILE, json.dumps(report, indent=2, sort_keys=True, default=str))


@dataclass
class ScoringModel:
    """A loaded model directory: encoder + torch model, ready to score feature tables."""

    model: Any
    encoder: Encoder
    meta: dict[str, Any]
    version_hash: str
    path: Path
    report: dict[str, Any] = field(default_factory=dict)

    def require_consistent(self) -> None:
        """Refuse a directory whose weights and encoder are not the ones `meta.json` names (files
        changed or mixed from two models); the registry's audit checks against the anchored hash."""
        recorded = self.meta.get("version_hash")
        if recorded is not None and recorded != self.version_hash:
            raise ModelError(
                f"{self.path}: {MODEL_FILE} and {ENCODER_FILE} do not match the version hash in {META_FILE} "
                f"({str(recorded)[:12]}, files give {self.version_hash[:12]}): the directory was changed or mixed"
            )

    def predict_proba(self, frame: pd.DataFrame, file: str = "<data>") -> np.ndarray:
        """One default probability per row of `frame`, in row order."""
        return predict_proba_array(self.model, self.encoder.transform(frame, file=file))


def load_model(model_dir: str | Path) -> ScoringModel:
    """Load a model directory written by `save_model`; a missing, damaged or mixed one is a
    `ModelError` naming the file."""
    import pickle

    import torch

    from federation.preprocess import Encoder

    model_dir = Path(model_dir)
    for name in (MODEL_FILE, ENCODER_FILE, META_FILE):
        if not (model_dir / name).is_file():
            raise ModelError(
                f"{model_dir}: not a model directory ({name} missing); train one with `yinqi train --out DIR`"
            )
    meta = _json_file(model_dir / META_FILE)
    try:
        encoder = Encoder.from_dict(_json_file(model_dir / ENCODER_FILE))
        architecture, hidden = str(meta.get("architecture", "logistic")), int(meta.get("hidden", 16))
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise ModelError(f"{model_dir}: damaged model metadata ({type(exc).__name__}: {exc})") from None
    model = build_model(encoder.n_features, architecture, hidden)
    try:
        state = torch.load(model_dir / MODEL_FILE, map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, OSError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ModelError(
            f"{model_dir / MODEL_FILE}: not the weights of the model in meta.json (damaged or from another model: {reason})"
        ) from None
    model.eval()
    version = weights_digest(get_weights(model), encoder.to_dict())
    report_path = model_dir / REPORT_FILE
    report = _json_file(report_path) if report_path.is_file() else {}
    return ScoringModel(model=model, encoder=encoder, meta=meta, version_hash=version, path=model_dir, report=report)


def _json_file(path: Path) -> dict[str, Any]:
    """A JSON object from `path`, or a ModelError naming the file."""
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: damaged ({type(exc).__name__}: {str(exc)[:120]})") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: damaged (expected a JSON object)")
    return data
