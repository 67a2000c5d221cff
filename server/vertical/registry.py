"""Registering a vertical model: the bank's top half with the platform's bottom-half hash.

The registry stores the bank's files and one hash binding both halves
(`federation.vertical.model.combined_digest(top, bottom)`), which is queued for anchoring like
any model hash. An auditor re-hashes the bank's files to get the top hash, reads the bottom
hash from `meta.json` (the platform re-hashes its own files), and recomputes the binding.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from federation.vertical.model import combined_digest, load_half
from server.registry import ModelVersion, Registry


def register_vertical(registry: Registry, model_dir: str | Path, *, anchor: bool = True) -> ModelVersion:
    """Register the top half in `model_dir` (written by the vertical ServerApp)."""
    model_dir = Path(model_dir)
    half = load_half(model_dir, bottom=False)  # checks the files still hash to their meta
    report: dict[str, Any] = (
        json.loads((model_dir / "report.json").read_text()) if (model_dir / "report.json").is_file() else {}
    )
    bottom = str(half.meta["bottom_sha256"])
    final = report.get("final", {}) if isinstance(report.get("final"), dict) else {}
    info = {
        "auc": final.get("test_auc"),
        "ks": final.get("test_ks"),
        "rounds": half.meta.get("epochs") or (report.get("settings") or {}).get("epochs"),
        "participants": [str(half.meta.get("platform", ""))],
        "epsilon": {k: float(v) for k, v in (report.get("epsilon") or {}).items()},
        "extra": {
            "mode": "vertical",
            "top_sha256": half.sha256,
            "bottom_sha256": bottom,
            "platform": half.meta.get("platform"),
            "session": half.meta.get("session"),
            "label_dp": half.meta.get("label_dp"),
        },
    }
    return registry.register_hashed(model_dir, combined_digest(half.sha256, bottom), info, anchor=anchor)
