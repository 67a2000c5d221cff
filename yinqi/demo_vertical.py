"""Demo part `vertical`: PSI between the bank and a platform over mutual TLS, vertical training
on the aligned merchants (Flower simulation), registration of both halves' hashes, and one
consented merchant scored through the platform's embedding service (another refused)."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:  # pragma: no cover
    from federation.vertical.data import PartyTable

MERCHANTS = 1500
EPOCHS = 8


def run(workdir: Path, console: Console) -> None:

    from clients.consent import ConsentBook
    from clients.vertical.embedding_service import EmbeddingService, build_embedding_server
    from clients.vertical.psi_client import run_psi
    from clients.vertical.store import SessionBook
    from federation.errors import YinqiError
    from federation.synth import generate_vertical
    from federation.vertical.config import PlatformNodeConfig, VerticalConfig
    from federation.vertical.data import load_party
    from proto.channel import ClientTls, ServerTls, connect, listen, new_server
    from server.registry import Registry
    from server.security.ca import CertificateAuthority
    from server.vertical.psi_service import register as register_psi
    from server.vertical.registry import register_vertical
    from server.vertical.scoring import VerticalScorer
    from server.vertical.store import PsiStore
    from yinqi.harness.vertical import simulate_vertical

    workdir.mkdir(parents=True, exist_ok=True)
    data = generate_vertical(workdir / "data", MERCHANTS, MERCHANTS, shared=0.7, seed=11)
    bank_db, platform_db = f"sqlite:///{workdir / 'bank.db'}", f"sqlite:///{workdir / 'platform.db'}"
    # The bank's CA (`yinqi bank certs`): its own server certificate, shop-a's client certificate
    # and its service certificate, and the certificate of the bank's operator who scores.
    shutil.rmtree(workdir / "certs", ignore_errors=True)  # a fresh CA each demo run
    ca = CertificateAuthority.create(workdir / "certs")
    shop, ops = ca.issue("shop-a", "platform"), ca.issue("bank-ops", "operator")
    shop_service = ca.issue("shop-a", "platform", server_hosts=["127.0.0.1"])
    bank_tls = ServerTls(ca.server.cert, ca.server.key, ca.server.ca)
    platform_tls = ClientTls(ca.server.ca, Path(shop.cert), shop.key)
    platform_service = ServerTls(Path(shop_service.cert), shop_service.key, ca.server.ca)
    operator_tls = ClientTls(ca.server.ca, Path(ops.cert), ops.key)
    console.print(
        f"bank: {data.bank_merchants} merchants with labels; platform shop-a: {data.platform_merchants} merchants"
    )

    # 1. PSI over mutual TLS: the bank learns the shared merchants, the platform only the count.
    bank = load_party(data.bank_file, labelled=True)
    platform = load_party(data.platform_file, labelled=False)
    server = new_server(4)
    register_psi(server, PsiStore(bank_db), lambda: bank.ids)
    port = listen(server, "127.0.0.1:0", bank_tls)
    server.start()
    try:
        outcome = run_psi(
            connect(f"127.0.0.1:{port}", platform_tls),
            platform.ids,
            bank=f"127.0.0.1:{port}",
            book=SessionBook(platform_db),
        )
    finally:
        server.stop(0)
    console.print(
        f"PSI (ECDH over Ristretto255, mutual TLS): {outcome.cardinality} shared merchants in {outcome.seconds:.1f} s, "
        f"{(outcome.bytes_sent + outcome.bytes_received) / 1e3:.0f} kB on the wire; the bank stored session {outcome.session_id[:12]}…"
    )

    # 2. Vertical training: the platform's bottom half on its node, the bank's top half.
    started = time.perf_counter()
    cfg = VerticalConfig(
        bank_data=data.bank_file,
        session=outcome.session_id,
        out=workdir / "top",
        bank_db=bank_db,
        epochs=EPOCHS,
        label_epsilon=2.0,
        lr=0.1,
    )
    node = PlatformNodeConfig(
        data_path=data.platform_file, platform_name="shop-a", platform_db=platform_db, model_dir=workdir / "bottom"
    )
    report = simulate_vertical(cfg, node)
    baseline = _bank_only_auc(bank, set(platform.ids), cfg.test_share, cfg.seed)
    table = Table(title="vertical training (Flower simulation)")
    for column in (
        "aligned",
        "trained on",
        "held out",
        "test AUC",
        "bank alone",
        "test KS",
        "ε labels (bank, RR)",
        "time",
    ):
        table.add_column(column)
    final = report["final"]
    table.add_row(
        str(report["aligned"]),
        str(report["train_rows"]),
        str(final["test_rows"]),
        f"{final.get('test_auc', float('nan')):.4f}",
        f"{baseline:.4f}",
        f"{final.get('test_ks', float('nan')):.4f}",
        f"{report['epsilon']['labels (bank)']:g}",
        f"{time.perf_counter() - started:.1f} s",
    )
    console.print(table)

    # 3. Registry: one hash binding both halves, queued for anchoring.
    registry = Registry(bank_db, workdir / "store")
    version = register_vertical(registry, cfg.out)
    console.print(
        f"registered {version.version}: top {report['top_sha256'][:12]}… + bottom {report['bottom_sha256'][:12]}… -> {version.sha256[:12]}… (anchor leaf queued)"
    )

    # 4. Scoring: the bank asks the platform for one merchant's embedding; consent decides.
    consent_db = f"sqlite:///{workdir / 'consent.db'}"
    shared = PsiStore(bank_db).get(outcome.session_id).ids
    ConsentBook(consent_db).grant([shared[0]], note="demo: applied for a credit line")
    service = EmbeddingService(
        workdir / "bottom" / outcome.session_id, data.platform_file, consent_db, platform="shop-a"
    )
    embedding = build_embedding_server("127.0.0.1:0", service, platform_service)
    embedding.start()
    logging.getLogger("yinqi.vertical.embedding").setLevel(logging.ERROR)  # the refusal is shown below
    try:
        channel = connect(f"127.0.0.1:{embedding.bound_port}", operator_tls)
        scorer = VerticalScorer(registry, version.version, data.bank_file)
        score = scorer.score(shared[0], channel)
        console.print(
            f"scored {score.merchant_id} (consented): PD {score.default_probability:.4f} with model {score.model_version}"
        )
        try:
            scorer.score(shared[1], channel)
        except YinqiError as refused:
            console.print(f"scoring {shared[1]} refused by the platform: {refused}")
    finally:
        embedding.stop(0)


def _bank_only_auc(bank: PartyTable, platform_ids: set[str], share: float, seed: int) -> float:
    """The bank's own features alone (logistic regression) on the same held-out merchants."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from federation.metrics import roc_auc
    from federation.vertical.data import fit_encoder, held_out

    assert bank.y is not None
    test = held_out(bank.ids, share, seed)
    train = np.flatnonzero(~test)
    scored = np.flatnonzero(test & np.array([m in platform_ids for m in bank.ids]))
    encoder = fit_encoder(bank.subset(train))
    x = encoder.transform(bank.frame)
    model = LogisticRegression(max_iter=1000).fit(x[train], bank.y[train])
    return float(roc_auc(bank.y[scored], model.decision_function(x[scored])))
