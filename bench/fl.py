"""Benchmark: federated credit scoring quality and speed, against baselines from the same run.

One table: AUC/KS on the held-out test file for central RandomForest, central torch, each
platform alone, federated (SecAgg+) and federated + DP at ε ∈ {1, 3, 8}; round wall time plain
vs SecAgg+; DP-SGD step time vs plain SGD, with seeded (reproducible) noise and with the
OS-entropy noise every platform draws by default (Opacus' floating-point-safe noise); round time
for 3, 10 and 30 platforms; and the same rounds on a loopback deployment
(`yinqi.harness.loopback.run_deployed`) beside the simulation. The federated runs use the
default, OS-entropy noise, so their AUC varies a little from run to run.

    python bench/fl.py            # default run (~2-3 minutes on 2 cores)
    python bench/fl.py --quick    # smaller run
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from federation.metrics import ks_statistic, roc_auc
from server.fl.config import FederationConfig

console = Console(width=max(Console().width, 150))


def steady_round_seconds(report) -> float:  # type: ignore[no-untyped-def]
    """Median round time, leaving out round 1 (imports, noise calibration, warm-up)."""
    seconds = report.round_seconds[1:] or report.round_seconds
    return statistics.median(seconds)


def local_only(cfg: FederationConfig, index: int) -> tuple[float, float]:
    """One platform training alone on its own rows (its own encoder), scored on the test file."""
    from federation.model import predict_proba_array
    from federation.preprocess import Encoder, compute_stats, load_labeled
    from yinqi.harness.central import train_torch

    table = load_labeled(cfg.clients[index], label=cfg.label, positive=cfg.positive)
    encoder = Encoder.from_stats(compute_stats(table.frame), cfg.max_categories)
    model = train_torch(cfg, encoder.transform(table.frame), table.y.astype(np.float32), encoder.n_features)
    test = load_labeled(cfg.test, label=cfg.label, positive=cfg.positive)
    p = predict_proba_array(model, encoder.transform(test.frame))
    return roc_auc(test.y, p), ks_statistic(test.y, p)


def step_times(cfg: FederationConfig, repeats: int = 5) -> dict[str, float]:
    """Seconds per optimizer step (data loading, forward, backward, step; DP: per-sample
    gradients, clipping, noise) for plain SGD, DP-SGD with seeded noise and DP-SGD with the
    default OS-entropy noise, on platform 1's rows (best of `repeats` interleaved passes: the
    cores are shared, the minimum is the least disturbed)."""
    from clients.train import LocalTraining, train_local
    from federation.model import build_model
    from federation.preprocess import Encoder, compute_stats, load_labeled
    from federation.privacy import NoiseSource, PrivacyState

    table = load_labeled(cfg.clients[0])
    encoder = Encoder.from_stats(compute_stats(table.frame))
    x, y = encoder.transform(table.frame), table.y.astype(np.float32)
    modes: dict[str, NoiseSource | None] = {"plain": None, "dp-seeded": NoiseSource(seed=11), "dp-os": NoiseSource()}
    timings: dict[str, list[float]] = {mode: [] for mode in modes}
    for _ in range(repeats + 1):  # the first pass warms torch/opacus up and is dropped
        for mode, noise in modes.items():
            privacy = None
            if noise is not None:
                privacy = PrivacyState.plan(
                    epsilon=8.0,
                    delta=1e-5,
                    rows=len(x),
                    batch_size=cfg.batch_size,
                    local_epochs=cfg.local_epochs,
                    rounds=cfg.rounds,
                    max_grad_norm=1.0,
                )
            settings = LocalTraining(
                epochs=cfg.local_epochs, batch_size=cfg.batch_size, lr=cfg.lr, noise=noise or NoiseSource()
            )
            outcome = train_local(build_model(encoder.n_features), x, y, settings, privacy)
            timings[mode].append(outcome.loop_seconds / outcome.steps)
    return {mode: min(values[1:]) for mode, values in timings.items()}


def shard(files: list[Path], n: int, out: Path) -> list[Path]:
    """Re-split the platforms' rows into `n` platforms (round-robin by merchant)."""
    pooled = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    merchants = {m: i % n for i, m in enumerate(sorted(pooled["merchant_id"].unique()))}
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        part = pooled[pooled["merchant_id"].map(merchants) == i]
        path = out / f"shard_{i + 1:02d}.csv"
        part.to_csv(path, index=False)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller data, fewer rounds and settings")
    parser.add_argument("--rounds", type=int, default=None, help="federated rounds (default 5, quick 3)")
    parser.add_argument(
        "--plot", type=Path, default=None, help="ε-vs-AUC PNG to write (default: in the run's temp dir)"
    )
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 5)
    epsilons = [8.0] if args.quick else [1.0, 3.0, 8.0]
    client_counts = [3, 10] if args.quick else [3, 10, 30]

    from federation.synth import make_feature_files
    from yinqi.harness.central import train_central
    from yinqi.harness.federated import quiet_flower, run_federation

    quiet_flower()
    work = Path(tempfile.mkdtemp(prefix="yinqi-bench-fl-"))
    merchants = 150 if args.quick else 300
    files, test = make_feature_files(work / "data", platforms=3, merchants=merchants, months=12, seed=11)
    base = dict(clients=files, test=test, rounds=rounds, seed=11)
    rows: list[tuple[str, str, str, str, str]] = []

    def fmt(x: float | None) -> str:
        return "-" if x is None else f"{x:.4f}"

    started = time.perf_counter()
    with console.status("central yardstick"):
        central = train_central(FederationConfig(**base, out=work / "central"), save=False)
    rows.append(
        (
            "central RandomForest",
            fmt(central.rf_auc),
            fmt(central.rf_ks),
            "",
            f"ΔAUC {central.rf_auc - central.torch_auc:+.4f} vs central torch",
        )
    )
    rows.append(("central torch (baseline)", fmt(central.torch_auc), fmt(central.torch_ks), "", "baseline"))
    for i, name in enumerate(p.stem for p in files):
        with console.status(f"local only: {name}"):
            auc, ks = local_only(FederationConfig(**base, out=work / "local"), i)
        rows.append((f"local only: {name}", fmt(auc), fmt(ks), "", f"ΔAUC {auc - central.torch_auc:+.4f}"))

    with console.status("federated, plain aggregation"):
        plain = run_federation(FederationConfig(**base, dp=False, secagg=False, out=work / "plain"))
    with console.status("federated, SecAgg+"):
        secure = run_federation(FederationConfig(**base, dp=False, secagg=True, out=work / "secure"))
    gap = secure.final["test_auc"] - central.torch_auc
    rows.append(
        (
            "federated (SecAgg+)",
            fmt(secure.final["test_auc"]),
            fmt(secure.final["test_ks"]),
            f"{steady_round_seconds(secure):.2f} s/round",
            f"ΔAUC {gap:+.4f} (goal ≥ -0.01)",
        )
    )
    dp_round = None
    tradeoff: list[tuple[str, float, float]] = []  # (label, max ε spent, test AUC) as measured
    for eps in epsilons:
        with console.status(f"federated + DP ε={eps:g} (SecAgg+)"):
            report = run_federation(
                FederationConfig(**base, dp=True, epsilon=eps, secagg=True, out=work / f"dp{eps:g}")
            )
        spent = max(report.epsilon.values())
        goal = " (goal ≥ -0.02)" if eps == 8.0 else ""
        rows.append(
            (
                f"federated + DP ε={eps:g} (max spent {spent:.2f})",
                fmt(report.final["test_auc"]),
                fmt(report.final["test_ks"]),
                f"{steady_round_seconds(report):.2f} s/round",
                f"ΔAUC {report.final['test_auc'] - central.torch_auc:+.4f}{goal}",
            )
        )
        tradeoff.append((f"ε={eps:g}", spent, float(report.final["test_auc"])))
        if eps == 8.0:
            dp_round = report

    t_plain, t_secure = steady_round_seconds(plain), steady_round_seconds(secure)
    rows.append(("round time: plain aggregation (baseline)", "", "", f"{t_plain:.3f} s", "baseline"))
    rows.append(("round time: SecAgg+", "", "", f"{t_secure:.3f} s", f"{t_secure / t_plain:.2f}× (goal ≤ 1.5×)"))
    steps = step_times(FederationConfig(**base, out=work / "x"))
    step_plain, step_seeded, step_os = steps["plain"], steps["dp-seeded"], steps["dp-os"]
    rows.append(("step time: plain SGD (baseline)", "", "", f"{step_plain * 1e3:.2f} ms", "baseline"))
    rows.append(
        (
            "step time: DP-SGD, seeded noise (--reproducible-noise)",
            "",
            "",
            f"{step_seeded * 1e3:.2f} ms",
            f"{step_seeded / step_plain:.2f}× (goal ≤ 2×)",
        )
    )
    rows.append(
        (
            "step time: DP-SGD, OS-entropy noise (default)",
            "",
            "",
            f"{step_os * 1e3:.2f} ms",
            f"{step_os / step_plain:.2f}×; {step_os / step_seeded:.2f}× seeded",
        )
    )

    scale_rounds = 2
    first = None
    for n in client_counts:
        clients = files if n == 3 else shard(files, n, work / f"shards{n}")
        with console.status(f"{n} platforms, SecAgg+ + DP, {scale_rounds + 1} rounds"):
            report = run_federation(
                FederationConfig(
                    clients=clients,
                    test=test,
                    rounds=scale_rounds + 1,
                    seed=11,
                    dp=True,
                    secagg=True,
                    out=work / f"n{n}",
                )
            )
        t = steady_round_seconds(report)
        first = first or t
        rows.append(
            (
                f"round time: {n} platforms (SecAgg+ + DP)",
                fmt(report.final["test_auc"]),
                fmt(report.final["test_ks"]),
                f"{t:.3f} s",
                "baseline" if n == client_counts[0] else f"{t / first:.2f}×",
            )
        )

    sim_round = steady_round_seconds(dp_round) if dp_round else None
    from yinqi.harness.loopback import run_deployed

    try:
        with console.status("loopback deployment: SuperLink + 3 SuperNodes, SecAgg+ + DP"):
            deployed = run_deployed(
                FederationConfig(**{**base, "rounds": 3}, dp=True, epsilon=8.0, secagg=True, out=work / "deployed")
            )
        t = steady_round_seconds(deployed)
        ratio = f"{t / sim_round:.2f}× simulation (goal ≤ 10 s/round)" if sim_round else ""
        rows.append(
            (
                "loopback deployment (SecAgg+ + DP)",
                fmt(deployed.final["test_auc"]),
                fmt(deployed.final["test_ks"]),
                f"{t:.2f} s/round",
                ratio,
            )
        )
    except Exception as exc:  # report, do not hide the rest of the table
        rows.append(("loopback deployment", "", "", "failed", f"{type(exc).__name__}: {str(exc)[:80]}"))

    table = Table(
        title=f"yinqi fl benchmark: 3 platforms, {central.rows} merchant-months, {rounds} rounds, held-out test file ({time.perf_counter() - started:.0f} s)"
    )
    for column in ("what", "test AUC", "test KS", "time", "vs baseline"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    from federation.plots import tradeoff_png

    no_dp = secure.final["test_auc"]
    console.print(
        f"ε-vs-AUC picture: {tradeoff_png(tradeoff, args.plot or work / 'fl-tradeoff.png', baseline=None if no_dp is None else float(no_dp))}"
    )


if __name__ == "__main__":
    main()
