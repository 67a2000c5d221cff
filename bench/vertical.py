"""Benchmark: vertical federated learning and PSI, against baselines measured in the same run.

Quality (one synthetic world, the same held-out merchants for every model): the bank alone
(its own features, all its labelled merchants), the pooled central model (both halves joined
in one place), vertical training without protection, with label DP by randomized response
(the default), with Gaussian noise on every returned gradient instead, and with DP on the
platform's embeddings as well. Goals: vertical ≥ bank alone + 0.05 AUC; within 0.01 of
central without protection and within 0.03 with it.

PSI (real gRPC with mutual TLS, both parties in this process on the shared cores): 100k × 100k
and 1M × 1M ids, time and bytes on the wire, against the naive exchange of SHA-256 hashes.

    python bench/vertical.py            # everything (~8-10 minutes on 2 shared cores)
    python bench/vertical.py --no-1m    # skip the 1M × 1M PSI (~3 minutes)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from concurrent import futures
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # no GOAWAY chatter when a server stops
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from federation.metrics import ks_statistic, roc_auc

console = Console(width=max(Console().width, 150))


def psi_run(workdir: Path, n: int, overlap: float, pki: Any) -> dict[str, Any]:
    """One PSI run over mutual TLS; returns time, bytes and the check against the truth."""
    import grpc

    from clients.vertical.psi_client import run_psi
    from clients.vertical.store import SessionBook
    from proto.channel import connect, listen
    from server.vertical.psi_service import register
    from server.vertical.store import PsiStore

    shared = int(n * overlap)
    bank = [f"M{i:08d}" for i in range(n)]
    platform = [f"M{i:08d}" for i in range(n - shared, 2 * n - shared)]
    store = PsiStore(f"sqlite:///{workdir / f'psi-bank-{n}.db'}")
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4), options=[("grpc.max_receive_message_length", 8 << 20)]
    )
    register(server, store, lambda: bank, workers=2)
    port = listen(server, "127.0.0.1:0", pki["server"])
    server.start()
    try:
        channel = connect(f"127.0.0.1:{port}", pki["client"])
        started, cpu = time.perf_counter(), time.process_time()
        outcome = run_psi(
            channel,
            platform,
            bank=f"127.0.0.1:{port}",
            book=SessionBook(f"sqlite:///{workdir / f'psi-platform-{n}.db'}"),
            workers=2,
        )
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        server.stop(0)
    stored = store.get(outcome.session_id)
    return {
        "n": n,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "load": os.getloadavg()[0],
        "bytes": outcome.bytes_sent + outcome.bytes_received,
        "cardinality": stored.cardinality,
        "correct": stored.cardinality == shared and set(stored.ids) == set(bank[n - shared :]),
    }


def naive_run(n: int, overlap: float) -> dict[str, Any]:
    """The naive alternative: the platform sends SHA-256 of its ids, the bank intersects.
    Cheap, and unsafe: merchant ids are guessable, so the bank inverts every hash."""
    shared = int(n * overlap)
    bank = [f"M{i:08d}" for i in range(n)]
    platform = [f"M{i:08d}" for i in range(n - shared, 2 * n - shared)]
    started, cpu = time.perf_counter(), time.process_time()
    wire = b"".join(hashlib.sha256(m.encode()).digest() for m in platform)
    mine = {hashlib.sha256(m.encode()).digest(): m for m in bank}
    found = [mine[wire[i : i + 32]] for i in range(0, len(wire), 32) if wire[i : i + 32] in mine]
    return {
        "n": n,
        "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu,
        "bytes": len(wire),
        "cardinality": len(found),
    }


def quality(workdir: Path, merchants: int, epochs: int, feature_epsilon: float) -> list[tuple[str, float, float, str]]:
    """AUC/KS of every model on the same held-out aligned merchants."""
    import grpc

    from clients.vertical.psi_client import run_psi
    from clients.vertical.store import SessionBook
    from federation.synth import generate_vertical
    from federation.vertical.config import PlatformNodeConfig, VerticalConfig
    from federation.vertical.data import fit_encoder, held_out, load_party
    from server.vertical.psi_service import register
    from server.vertical.store import PsiStore
    from yinqi.harness.vertical import simulate_vertical, train_central

    data = generate_vertical(workdir / "data", merchants, merchants, shared=0.7, seed=5)
    bank = load_party(data.bank_file, labelled=True)
    platform = load_party(data.platform_file, labelled=False)
    bank_db, platform_db = f"sqlite:///{workdir / 'bank.db'}", f"sqlite:///{workdir / 'platform.db'}"
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    register(server, PsiStore(bank_db), lambda: bank.ids, insecure=True)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    session = run_psi(
        grpc.insecure_channel(f"127.0.0.1:{port}"), platform.ids, bank="loopback", book=SessionBook(platform_db)
    ).session_id
    server.stop(0)

    base = {
        "bank_data": data.bank_file,
        "session": session,
        "bank_db": bank_db,
        "epochs": epochs,
        "batch_size": 256,
        "lr": 0.05,
        "seed": 0,
    }
    settings = VerticalConfig(out=workdir / "x", **base)  # type: ignore[arg-type]
    test = held_out(bank.ids, settings.test_share, settings.seed)
    p_index = platform.index()
    aligned = np.array([m in p_index for m in bank.ids])
    train_all, train_aligned, scored = (
        np.flatnonzero(~test),
        np.flatnonzero(~test & aligned),
        np.flatnonzero(test & aligned),
    )
    y = bank.y
    assert y is not None

    rows: list[tuple[str, float, float, str]] = []

    def add(name: str, scores: np.ndarray, note: str = "") -> None:
        rows.append((name, roc_auc(y[scored], scores), ks_statistic(y[scored], scores), note))

    import torch

    torch.set_num_threads(1)
    bank_encoder = fit_encoder(bank.subset(train_all))
    xb = bank_encoder.transform(bank.frame)
    model = train_central(xb[train_all], y[train_all], epochs=epochs, batch_size=256, lr=0.05)
    with torch.no_grad():
        add("bank alone (its features, all its merchants)", model(torch.as_tensor(xb[scored])).reshape(-1).numpy())
    platform_encoder = fit_encoder(platform)
    xp_all = platform_encoder.transform(platform.frame)
    xp = np.zeros((len(bank.ids), xp_all.shape[1]), np.float32)
    xp[aligned] = xp_all[[p_index[m] for m, a in zip(bank.ids, aligned, strict=True) if a]]
    pooled = np.hstack([xb, xp])
    model = train_central(pooled[train_aligned], y[train_aligned], epochs=epochs, batch_size=256, lr=0.05)
    with torch.no_grad():
        add("central: both halves pooled (baseline)", model(torch.as_tensor(pooled[scored])).reshape(-1).numpy())

    node = PlatformNodeConfig(
        data_path=data.platform_file, platform_name="platform-a", platform_db=platform_db, model_dir=workdir / "bottom"
    )
    variants = [
        ("vertical, no protection", {"label_dp": "off"}),
        ("vertical + label DP (randomized response, ε=2)", {"label_dp": "rr", "label_epsilon": 2.0}),
        ("vertical + label DP (randomized response, ε=1)", {"label_dp": "rr", "label_epsilon": 1.0}),
        ("vertical + label DP (Gaussian on returned gradients, ε=8)", {"label_dp": "gaussian", "label_epsilon": 8.0}),
        (
            f"vertical + label DP (RR ε=2) + feature DP (ε={feature_epsilon:g})",
            {"label_dp": "rr", "label_epsilon": 2.0, "feature_epsilon": feature_epsilon},
        ),
    ]
    for name, changes in variants:
        cfg = VerticalConfig(out=workdir / name.replace(" ", "_")[:40], **{**base, **changes})  # type: ignore[arg-type]
        started = time.perf_counter()
        report = simulate_vertical(cfg, node)
        seconds = time.perf_counter() - started
        from federation.vertical.model import embed, load_half, top_logits

        top = load_half(cfg.out, bottom=False)
        bottom = load_half(Path(report["platform_model_dir"]), bottom=True)
        e = embed(
            bottom.model,
            bottom.encoder.transform(
                platform.frame.iloc[[p_index[bank.ids[i]] for i in scored]].reset_index(drop=True)
            ),
            cfg.embedding_clip,
        )
        scores = top_logits(top.model, top.encoder.transform(bank.frame.iloc[scored].reset_index(drop=True)), e)
        add(name, scores, f"{report['steps']} steps, {seconds:.0f} s, ε {report['epsilon']}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--merchants", type=int, default=20_000, help="merchants on each side (70 %% shared)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--feature-epsilon", type=float, default=8.0)
    parser.add_argument("--no-1m", action="store_true", help="skip the 1M x 1M PSI run")
    parser.add_argument("--psi-only", action="store_true", help="only the PSI part")
    parser.add_argument("--json", type=Path, help="also write the measurements as JSON here")
    args = parser.parse_args()
    from proto.channel import ClientTls, ServerTls
    from server.security.ca import CertificateAuthority
    from yinqi.harness.federated import quiet_flower

    quiet_flower()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="yinqi-bench-vertical-") as tmp:
        work = Path(tmp)
        authority = CertificateAuthority.create(work / "certs")  # the bank's CA, as `yinqi bank certs init`
        platform = authority.issue("platform-a", "platform")
        bank = authority.server
        pki = {
            "server": ServerTls(bank.cert, bank.key, bank.ca),
            "client": ClientTls(bank.ca, Path(platform.cert), platform.key),
        }
        started = time.perf_counter()
        rows = [] if args.psi_only else quality(work / "quality", args.merchants, args.epochs, args.feature_epsilon)
        if rows:
            results["quality"] = [{"model": r[0], "auc": r[1], "ks": r[2], "note": r[3]} for r in rows]
            by_name = {r[0]: r for r in rows}
            central = by_name["central: both halves pooled (baseline)"][1]
            alone = by_name["bank alone (its features, all its merchants)"][1]
            table = Table(
                title=f"vertical FL: {args.merchants:,} merchants per side, 70 % shared, same held-out merchants for all"
            )
            for column in ("model", "test AUC", "test KS", "ΔAUC vs central", "ΔAUC vs bank alone", "notes"):
                table.add_column(column)
            for name, auc, ks, note in rows:
                table.add_row(name, f"{auc:.4f}", f"{ks:.4f}", f"{auc - central:+.4f}", f"{auc - alone:+.4f}", note)
            console.print(table)
            plain = by_name["vertical, no protection"][1]
            protected = by_name["vertical + label DP (randomized response, ε=2)"][1]
            goals = [
                ("vertical ≥ bank alone + 0.05", plain - alone, plain - alone >= 0.05),
                (
                    "|vertical − central| ≤ 0.01 (no protection)",
                    plain - central,
                    abs(plain - central) <= 0.01 or plain > central,
                ),
                (
                    "vertical + label DP (RR ε=2) within 0.03 of central",
                    protected - central,
                    protected - central >= -0.03,
                ),
            ]
            results["goals"] = [{"goal": g, "measured": m, "met": ok} for g, m, ok in goals]
            for goal, measured, ok in goals:
                console.print(f"{'met' if ok else 'NOT met'}: {goal} (measured {measured:+.4f})")
            console.print(f"[dim]quality part: {time.perf_counter() - started:.0f} s[/]")

        psi_table = Table(
            title="PSI: ECDH over Ristretto255, gRPC with mutual TLS, vs the naive SHA-256 exchange (50 % overlap; both parties in this process)"
        )
        for column in (
            "ids per side",
            "protocol",
            "wall time",
            "CPU time",
            "on the wire",
            "vs naive time",
            "vs naive bytes",
            "load avg",
            "correct",
        ):
            psi_table.add_column(column)
        results["psi"] = []
        for n in [100_000] + ([] if args.no_1m else [1_000_000]):
            naive = naive_run(n, 0.5)
            ecdh = psi_run(work, n, 0.5, pki)
            results["psi"].append({"ecdh": ecdh, "naive": naive})
            psi_table.add_row(
                f"{n:,}",
                "naive SHA-256 (baseline; the bank inverts every hash)",
                f"{naive['seconds']:.2f} s",
                f"{naive['cpu_seconds']:.2f} s",
                f"{naive['bytes'] / 1e6:.1f} MB",
                "1.0×",
                "1.0×",
                "",
                str(naive["cardinality"] == n // 2),
            )
            psi_table.add_row(
                f"{n:,}",
                "ECDH-PSI",
                f"{ecdh['seconds']:.1f} s",
                f"{ecdh['cpu_seconds']:.1f} s",
                f"{ecdh['bytes'] / 1e6:.1f} MB",
                f"{ecdh['seconds'] / naive['seconds']:.0f}×",
                f"{ecdh['bytes'] / naive['bytes']:.2f}×",
                f"{ecdh['load']:.1f}",
                str(ecdh["correct"]),
            )
        console.print(psi_table)
        first = results["psi"][0]["ecdh"]
        console.print(
            f"{'met' if first['seconds'] <= 30 else 'NOT met'}: PSI 100k × 100k ≤ 30 s (measured {first['seconds']:.1f} s wall, "
            f"{first['cpu_seconds']:.1f} s CPU on {os.cpu_count()} cores, 1-min load average {first['load']:.1f})"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
