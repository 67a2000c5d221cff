"""Bank services benchmark.

1. The loan book: a monthly review of N open lines (default 100,000) — in-process, and end to
   end over mutual TLS as the operator (`LoanBookService.Review`: role check, call log) — against
   in-process scoring of the same merchants (the model's work alone, nothing stored); then
   single applications (`ScoringService.Score`: consent, features, model, decision and
   application stored) one at a time, p50/p99 latency in-process and over mutual TLS. May's
   review runs twice, on copies of the same book: in one process, then shared over the
   machine's cores as the bank runs it (`server.loanbook.fanout`). The book
   is set up in bulk (`server.loanbook.onboard.open_many`) on May's data; the review runs on
   May's (in-process) and June's (over gRPC) data. The months are not the same work: May's
   review keeps every limit (the lines were opened on May's data), June's moves about four in
   five, each with its reasons decided, its last limit record read and a ledger entry. Last,
   the nightly end of day over the whole book: the bank's clock advanced one day (every
   line's interest posted, draws classified, month ends closed).
2. What identity and roles cost: scoring throughput in-process and over gRPC (batch and single
   requests) with plaintext, server-only TLS (what `bank up` served before issue 10), mutual TLS
   alone, and mutual TLS with the bank's guard (role check per RPC, call log of every
   state-changing call): the product as it runs.
3. The federated round time with and without TLS + SuperNode authentication.

Everything is measured in this run on this machine: a model fitted on synthetic merchants,
consented merchants whose platform reported their features, a SQLite bank database in a temp
dir, certificates from the product's CA (`server.security.ca`), real gRPC servers on free
loopback ports. Ratios are against the same run's in-process baseline; the counts in the tables
are read back from the bank's database and from the run reports.

    python bench/bank.py                    # everything: ~15-30 min on 2 cores
    python bench/bank.py --quick            # 10,000 lines, fewer merchants, 1 round
    python bench/bank.py --no-scoring --no-rounds   # the loan book only
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

console = Console(width=130)


@dataclass
class Row:
    path: str
    merchants: int  # scored, as read back from the bank's decisions
    seconds: float
    baseline: bool = False
    goal: float | None = None  # lines/s this path must reach (issue 13)

    @property
    def rate(self) -> float:
        return self.merchants / self.seconds if self.seconds > 0 else math.inf


def fit_model(work: Path, months: int = 3) -> tuple[Path, dict[str, list[dict[str, Any]]]]:
    """A logistic model fitted centrally on synthetic features (sklearn), saved as a model dir;
    its report carries the training population's aggregates (what the federated agreement
    records) so the review's monitoring has something to compare with. Returns each merchant's
    latest `months` rows."""
    import numpy as np
    import pandas as pd
    import torch
    from sklearn.linear_model import LogisticRegression

    from federation.model import build_model, save_model, write_report
    from federation.preprocess import Encoder, compute_stats, load_labeled
    from federation.synth import make_feature_files
    from server.scoring import rows_from_frame

    files, _test = make_feature_files(work / "data", platforms=3, merchants=800, months=6, seed=7)
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
    scores = np.bincount(np.clip((clf.predict_proba(encoder.transform(frame))[:, 1] * 1000).astype(int), 0, 999))
    agreement = {
        "stats": compute_stats(frame).to_dict(),
        "scores": {"bins": 1000, "counts": {str(i): int(c) for i, c in enumerate(scores) if c}},
    }
    write_report(work / "model", {"participants": ["bench"], "rounds": [], "agreement": agreement})
    merchants: dict[str, list[dict[str, Any]]] = {}
    for path in files:
        for merchant, rows in rows_from_frame(pd.read_csv(path)).items():
            merchants[merchant] = rows[-months:]
    return work / "model", merchants


def decisions(url: str) -> int:
    from sqlalchemy import func, select

    from federation.storage import session_scope
    from server.db import bank_engine
    from server.scoring import Decision

    with session_scope(bank_engine(url)) as s:
        return int(s.scalar(select(func.count()).select_from(Decision)) or 0)


def calls_logged(url: str) -> int:
    from sqlalchemy import func, select

    from federation.storage import session_scope
    from server.db import bank_engine
    from server.security.calllog import CallRecord

    with session_scope(bank_engine(url)) as s:
        return int(s.scalar(select(func.count()).select_from(CallRecord)) or 0)


def bare_server(url: str, store: Path, credentials: Any | None) -> Any:
    """The same scoring service without the guard (no identities, roles or call log): the
    transport alone. `credentials`: None for plaintext, else gRPC server credentials."""
    import grpc

    from proto import bank_pb2_grpc
    from server.db import bank_engine
    from server.feature_store import FeatureStore
    from server.grpc_app import ScoringService
    from server.registry import Registry
    from server.scoring import Scorer
    from server.security.guard import Guard

    engine = bank_engine(url)
    registry = Registry(engine, store)
    # The handlers read the caller (for platforms' reads); an insecure guard without a call log
    # only sets it, so what this server measures is the transport.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), interceptors=[Guard(None, insecure=True)])
    bank_pb2_grpc.add_ScoringServiceServicer_to_server(
        ScoringService(Scorer(engine, registry=registry), FeatureStore(engine)), server
    )
    port = (
        server.add_insecure_port("127.0.0.1:0")
        if credentials is None
        else server.add_secure_port("127.0.0.1:0", credentials)
    )
    server.bound_port = port
    return server


def scoring_rows(work: Path, n: int, n_single: int, batch: int, repeats: int) -> tuple[list[Row], dict[str, int]]:
    import grpc

    from federation.clock import utcnow
    from proto import bank_pb2, bank_pb2_grpc
    from proto.channel import ClientTls, connect
    from server.consent import ConsentEventIn, ConsentRegistry
    from server.credit.promotion import promote
    from server.feature_store import FeatureStore
    from server.grpc_app import build_server
    from server.registry import Registry
    from server.scoring import Scorer
    from server.security.ca import CertificateAuthority

    model_dir, merchants = fit_model(work)
    ids = sorted(merchants)
    while len(ids) < n:  # more merchants than the synthetic set: re-use rows under new ids
        ids += [f"{m}#{len(ids)}" for m in sorted(merchants)][: n - len(ids)]
    ids = ids[:n]
    requests = [(m, merchants[m.split("#")[0]]) for m in ids]
    url = f"sqlite:///{work / 'bank.db'}"
    store = work / "store"
    registry = Registry(url, store)
    registry.register(model_dir, anchor=False)
    promote(registry, "v1")
    ConsentRegistry(url).record("bench-platform", [ConsentEventIn(i, m, True, utcnow()) for i, m in enumerate(ids)])
    features = FeatureStore(url)
    for start in range(0, n, 5000):
        features.report("bench-platform", dict(requests[start : start + 5000]))
    scorer = Scorer(url, registry=registry)
    scorer.evaluate(requests[:10])  # load the model once
    scorer.score_batch(requests[:batch])  # and write once: the first writes pay SQLite's warm-up
    repeats = max(1, repeats)

    ca = CertificateAuthority.create(work / "certs")
    ca.issue("bench-ops", "operator")
    certs = ca.server
    client_tls = ClientTls(
        certs.ca, work / "certs" / "clients" / "bench-ops.crt", work / "certs" / "clients" / "bench-ops.key"
    )
    key, cert, root = certs.key.read_bytes(), certs.cert.read_bytes(), certs.ca.read_bytes()
    variants: list[tuple[str, Any, Any]] = [
        ("plaintext", lambda: bare_server(url, store, None), lambda address: grpc.insecure_channel(address)),
        (
            "server TLS",
            lambda: bare_server(url, store, grpc.ssl_server_credentials([(key, cert)])),
            lambda address: connect(address, ClientTls(certs.ca)),
        ),
        (
            "mutual TLS",
            lambda: bare_server(url, store, grpc.ssl_server_credentials([(key, cert)], root, require_client_auth=True)),
            lambda address: connect(address, client_tls),
        ),
        (
            "mutual TLS + roles + call log",
            lambda: build_server("127.0.0.1:0", url, certs, store),
            lambda address: connect(address, client_tls),
        ),
    ]
    batches = [
        bank_pb2.ScoreBatchRequest(requests=[bank_pb2.ScoreRequest(merchant_id=m) for m in ids[i : i + batch]])
        for i in range(0, n, batch)
    ]

    def run_batches(stub: Any) -> None:
        for request in batches:
            replies = stub.ScoreBatch(request, timeout=120).replies
            assert not any(r.error for r in replies), replies[0].error

    def run_single(stub: Any) -> None:
        for merchant in ids[:n_single]:
            stub.Score(bank_pb2.ScoreRequest(merchant_id=merchant), timeout=30)

    paths: list[tuple[str, Any, bool]] = [
        ("in-process batch, decisions not stored", lambda: scorer.evaluate(requests), False),
        (
            f"in-process batch ×{batch} (baseline)",
            lambda: [scorer.score_batch(requests[i : i + batch]) for i in range(0, n, batch)],
            True,
        ),
        ("in-process, one merchant per call", lambda: [scorer.score(m, r) for m, r in requests[:n_single]], False),
    ]
    servers, channels = [], []
    for label, make_server, make_channel in variants:
        server = make_server()
        server.start()
        servers.append(server)
        channel = make_channel(f"127.0.0.1:{server.bound_port}")
        channels.append(channel)
        stub = bank_pb2_grpc.ScoringServiceStub(channel)
        stub.Score(bank_pb2.ScoreRequest(merchant_id=ids[0]), timeout=30)  # connection + model warm
        paths.append((f"gRPC {label}, batches of {batch}", lambda stub=stub: run_batches(stub), False))
        paths.append((f"gRPC {label}, one merchant per request", lambda stub=stub: run_single(stub), False))

    # Round-robin: every path once per round, so a change in the machine's load hits all alike.
    times: dict[str, list[float]] = {label: [] for label, _, _ in paths}
    stored: dict[str, int] = dict.fromkeys(times, 0)
    logged_before = calls_logged(url)
    try:
        for _round in range(repeats):
            for label, action, _ in paths:
                before = decisions(url)
                start = time.perf_counter()
                action()
                times[label].append(time.perf_counter() - start)
                stored[label] += decisions(url) - before
    finally:
        for channel in channels:
            channel.close()
        for server in servers:
            server.stop(grace=None)
    answered = len(scorer.evaluate(requests))  # the one path that stores nothing: count its answers
    out = [
        Row(
            label,
            stored[label] // repeats if "not stored" not in label else answered,
            statistics.median(times[label]),
            baseline,
        )
        for label, _, baseline in paths
    ]
    read_back = {
        "decisions": decisions(url),
        "calls_logged": calls_logged(url) - logged_before,
        "reported_merchants": len(features.rows(ids)),
    }
    return out, read_back


# -- the loan book: a monthly review and single applications ---------------------------------
OPEN_ON = "2025-06-15"  # the bank's business date: lines open on May's data, June has begun
REVIEWED = ("2025-05", "2025-06")  # in-process (every limit kept), then over gRPC (most limits move)
REVIEW_GOAL = 10_000  # lines/s, a review end to end over mutual TLS
P99_GOAL_MS = 20.0  # a single application over mutual TLS


@dataclass
class Latency:
    path: str
    calls: int
    p50_ms: float
    p99_ms: float
    baseline: bool = False
    goal: float | None = None  # the p99 in ms this path must stay within (issue 13)


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def review_counts(url: str) -> dict[str, int]:
    """Limit changes stored per review month, read back from the bank's database."""
    from sqlalchemy import func, select

    from federation.storage import session_scope
    from server.db import bank_engine
    from server.loanbook.changes import LimitChange

    with session_scope(bank_engine(url)) as s:
        query = (
            select(LimitChange.review_month, func.count())
            .where(LimitChange.kind == "review")
            .group_by(LimitChange.review_month)
        )
        return {str(m): int(c) for m, c in s.execute(query)}


def set_up_book(work: Path, n: int) -> tuple[str, Path, list[tuple[str, list[dict[str, Any]]]], dict[str, Any]]:
    """A bank with `n` consented merchants whose platform reported six months of features and
    an open credit line each (opened in bulk, `server.loanbook.onboard.open_many`, on May's data)."""
    from federation.clock import utcnow
    from server.consent import ConsentEventIn, ConsentRegistry
    from server.credit.accounts import CreditBook
    from server.credit.errors import BankError
    from server.credit.promotion import promote
    from server.feature_store import MAX_MERCHANTS, FeatureStore
    from server.loanbook.book import LoanBook
    from server.loanbook.onboard import open_many
    from server.registry import Registry

    model_dir, merchants = fit_model(work, months=6)
    base = sorted(merchants)
    ids = [m if k < len(base) else f"{m}#{k}" for k, m in ((k, base[k % len(base)]) for k in range(n))]
    requests = [(m, merchants[m.split("#")[0]]) for m in ids]
    url = f"sqlite:///{work / 'book.db'}"
    store = work / "book-store"
    registry = Registry(url, store)
    registry.register(model_dir, anchor=False)
    promote(registry, "v1")
    started = time.perf_counter()
    ConsentRegistry(url).record("bench-platform", [ConsentEventIn(i, m, True, utcnow()) for i, m in enumerate(ids)])
    features = FeatureStore(url)
    step = min(MAX_MERCHANTS, 10_000)
    for start in range(0, n, step):
        features.report("bench-platform", dict(requests[start : start + step]))
    book = CreditBook(url, registry=registry)
    LoanBook(book).set_date(OPEN_ON, "bench")
    opening = [(m, [r for r in rows if r["month"] <= REVIEWED[0]][-3:]) for m, rows in requests]
    opened = open_many(book, opening)
    refused = [r for r in opened if isinstance(r, BankError)]
    if refused:
        raise SystemExit(f"bench set-up: {len(refused)} lines not opened, first: {refused[0]}")
    setup = {"seconds": time.perf_counter() - started, "lines": len(book.list())}
    return url, store, requests, setup


def processes(n: int) -> str:
    return f"{n} process" if n == 1 else f"{n} processes"


def copy_book(work: Path, url: str) -> str:
    """A consistent copy of the bench's SQLite book (its WAL included), for a second review of
    the same month: the same work in one process as in several."""
    import sqlite3

    source, copy = sqlite3.connect(url.removeprefix("sqlite:///")), sqlite3.connect(work / "book-alone.db")
    with source, copy:
        source.backup(copy)
    source.close()
    copy.close()
    return f"sqlite:///{work / 'book-alone.db'}"


def review_rows(work: Path, n: int, n_single: int) -> tuple[list[Row], list[Latency], dict[str, Any]]:
    """The monthly review of `n` lines in-process and over mutual TLS (the operator's
    certificate, the guard, the call log), against in-process scoring of the same merchants;
    then single applications (`ScoringService.Score`, decision and application stored) one at
    a time, in-process and over mutual TLS."""
    from proto import bank_pb2, bank_pb2_grpc
    from proto.channel import ClientTls, connect
    from server.credit.accounts import CreditBook
    from server.grpc_app import build_server, warm_model
    from server.loanbook import eod, fanout
    from server.loanbook.book import LoanBook
    from server.loanbook.review import review
    from server.registry import Registry
    from server.scoring import Scorer
    from server.security.ca import CertificateAuthority

    url, store, requests, setup = set_up_book(work, n)
    registry = Registry(url, store)
    scorer = Scorer(url, registry=registry)
    month_rows = [(m, [r for r in rows if r["month"] <= REVIEWED[1]][-3:]) for m, rows in requests]
    scorer.evaluate(month_rows[:10])  # load the model once

    rows: list[Row] = []
    start = time.perf_counter()
    answered = scorer.evaluate(month_rows, explain=False, checked=True, consented=True)
    rows.append(Row("in-process scoring, nothing stored (baseline)", len(answered), time.perf_counter() - start, True))

    alone_url = copy_book(work, url)
    alone_book = CreditBook(alone_url, registry=Registry(alone_url, store))
    alone_book.scorer.model(None)  # loaded, as the shared run's own process has it
    start = time.perf_counter()
    alone = review(alone_book, REVIEWED[0], workers=1)
    rows.append(Row(f"in-process review of {REVIEWED[0]}, {processes(1)}", alone.reviewed, time.perf_counter() - start))

    loans = LoanBook(CreditBook(url, registry=registry))
    start = time.perf_counter()
    local = loans.review(REVIEWED[0])
    rows.append(
        Row(
            f"in-process review of {REVIEWED[0]}, {processes(local.workers)} (as the bank runs it)",
            local.reviewed,
            time.perf_counter() - start,
        )
    )

    ca = CertificateAuthority.create(work / "book-certs")
    ca.issue("bench-ops", "operator")
    tls = ClientTls(
        ca.server.ca,
        work / "book-certs" / "clients" / "bench-ops.crt",
        work / "book-certs" / "clients" / "bench-ops.key",
    )
    server = build_server("127.0.0.1:0", url, ca.server, store)
    server.start()
    channel = connect(f"127.0.0.1:{server.bound_port}", tls)
    try:
        book_stub = bank_pb2_grpc.LoanBookServiceStub(channel)
        book_stub.Clock(bank_pb2.ClockRequest(), timeout=30)  # the connection, before the clock starts
        # as a bank server up for more than a few seconds has them: its review workers' fork
        # server, and the promoted model (`yinqi bank serve` loads it once started)
        fanout.warm_workers(wait=True)
        warm_model(server.scorer)
        start = time.perf_counter()
        remote = book_stub.Review(bank_pb2.ReviewRequest(month=REVIEWED[1]), timeout=3600)
        rows.append(
            Row(
                f"gRPC mutual TLS + roles: review of {REVIEWED[1]}, {processes(remote.workers)}",
                remote.reviewed,
                time.perf_counter() - start,
                goal=REVIEW_GOAL,
            )
        )

        merchants = [m for m, _ in requests[:n_single]]
        latencies: list[Latency] = []
        times = []
        for merchant, merchant_rows in month_rows[:n_single]:
            start = time.perf_counter()
            scorer.score(merchant, merchant_rows)
            times.append(time.perf_counter() - start)
        latencies.append(Latency("in-process Scorer.score (baseline)", len(times), *_p50_p99(times), True))
        scoring = bank_pb2_grpc.ScoringServiceStub(channel)
        scoring.Score(bank_pb2.ScoreRequest(merchant_id=merchants[0]), timeout=30)  # the model, warm
        times = []
        for merchant in merchants:
            start = time.perf_counter()
            scoring.Score(bank_pb2.ScoreRequest(merchant_id=merchant), timeout=30)
            times.append(time.perf_counter() - start)
        latencies.append(
            Latency("gRPC mutual TLS + roles + call log: Score", len(times), *_p50_p99(times), goal=P99_GOAL_MS)
        )
    finally:
        channel.close()
        server.stop(grace=None)
    # the nightly end of day over the whole book (interest for every line, tiers, month ends),
    # as `yinqi bank clock advance --days 1` runs it
    start = time.perf_counter()
    moved = eod.advance(CreditBook(url, registry=registry), 1, "bench")
    rows.append(
        Row(
            "end of day: the bank's clock advanced 1 day, every line accrued",
            moved["accounts"],
            time.perf_counter() - start,
        )
    )
    read_back = {**setup, "limit_changes": review_counts(url), "applications": applications_stored(url)}
    return rows, latencies, read_back


def _p50_p99(seconds: list[float]) -> tuple[float, float]:
    ms = [s * 1000 for s in seconds]
    return percentile(ms, 50), percentile(ms, 99)


def applications_stored(url: str) -> int:
    from sqlalchemy import func, select

    from federation.storage import session_scope
    from server.db import bank_engine
    from server.loanbook.applications import Application

    with session_scope(bank_engine(url)) as s:
        return int(s.scalar(select(func.count()).select_from(Application)) or 0)


def print_review(rows: list[Row], latencies: list[Latency], read_back: dict[str, Any]) -> None:
    baseline = next(r.rate for r in rows if r.baseline)
    changes = ", ".join(f"{m}: {c}" for m, c in sorted(read_back["limit_changes"].items()))
    table = Table(
        title=(
            f"monthly review (SQLite): {read_back['lines']} open lines set up in {read_back['seconds']:.0f} s "
            f"(consent, features, bulk opening); review records read back per month: {changes}"
        )
    )
    for column in ("path", "lines", "s", "lines/s", "× baseline"):
        table.add_column(column, justify="left" if column == "path" else "right")
    for r in rows:
        table.add_row(r.path, str(r.merchants), f"{r.seconds:.2f}", f"{r.rate:,.0f}", f"{r.rate / baseline:.2f}")
    console.print(table)
    single = Table(
        title=f"single applications, one at a time (same run; {read_back['applications']} applications read back)"
    )
    for column in ("path", "calls", "p50 ms", "p99 ms", "p99 × baseline"):
        single.add_column(column, justify="left" if column == "path" else "right")
    base = next(r.p99_ms for r in latencies if r.baseline)
    for r in latencies:
        single.add_row(r.path, str(r.calls), f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}", f"{r.p99_ms / base:.2f}")
    console.print(single)
    # the goals are absolute, the machine's speed is not: each is also given as the ratio to
    # this run's baseline it amounts to, which compares across runs on a faster or slower hour
    for r in rows:
        if r.goal is not None:
            verdict = "met" if r.rate >= r.goal else "MISSED"
            console.print(
                f"goal: {r.path} >= {r.goal:,.0f} lines/s (x {r.goal / baseline:.2f} of this run's baseline): "
                f"{r.rate:,.0f} lines/s (x {r.rate / baseline:.2f}), {verdict}"
            )
    for r in latencies:
        if r.goal is not None:
            verdict = "met" if r.p99_ms <= r.goal else "MISSED"
            console.print(f"goal: {r.path} p99 <= {r.goal:.0f} ms: {r.p99_ms:.2f} ms, {verdict}")


def round_rows(rounds: int) -> list[dict[str, Any]] | str:
    """The federated round: plain loopback, TLS + node auth, and TLS + node auth through the Fleet
    gate as `bank up` runs it (SuperLink on loopback), as `measure_round_times` reports them."""
    from bench.deploy_rounds import measure_round_times

    results = []
    for mode in ("loopback", "tls", "bank-up"):
        try:
            results.append(measure_round_times(mode, clients=3, rounds=rounds, secagg=True))
        except Exception as exc:  # a broken deployment should not hide the scoring numbers
            first = str(exc).splitlines()[0] if str(exc) else ""
            return f"not available ({mode}: {type(exc).__name__}: {first})"
    return results


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
    parser.add_argument("--repeats", type=int, default=None, help="runs per path, median kept (default 3, quick 1)")
    parser.add_argument("--no-rounds", action="store_true", help="skip the deployment round-time comparison")
    parser.add_argument("--no-scoring", action="store_true", help="skip the scoring transports comparison")
    parser.add_argument("--no-review", action="store_true", help="skip the monthly review and single applications")
    parser.add_argument(
        "--review-merchants", type=int, default=None, help="open lines reviewed (default 100000, quick 10000)"
    )
    parser.add_argument(
        "--applications", type=int, default=None, help="single applications timed per path (default 1000, quick 200)"
    )
    args = parser.parse_args()
    n = args.merchants or (1000 if args.quick else 5000)
    n_single = args.single or (200 if args.quick else 500)
    repeats = args.repeats or (1 if args.quick else 3)

    import os

    if not args.no_review:
        lines = args.review_merchants or (10_000 if args.quick else 100_000)
        single = args.applications or (200 if args.quick else 1000)
        load_before = os.getloadavg()[0]
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["YINQI_DATA_DIR"] = str(Path(tmp) / "data-dir")
            # a line, not a spinner: a spinner's refresh thread would make this a threaded
            # process, whose review workers start from a cold fork server (`fanout.start_method`),
            # not forked as `yinqi bank review` (one thread) starts them
            console.print(f"loan book: {lines} lines, a monthly review, single applications (a few minutes)…")
            review, latencies, book_read_back = review_rows(Path(tmp), lines, single)
        print_review(review, latencies, book_read_back)
        console.print(f"load average {load_before:.1f} → {os.getloadavg()[0]:.1f}")
    if not args.no_scoring:
        scoring_table(n, n_single, args.batch, repeats)
    if args.no_rounds:
        console.print("federated rounds: skipped (--no-rounds)")
        return
    rounds_table(args.quick)


def scoring_table(n: int, n_single: int, batch: int, repeats: int) -> None:
    import os

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["YINQI_DATA_DIR"] = str(Path(tmp) / "data-dir")
        with console.status("scoring benchmark…"):
            rows, read_back = scoring_rows(Path(tmp), n, n_single, batch, repeats)
    baseline = next(r.rate for r in rows if r.baseline)
    table = Table(
        title=(
            f"bank scoring (SQLite): {read_back['reported_merchants']} merchants with reported features; "
            f"{read_back['decisions']} decisions and {read_back['calls_logged']} call-log rows read back; "
            f"median of {repeats} round-robin run(s); load average {load_before:.1f} → {os.getloadavg()[0]:.1f}"
        )
    )
    for column in ("path", "merchants scored", "s", "merchants/s", "× baseline"):
        table.add_column(column, justify="left" if column == "path" else "right")
    for r in rows:
        table.add_row(r.path, str(r.merchants), f"{r.seconds:.2f}", f"{r.rate:,.0f}", f"{r.rate / baseline:.2f}")
    console.print(table)

    by_path = {r.path: r.rate for r in rows}
    cost = Table(title="what identity and roles cost, per request (same run)")
    for column in ("requests", "server TLS / plaintext", "mutual TLS / server TLS", "+ roles + call log / mutual TLS"):
        cost.add_column(column, justify="right")
    for kind in (f"batches of {batch}", "one merchant per request"):
        plain, tls, mtls, guarded = (
            by_path[f"gRPC {label}, {kind}"]
            for label in ("plaintext", "server TLS", "mutual TLS", "mutual TLS + roles + call log")
        )
        cost.add_row(kind, f"{tls / plain:.2f}×", f"{mtls / tls:.2f}×", f"{guarded / mtls:.2f}×")
    console.print(cost)


def rounds_table(quick: bool) -> None:
    import os

    with console.status("deployment rounds: plain loopback vs TLS + node auth…"):
        rounds = round_rows(1 if quick else 2)
    if isinstance(rounds, str):
        console.print(f"federated rounds: {rounds}")
        return
    fl = Table(title=f"federated round, SecAgg+ (same run; load average now {os.getloadavg()[0]:.1f})")
    for column in (
        "mode",
        "platforms",
        "rounds",
        "s/round (each)",
        "mean s/round",
        "× plain",
        "gate / SuperLink CPU s",
    ):
        fl.add_column(column, justify="left" if column == "mode" else "right")
    plain_mean = statistics.fmean(rounds[0]["round_seconds"])
    for result in rounds:
        mean = statistics.fmean(result["round_seconds"])
        fl.add_row(
            {
                "loopback": "plain loopback",
                "tls": "TLS + SuperNode authentication",
                "bank-up": "TLS + node auth, Fleet gate, SuperLink state on disk (bank up)",
            }[result["mode"]],
            str(result["clients"]),
            str(len(result["round_seconds"])),
            " / ".join(f"{s:.1f}" for s in result["round_seconds"]),
            f"{mean:.2f}",
            f"{mean / plain_mean:.2f}",
            f"{result['gate_cpu_s']:.1f} / {result['superlink_cpu_s']:.1f}" if "gate_cpu_s" in result else "-",
        )
    console.print(fl)


if __name__ == "__main__":
    main()
