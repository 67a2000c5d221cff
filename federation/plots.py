"""Pictures people would rather look at than read: PNGs written by the CLI and the benches.

- `roc_ks_png`: the ROC curve (with its AUC) and the KS curves (the cumulative score shares of
  defaults and non-defaults, the KS gap marked) of a model on labelled data;
- `rounds_png`: AUC/KS per round and ε spent per platform per round, from a run's report;
- `tradeoff_png`: AUC against ε (the privacy/utility trade-off a bench measured);
- `device_map_png`: leased devices at their last position over the geofence, alerts in red.

matplotlib's Agg backend (no display), English labels (the default font has no CJK glyphs).
Each function draws only the values it is given and returns the file it wrote.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    from federation import files

    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    files.write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)
    return path


def roc_ks_png(y: np.ndarray, scores: np.ndarray, path: Path, title: str = "") -> Path:
    """ROC and KS curves of `scores` (default probabilities) against labels `y` (1 = default)."""
    from sklearn.metrics import roc_curve

    from federation.metrics import ks_statistic, roc_auc

    y = np.asarray(y).astype(int)
    scores = np.asarray(scores, dtype=float)
    fpr, tpr, _ = roc_curve(y, scores)
    auc, ks = roc_auc(y, scores), ks_statistic(y, scores)
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    left.plot(fpr, tpr, color="#2b6cb0", lw=2, label=f"model (AUC {auc:.3f})")
    left.plot([0, 1], [0, 1], color="#a0aec0", ls="--", label="chance")
    left.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC", xlim=(0, 1), ylim=(0, 1.01))
    left.legend(loc="lower right")
    thresholds = np.sort(np.unique(scores))
    bad = np.searchsorted(np.sort(scores[y == 1]), thresholds, side="right") / max(int((y == 1).sum()), 1)
    good = np.searchsorted(np.sort(scores[y == 0]), thresholds, side="right") / max(int((y == 0).sum()), 1)
    right.plot(thresholds, good, color="#38a169", lw=2, label="non-defaults (cumulative)")
    right.plot(thresholds, bad, color="#e53e3e", lw=2, label="defaults (cumulative)")
    if len(thresholds):
        at = int(np.argmax(np.abs(good - bad)))
        right.vlines(thresholds[at], bad[at], good[at], color="#1a202c", lw=2, label=f"KS {ks:.3f}")
    right.set(xlabel="predicted default probability", ylabel="share at or below", title="KS", ylim=(0, 1.01))
    right.legend(loc="lower right")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def rounds_png(report: Mapping[str, Any], path: Path) -> Path:
    """AUC and KS per round (federated evaluation, and the bank's test set when it had one) and
    ε spent per platform after each round, from a run's `report.json` layout."""
    rounds = [r for r in report.get("rounds") or [] if isinstance(r, Mapping)]
    numbers = [r.get("round") for r in rounds]
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    for key, label, colour in (
        ("federated_auc", "federated AUC", "#2b6cb0"),
        ("federated_ks", "federated KS", "#dd6b20"),
        ("test_auc", "test AUC", "#38a169"),
        ("test_ks", "test KS", "#d53f8c"),
    ):
        points = [(n, r[key]) for n, r in zip(numbers, rounds, strict=True) if r.get(key) is not None]
        if points:
            left.plot(*zip(*points, strict=True), marker="o", color=colour, label=label)
    left.set(xlabel="round", ylabel="value", title="AUC / KS per round", ylim=(0, 1.02))
    if left.get_legend_handles_labels()[0]:
        left.legend(loc="lower right")
    spent: dict[str, list[tuple[int, float]]] = {}
    for n, r in zip(numbers, rounds, strict=True):
        for c in r.get("clients") or []:
            if isinstance(c, Mapping) and c.get("epsilon") is not None:
                spent.setdefault(str(c.get("platform")), []).append((int(n or 0), float(c["epsilon"])))
    for platform, spent_points in sorted(spent.items()):
        right.plot(*zip(*spent_points, strict=True), marker="o", label=platform)
    right.set(
        xlabel="round", ylabel="ε spent", title="ε per platform" if spent else "ε per platform (no DP in this run)"
    )
    if spent:
        right.legend(loc="upper left")
    for ax in (left, right):
        ax.xaxis.get_major_locator().set_params(integer=True)
    return _save(fig, path)


def tradeoff_png(points: Sequence[tuple[str, float, float]], path: Path, baseline: float | None = None) -> Path:
    """AUC against ε: one point per (label, ε, AUC); `baseline` (e.g. no DP) as a line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    ordered = sorted(points, key=lambda p: p[1])
    ax.plot([p[1] for p in ordered], [p[2] for p in ordered], marker="o", color="#2b6cb0", label="DP-SGD")
    for label, eps, auc in ordered:
        ax.annotate(label, (eps, auc), textcoords="offset points", xytext=(4, -12), fontsize=8)
    if baseline is not None:
        ax.axhline(baseline, color="#a0aec0", ls="--", label=f"no DP (AUC {baseline:.3f})")
    ax.set(xlabel="ε (privacy budget per platform)", ylabel="AUC", title="privacy / utility trade-off")
    ax.legend(loc="lower right")
    return _save(fig, path)


def device_map_png(
    devices: Sequence[Mapping[str, Any]],
    box: Sequence[float],
    zones: Sequence[Mapping[str, Any]],
    path: Path,
    title: str = "devices and alerts",
) -> Path:
    """Devices (`device_id`, `lat`, `lon`, `alert` "raised" or not) over the geofence box
    (`lat_min, lat_max, lon_min, lon_max`) and zone polygons ([[lat, lon], ...])."""
    from matplotlib.patches import Polygon, Rectangle

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 5.5))
    lat_min, lat_max, lon_min, lon_max = (float(v) for v in box)
    ax.add_patch(
        Rectangle(
            (lon_min, lat_min),
            lon_max - lon_min,
            lat_max - lat_min,
            fill=False,
            ls="--",
            ec="#2b6cb0",
            label="geofence",
        )
    )
    for zone in zones:
        ax.add_patch(Polygon([(p[1], p[0]) for p in zone["polygon"]], alpha=0.3, fc="#38a169", label=str(zone["name"])))
    raised = [d for d in devices if d.get("alert") == "raised"]
    clear = [d for d in devices if d.get("alert") != "raised"]
    for group, colour, label in ((clear, "#38a169", "no open alert"), (raised, "#e53e3e", "alert raised")):
        if group:
            ax.scatter(
                [d["lon"] for d in group],
                [d["lat"] for d in group],
                c=colour,
                s=40,
                ec="#1a202c",
                label=label,
                zorder=3,
            )
    for d in raised:
        ax.annotate(str(d["device_id"]), (d["lon"], d["lat"]), textcoords="offset points", xytext=(5, 5), fontsize=8)
    lats = [float(d["lat"]) for d in devices] + [lat_min, lat_max]
    lons = [float(d["lon"]) for d in devices] + [lon_min, lon_max]
    pad_lat, pad_lon = (max(lats) - min(lats)) * 0.05 or 1, (max(lons) - min(lons)) * 0.05 or 1
    ax.set(
        xlim=(min(lons) - pad_lon, max(lons) + pad_lon),
        ylim=(min(lats) - pad_lat, max(lats) + pad_lat),
        xlabel="longitude (°E)",
        ylabel="latitude (°N)",
        title=f"{title} ({len(devices)} devices, {len(raised)} with an open alert)",
    )
    ax.set_aspect("equal", adjustable="box")
    ax.legend(loc="best", fontsize=8)
    return _save(fig, path)


def model_pictures(
    model_dir: Path, test: Path | None = None, label: str = "default", positive: object | None = None
) -> list[Path]:
    """The pictures `yinqi train` writes next to a model: `rounds.png` from its report.json and,
    with the bank's labelled test file, `roc_ks.png` of the final model on it."""
    model_dir = Path(model_dir)
    written = []
    report_file = model_dir / "report.json"
    if report_file.is_file():
        report = json.loads(report_file.read_text())
        if isinstance(report, dict) and report.get("rounds"):
            written.append(rounds_png(report, model_dir / "rounds.png"))
    if test is not None and (model_dir / "model.pt").is_file():
        from federation.model import load_model
        from federation.preprocess import load_labeled

        table = load_labeled(test, label=label, positive=positive)
        scores = load_model(model_dir).predict_proba(table.frame, file=str(test))
        written.append(roc_ks_png(table.y, scores, model_dir / "roc_ks.png", f"on {Path(test).name}"))
    return written
