"""Registering and auditing a vertical model: the bank's top half with the platform's
bottom-half hash.

The registry stores the bank's files and one hash binding both halves
(`federation.vertical.model.combined_digest(top, bottom)`), which is queued for anchoring like
any model hash. What the bank (and an auditor at the bank) can check, `recheck_vertical`: the
top half's files re-hashed, the bottom hash the top half was trained with, and that the two bind
to the registered (anchored) hash. The bottom half's files never leave the platform: the
platform re-hashes them itself (`yinqi vertical hash DIR --expect BOTTOM_SHA256`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from federation.vertical.model import HalfError, combined_digest, load_half
from server.credit.errors import BankError
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


def recheck_vertical(row: ModelVersion) -> dict[str, Any]:
    """Re-hash what the bank holds of a registered vertical version; BankError ("refused") when
    anything differs from what was registered (and anchored).

    1. the stored top half (`model.pt`, `encoder.json`) hashes to the registered top hash;
    2. its `meta.json` names the registered bottom hash (the half it was trained with);
    3. `combined_digest(top, bottom)` is the version's registered hash, the one anchored.
    """
    summary = row.summary or {}
    where = f"model {row.version} (vertical)"
    try:
        half = load_half(row.path, bottom=False)
    except (HalfError, OSError, ValueError, KeyError) as exc:
        raise BankError(
            f"{where}: the stored top half at {row.path} cannot be re-hashed ({exc}): "
            "the model changed after registration",
            "refused",
        ) from None
    checks = (
        ("top half", half.sha256, summary.get("top_sha256")),
        ("bottom hash in the top half's meta.json", str(half.meta.get("bottom_sha256")), summary.get("bottom_sha256")),
        ("binding of both halves", combined_digest(half.sha256, str(half.meta.get("bottom_sha256"))), row.sha256),
    )
    for what, now, registered in checks:
        if now != registered:
            raise BankError(
                f"{where}: the {what} is {now}, the registry holds {registered}: the model changed after registration",
                "refused",
            )
    return {
        "mode": "vertical",
        "top_sha256": half.sha256,
        "bottom_sha256": str(half.meta["bottom_sha256"]),
        "platform": summary.get("platform"),
        "bottom_files": "held by the platform, which checks them: yinqi vertical hash DIR --expect BOTTOM_SHA256",
    }
