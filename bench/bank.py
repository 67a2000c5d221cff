"""Bank services benchmark: scoring throughput in-process vs over gRPC (batch and single
requests, plaintext and mutual TLS), and the federated round-time cost of TLS + node auth.

Everything is measured in this run on this machine: a model fitted on synthetic merchants,
N consented merchants with three months of features each, a SQLite bank database in a temp
dir, a real gRPC server on a free loopback port. Ratios are against in-process batch scoring
(decisions stored), and for the rounds against a plain loopback deployment.

    python bench/bank.py            # ~1-3 min, includes the deployment rounds if available
    python bench/bank.py --quick    # smaller, skips nothing but uses fewer merchants/rounds
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

console = Console()


def fit_model(work: Path) -> tuple[Path, dict[str, list[dict[str, Any]]]]:
    """A logistic model fitted centrally on synthetic features (sklearn), saved as a model dir."""
    import numpy as np
    import pandas as pd
    import torch
    from sklearn.linear_model import LogisticRegression

    from federation.model import build_model, save_model, write_report
    from federation.preprocess import Encoder, compute_stats, load_labeled
    from federation.synth import make_feature_files
    from server.scoring import rows_from_frame

    files, test = make_feature_files(work / "data", platforms=3, merchants=800, months=6, seed=7)
    tables = [load_labeled(f) for f in files]
    frame = pd.concat([t.frame for t in tables], ignore_index=True)
    y = np.concatenate([t.y for t in tables])
    encoder = Encoder.from_stats(compute_stats(frame))
    clf = LogisticRegression(max_iter=500).fit(encoder.transform(frame), y)
    model = build_model(encoder.n_features)
    with torch.no_grad():
        model[0].weight.copy_(torch.as_tensor(clf.coef_, dtype=torch.float32))
        model[0].bias.copy_(torch.as_tensor(clf.intercept_, dtype=torch.float32))
    save_model(work / "model", model, encoder, {"architecture": "logistic", "trained": "central sklearn (bench)"})
    write_report(work / "model", {"participants": ["bench"], "rounds": []})
    merchants: dict[str, list[dict[str, Any]]] = {}
    for path in files:
        for merchant, rows in rows_from_frame(pd.read_csv(path)).items():
            merchants[merchant] = rows[-3:]
    return work / "model", merchants


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else math.inf


def scoring_rows(work: Path, n: int, n_single: int, batch: int) -> list[tuple[str, int, float, str]]:
    import grpc

    from federation.clock import utcnow
    from proto import bank_pb2, bank_pb2_grpc
    from proto.channel import ClientTls, connect
    from server.consent import ConsentEventIn, ConsentRegistry
    from server.credit.promotion import promote
    from server.grpc_app import TlsFiles, build_server, rows_to_proto
    from server.registry import Registry
    from server.scoring import Scorer
    from tests.bank.tls import make_pki
    from tests.conftest import free_port

    model_dir, merchants = fit_model(work)
    ids = sorted(merchants)
    while len(ids) < n:  # more merchants than the synthetic set: re-use rows under new ids
        ids += [f"{m}#{len(ids)}" for m in sorted(merchants)][: n - len(ids)]
    ids = ids[:n]
    requests = [(m, merchants[m.split("#")[0]]) for m in ids]
    url = f"sqlite:///{work / 'bank.db'}"
    registry = Registry(url, work / "store")
    registry.register(model_dir, anchor=False)
    promote(registry, "v1")
    ConsentRegistry(url).record("bench", [ConsentEventIn(i, m, True, utcnow()) for i, m in enumerate(ids)])
    scorer = Scorer(url, registry=registry)
    scorer.evaluate(requests[:10])  # load the model once

    out: list[tuple[str, int, float, str]] = []
    start = time.perf_counter()
    scorer.evaluate(requests)
    out.append(("in-process batch, not stored", n, time.perf_counter() - start, ""))
    start = time.perf_counter()
    for i in range(0, n, batch):
        scorer.score_batch(requests[i : i + batch])
    out.append(("in-process batch (baseline)", n, time.perf_counter() - start, "baseline"))
    start = time.perf_counter()
    for merchant, rows in requests[:n_single]:
        scorer.score(merchant, rows)
    out.append(("in-process single", n_single, time.perf_counter() - start, ""))

    protos = [bank_pb2.ScoreRequest(merchant_id=m, rows=rows_to_proto(r)) for m, r in requests]
    pki = make_pki(work / "pki")
    for label, tls in (("plaintext", None), ("mTLS", TlsFiles(pki["server_cert"], pki["server_key"], pki["ca"]))):
        server = build_server(f"127.0.0.1:{free_port()}", url, tls, work / "store")
        server.start()
        address = f"127.0.0.1:{server.bound_port}"
        channel = (
            connect(address, ClientTls(pki["ca"], pki["client_cert"], pki["client_key"]))
            if tls
            else grpc.insecure_channel(address)
        )
        try:
            stub = bank_pb2_grpc.ScoringServiceStub(channel)
            stub.Score(protos[0], timeout=30)  # connection + model warm
            start = time.perf_counter()
            for i in range(0, n, batch):
                replies = stub.ScoreBatch(
                    bank_pb2.ScoreBatchRequest(requests=protos[i : i + batch]), timeout=120
                ).replies
                assert not any(r.error for r in replies), replies[0].error
            out.append((f"gRPC {label} batch ×{batch}", n, time.perf_counter() - start, ""))
            start = time.perf_counter()
            for request in protos[:n_single]:
                stub.Score(request, timeout=30)
            out.append((f"gRPC {label} single", n_single, time.perf_counter() - start, ""))
        finally:
            channel.close()
            server.stop(grace=None)
    return out


def mean_round(result: dict[str, Any]) -> float | None:
    """Mean round seconds from `measure_round_times`' dict, whatever its exact keys."""
    for key in ("mean_round_seconds", "mean_round_s", "mean", "round_mean"):
        if isinstance(result.get(key), (int, float)):
            return float(result[key])
    for key in ("round_seconds", "rounds", "round_times"):
        values = result.get(key)
        if isinstance(values, list) and values and all(isinstance(v, (int, float)) for v in values):
            return sum(values) / len(values)
    return None


def round_rows(rounds: int) -> list[tuple[str, float | None, str]] | str:
    from bench.deploy_rounds import measure_round_times

    rows = []
    for mode in ("loopback", "tls"):
        try:
            result = measure_round_times(mode, clients=3, rounds=rounds, secagg=True)
        except Exception as exc:  # a broken deployment should not hide the scoring numbers
            return f"not available ({mode}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        rows.append(
            (mode, mean_round(result), str({k: v for k, v in result.items() if not isinstance(v, (list, dict))})[:80])
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer merchants and rounds")
    parser.add_argument(
        "--merchants", type=int, default=None, help="merchants scored in batch (default 5000, quick 1000)"
    )
    parser.add_argument(
        "--single", type=int, default=None, help="merchants scored one request each (default 500, quick 200)"
    )
    parser.add_argument("--batch", type=int, default=500, help="merchants per batch request")
    parser.add_argument("--no-rounds", action="store_true", help="skip the deployment round-time comparison")
    args = parser.parse_args()
    n = args.merchants or (1000 if args.quick else 5000)
    n_single = args.single or (200 if args.quick else 500)

    with tempfile.TemporaryDirectory() as tmp:
        import os

        os.environ["YINQI_DATA_DIR"] = str(Path(tmp) / "data-dir")
        with console.status("scoring benchmark…"):
            rows = scoring_rows(Path(tmp), n, n_single, args.batch)
    baseline = next(rate(c, s) for _, c, s, tag in rows if tag == "baseline")
    table = Table(title=f"bank scoring: {n} merchants batch, {n_single} single (SQLite)")
    for column in ("path", "n", "s", "merchants/s", "× baseline"):
        table.add_column(column, justify="right" if column != "path" else "left")
    for label, count, seconds, _ in rows:
        r = rate(count, seconds)
        table.add_row(label, str(count), f"{seconds:.2f}", f"{r:,.0f}", f"{r / baseline:.2f}")

    if args.no_rounds:
        rounds: list | str = "skipped (--no-rounds)"
    else:
        with console.status("deployment rounds: plain loopback vs TLS + node auth…"):
            rounds = round_rows(1 if args.quick else 2)
    table.add_section()
    if isinstance(rounds, str):
        table.add_row("FL round TLS+auth vs plain", "-", "-", rounds, "-")
    else:
        plain = rounds[0][1]
        for mode, mean, _ in rounds:
            label = "FL round, plain loopback" if mode == "loopback" else "FL round, TLS + node auth"
            ratio = f"{mean / plain:.2f}" if mean and plain else "-"
            table.add_row(label, "3 nodes", f"{mean:.2f}" if mean else "?", "s/round", f"{ratio} vs plain")
    console.print(table)


if __name__ == "__main__":
    main()
