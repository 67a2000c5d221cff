"""`yinqi psi …` and `yinqi vertical …`: private set intersection and vertical federated learning
between the bank and a platform (docs/vertical.md).

Bank: `psi serve` (its PSI service), `psi show`, `vertical train`, `vertical register`,
`vertical score`. Platform: `psi run` (against the bank), `vertical serve` (its embedding
service), `vertical hash` (checks its half against the registered hash). `vertical synth` writes both halves of a synthetic data set. Heavy imports stay
inside the commands.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from federation.errors import YinqiError

if TYPE_CHECKING:  # pragma: no cover
    from proto.channel import ClientTls, ServerTls

console = Console(stderr=True)
psi_app = typer.Typer(
    help="Private set intersection: which merchants the bank and a platform share.", no_args_is_help=True
)
vertical_app = typer.Typer(
    help="Vertical federated learning: the bank's labels and features + a platform's trade features.",
    no_args_is_help=True,
)
JSON_HELP = "Print the result as JSON on stdout."
CA_HELP = "CA certificate (PEM) the other side's certificate must chain to."
CERT_HELP = "This party's certificate (PEM) for mutual TLS."
KEY_HELP = "This party's private key (PEM) for mutual TLS."
INSECURE_HELP = "Plaintext gRPC (loopback testing only); never the default."


def register(root: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    root.add_typer(psi_app, name="psi")
    root.add_typer(vertical_app, name="vertical")


def _emit(value: dict[str, Any], as_json: bool, lines: list[str]) -> None:
    if as_json:
        typer.echo(json.dumps(value, default=str))
    else:
        for line in lines:
            console.print(line, highlight=False)


def _tls_files(ca: Path | None, cert: Path | None, key: Path | None, insecure: bool) -> tuple[Path, Path, Path] | None:
    """(ca, cert, key) for mutual TLS, or None with --insecure; one line when they do not fit."""
    if insecure:
        if ca or cert or key:
            raise YinqiError("--insecure and --ca/--cert/--key exclude each other")
        return None
    if ca is None or cert is None or key is None:
        raise YinqiError("give --ca, --cert and --key (mutual TLS), or --insecure for a plaintext loopback service")
    return ca, cert, key


def _client_tls(ca: Path | None, cert: Path | None, key: Path | None, insecure: bool) -> ClientTls | None:
    from proto.channel import ClientTls

    files = _tls_files(ca, cert, key, insecure)
    return None if files is None else ClientTls(*files)


def _server_tls(ca: Path | None, cert: Path | None, key: Path | None, insecure: bool) -> ServerTls | None:
    from proto.channel import ServerTls

    files = _tls_files(ca, cert, key, insecure)
    return None if files is None else ServerTls(files[1], files[2], files[0])


def _wait_forever(server: Any, what: str) -> None:
    console.print(f"{what} (Ctrl-C to stop)", highlight=False)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop(grace=2).wait()


# -- PSI ---------------------------------------------------------------------------------------
@psi_app.command("run")
def psi_run(
    bank: str = typer.Option(..., "--bank", help="The bank's PSI service HOST:PORT."),
    data: Path = typer.Option(..., "--data", help="This platform's merchants (CSV/Parquet with merchant_id)."),
    mapping: Path | None = typer.Option(
        None, "--mapping", help="mapping.toml renaming the id column ([columns] merchant_id = ...)."
    ),
    cardinality_only: bool = typer.Option(
        False, "--cardinality-only", help="Let the bank learn only how many merchants are shared."
    ),
    platform_db: str | None = typer.Option(
        None, "--platform-db", help="This platform's database (stores the session's order)."
    ),
    consent_db: str | None = typer.Option(
        None, "--consent-db", help="Take part only with merchants whose consent is in force."
    ),
    max_bank_ids: int = typer.Option(
        2_000_000, "--max-bank-ids", help="Refuse a bank that announces more ids than this."
    ),
    ca: Path | None = typer.Option(None, "--ca", help=CA_HELP),
    cert: Path | None = typer.Option(None, "--cert", help=CERT_HELP),
    key: Path | None = typer.Option(None, "--key", help=KEY_HELP),
    insecure: bool = typer.Option(False, "--insecure", help=INSECURE_HELP),
    name: str = typer.Option("platform", "--name", help="Platform name (used only on an --insecure service)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Platform: run ECDH-PSI with the bank. The bank learns the shared merchants (or only how
    many); this platform learns the count and keeps the order it sent (for training)."""
    from rich.progress import Progress

    from clients.consent import ConsentBook
    from clients.vertical.psi_client import run_psi
    from clients.vertical.store import SessionBook
    from federation.psi.protocol import clean_ids
    from federation.vertical.data import load_mapping, load_party
    from proto.channel import connect

    table = load_party(data, load_mapping(mapping), labelled=False)
    ids = clean_ids(table.ids, str(data))
    if consent_db:
        allowed = ConsentBook(consent_db).consented(ids)
        ids = [m for m, ok in zip(ids, allowed, strict=True) if ok]
        if not ids:
            raise YinqiError(f"{data}: no merchant has consent in force in {consent_db}; nothing to intersect")
    channel = connect(bank, _client_tls(ca, cert, key, insecure), insecure=insecure)
    with Progress(console=console, transient=True, disable=as_json) as progress:
        tasks: dict[str, Any] = {}

        def show(kind: str, done: int, total: int) -> None:
            label = "blinding own ids" if kind == "own" else "re-blinding the bank's ids"
            if kind not in tasks:
                tasks[kind] = progress.add_task(label, total=total)
            progress.update(tasks[kind], completed=done)

        outcome = run_psi(
            channel,
            ids,
            bank=bank,
            cardinality_only=cardinality_only,
            book=SessionBook(platform_db),
            platform_name=name,
            max_bank_ids=max_bank_ids,
            progress=show,
        )
    _emit(
        outcome.to_dict(),
        as_json,
        [
            f"PSI session {outcome.session_id}: {outcome.cardinality} of this platform's {outcome.platform_count} "
            f"merchants are among the bank's {outcome.bank_count}"
            + (" (the bank learned only the count)" if cardinality_only else ""),
            f"{outcome.seconds:.1f} s, {outcome.bytes_sent / 1e6:.2f} MB sent, {outcome.bytes_received / 1e6:.2f} MB received",
        ],
    )


@psi_app.command("serve")
def psi_serve(
    data: Path = typer.Option(..., "--data", help="The bank's merchants (CSV/Parquet with merchant_id)."),
    mapping: Path | None = typer.Option(None, "--mapping", help="mapping.toml renaming the id column."),
    address: str = typer.Option("127.0.0.1:50061", "--address", help="HOST:PORT to listen on."),
    bank_db: str | None = typer.Option(None, "--bank-db", help="The bank's database (PSI results)."),
    ca: Path | None = typer.Option(None, "--ca", help="CA that platforms' client certificates chain to."),
    cert: Path | None = typer.Option(
        None, "--cert", help="The bank's server certificate (server.pem of `yinqi bank certs init`)."
    ),
    key: Path | None = typer.Option(None, "--key", help="The bank's server key."),
    insecure: bool = typer.Option(False, "--insecure", help=INSECURE_HELP),
    port_file: Path | None = typer.Option(None, "--port-file", help="Write the bound port here once listening."),
) -> None:
    """Bank: serve PSI to platforms (mutual TLS; a caller needs a `platform` certificate)."""

    from federation.psi.protocol import clean_ids
    from federation.vertical.data import load_mapping, load_party
    from proto.channel import listen, new_server
    from server.vertical.psi_service import register as register_psi
    from server.vertical.store import PsiStore

    def bank_ids() -> list[str]:  # read at each run: the bank's file may have changed
        return clean_ids(load_party(data, load_mapping(mapping), labelled=False, ignore_label=True).ids, str(data))

    bank_ids()  # a bad file is refused now, not at the first run
    server = new_server(8)
    register_psi(server, PsiStore(bank_db), bank_ids, insecure=insecure)
    port = listen(server, address, _server_tls(ca, cert, key, insecure), insecure=insecure)
    if port_file:
        port_file.write_text(str(port))
    server.start()
    _wait_forever(server, f"PSI service on {address.rsplit(':', 1)[0]}:{port}")


@psi_app.command("show")
def psi_show(
    session: str | None = typer.Argument(None, help="Session id (default: list all)."),
    bank_db: str | None = typer.Option(None, "--bank-db", help="The bank's database."),
    out: Path | None = typer.Option(None, "--out", help="Write the shared merchant ids (CSV) here."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Bank: the stored PSI results (a session's shared merchants with --out)."""
    from server.vertical.store import PsiStore

    store = PsiStore(bank_db)
    if session is None:
        runs = [r.to_dict() for r in store.list()]
        _emit(
            {"sessions": runs},
            as_json,
            [f"{r['session_id']}  {r['platform']}  {r['cardinality']} shared" for r in runs] or ["no PSI runs stored"],
        )
        return
    run = store.get(session)
    if out is not None:
        if run.matches is None:
            raise YinqiError(f"session {session} was cardinality-only: no ids to write")
        out.write_text("merchant_id\n" + "".join(f"{m}\n" for m in run.ids))
    _emit(run.to_dict(), as_json, [f"{run.session_id}: {run.cardinality} shared with {run.platform}"])


# -- vertical ----------------------------------------------------------------------------------
@vertical_app.command("synth")
def vertical_synth(
    out: Path = typer.Option(Path("out/vertical-data"), "--out", help="Directory for bank.csv and platform.csv."),
    bank_merchants: int = typer.Option(3000, "--bank-merchants", min=1),
    platform_merchants: int = typer.Option(3000, "--platform-merchants", min=1),
    shared: float = typer.Option(
        0.7, "--shared", min=0.0, max=1.0, help="Share of the bank's merchants the platform also serves."
    ),
    seed: int = typer.Option(0, "--seed"),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Write the bank's half (features + label) and a platform's half (trade features)."""
    from federation.synth import generate_vertical

    s = generate_vertical(out, bank_merchants, platform_merchants, shared, seed)
    _emit(
        {
            "bank_file": str(s.bank_file),
            "platform_file": str(s.platform_file),
            "shared": s.shared,
            "default_rate": s.default_rate,
        },
        as_json,
        [
            f"{s.bank_file} ({s.bank_merchants} merchants, default rate {s.default_rate:.3f}), {s.platform_file} ({s.platform_merchants}); {s.shared} shared"
        ],
    )


@vertical_app.command("train")
def vertical_train(
    bank_data: Path = typer.Option(..., "--bank-data", help="The bank's half: merchant_id, features, default."),
    session: str = typer.Option(..., "--session", help="PSI session that aligned the bank and the platform."),
    platform_data: Path = typer.Option(
        ..., "--platform-data", help="Simulation: the platform's half (its node's data)."
    ),
    platform_db: str | None = typer.Option(None, "--platform-db", help="Simulation: the platform's database."),
    consent_db: str | None = typer.Option(None, "--consent-db", help="Simulation: the platform's consent book."),
    bank_db: str | None = typer.Option(None, "--bank-db", help="The bank's database (PSI results, label ledger)."),
    out: Path = typer.Option(Path("out/vertical"), "--out", help="Where the bank's top half and report.json go."),
    platform_model_dir: Path = typer.Option(
        Path("out/vertical-platform"),
        "--platform-model-dir",
        help="Simulation: where the platform keeps its bottom half.",
    ),
    epochs: int = typer.Option(10, "--epochs", min=1),
    batch_size: int = typer.Option(64, "--batch-size", min=8),
    lr: float = typer.Option(0.05, "--lr"),
    embedding_dim: int = typer.Option(4, "--embedding-dim", min=1, max=64),
    label_dp: str = typer.Option(
        "rr", "--label-dp", help="rr (randomized response), gaussian (noisy gradients) or off."
    ),
    label_epsilon: float = typer.Option(2.0, "--label-epsilon", help="ε for the bank's labels this run."),
    feature_epsilon: float | None = typer.Option(
        None, "--feature-epsilon", help="Ask the platform for DP on its embeddings (its own policy may be stricter)."
    ),
    deployment: bool = typer.Option(
        False, "--deployment", help="Run on a loopback SuperLink + SuperNode (separate processes)."
    ),
    seed: int = typer.Option(0, "--seed"),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Train the split model: the platform's bottom half on its node, the bank's top half here."""
    from federation.vertical.config import PlatformNodeConfig, VerticalConfig
    from yinqi.harness.vertical import deploy_vertical, simulate_vertical

    cfg = VerticalConfig.model_validate(
        {
            "bank_data": bank_data,
            "session": session,
            "out": out,
            "bank_db": bank_db,
            "epochs": epochs,
            "batch_size": batch_size,
            "lr": lr,
            "embedding_dim": embedding_dim,
            "label_dp": label_dp,
            "label_epsilon": label_epsilon,
            "feature_epsilon": feature_epsilon,
            "seed": seed,
        }
    )
    node = PlatformNodeConfig(
        data_path=platform_data, platform_db=platform_db, consent_db=consent_db, model_dir=platform_model_dir
    )
    with console.status(
        f"vertical training ({'loopback deployment' if deployment else 'simulation'}), {epochs} epochs", spinner="dots"
    ):
        report = deploy_vertical(cfg, node) if deployment else simulate_vertical(cfg, node)
    final = report.get("final", {})
    _emit(
        report,
        as_json,
        [
            f"trained on {report['train_rows']} aligned merchants in {report['seconds']:.1f} s; "
            f"test AUC {final.get('test_auc', float('nan')):.4f}, KS {final.get('test_ks', float('nan')):.4f} ({final.get('test_rows')} held out)",
            f"ε: {report['epsilon']}; model {report['version_hash'][:12]}… (top {report['top_sha256'][:12]}…, bottom {report['bottom_sha256'][:12]}…) in {out}",
        ],
    )


@vertical_app.command("register")
def vertical_register(
    model_dir: Path = typer.Argument(..., help="The top half written by `vertical train`."),
    bank_db: str | None = typer.Option(None, "--bank-db", help="The bank's database (registry)."),
    store: Path | None = typer.Option(
        None, "--store", help="Where the registry keeps model files (default: data dir)."
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Bank: register a vertical model (both halves' hashes) and queue it for anchoring."""
    from server.registry import Registry
    from server.vertical.registry import register_vertical

    row = register_vertical(Registry(bank_db, store), model_dir)
    _emit(
        row.to_dict() | {"summary": row.summary},
        as_json,
        [f"registered {row.version} ({row.sha256[:12]}…), anchor leaf {row.anchor_leaf}"],
    )


@vertical_app.command("hash")
def vertical_hash(
    model_dir: Path = typer.Argument(..., help="A model half: the platform's bottom half or the bank's top half."),
    expect: str | None = typer.Option(
        None,
        "--expect",
        help="The hash the registry holds for this half (`yinqi audit model VERSION --json`: bottom_sha256 or "
        "top_sha256); exit code 2 when the files hash to anything else.",
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Re-hash a model half's files (weights and encoder): how a platform checks the bottom half
    the bank registered and anchored, whose files only the platform holds."""
    from federation.vertical.model import BOTTOM_FILE, HalfError, load_half

    bottom = (model_dir / BOTTOM_FILE).is_file()
    half = load_half(model_dir, bottom=bottom)  # refuses files that no longer hash to their meta.json
    kind = "bottom" if bottom else "top"
    if expect is not None and half.sha256 != expect.strip().lower():
        raise HalfError(f"{model_dir}: the {kind} half hashes to {half.sha256}, expected {expect.strip()}")
    _emit(
        {"half": kind, "sha256": half.sha256, "expected": expect.strip().lower() if expect else None},
        as_json,
        [f"{kind} half {half.sha256}" + (" (matches --expect)" if expect is not None else "")],
    )


@vertical_app.command("serve")
def vertical_serve(
    model_dir: Path = typer.Option(..., "--model-dir", help="This platform's bottom half (from training)."),
    data: Path = typer.Option(..., "--data", help="This platform's half (the merchants it can embed)."),
    consent_db: str | None = typer.Option(
        None, "--consent-db", help="This platform's consent book (required consent)."
    ),
    mapping: Path | None = typer.Option(None, "--mapping", help="mapping.toml for --data."),
    name: str = typer.Option("platform", "--name", help="This platform's name (in replies and logs)."),
    address: str = typer.Option("127.0.0.1:50062", "--address", help="HOST:PORT to listen on."),
    ca: Path | None = typer.Option(None, "--ca", help="CA the bank's client certificate chains to."),
    cert: Path | None = typer.Option(
        None,
        "--cert",
        help="This platform's service certificate (`yinqi bank certs issue NAME --role platform --server-host HOST`).",
    ),
    key: Path | None = typer.Option(None, "--key", help="This platform's service key."),
    insecure: bool = typer.Option(False, "--insecure", help=INSECURE_HELP),
    port_file: Path | None = typer.Option(None, "--port-file", help="Write the bound port here once listening."),
) -> None:
    """Platform: answer the bank's scoring requests with consented merchants' embeddings."""
    import logging

    from clients.vertical.embedding_service import EmbeddingService, build_embedding_server

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tls = _server_tls(ca, cert, key, insecure)
    service = EmbeddingService(model_dir, data, consent_db, mapping=mapping, platform=name, insecure=insecure)
    server = build_embedding_server(address, service, tls)
    if port_file:
        port_file.write_text(str(server.bound_port))
    server.start()
    _wait_forever(server, f"embedding service for {name} on port {server.bound_port}")


@vertical_app.command("score")
def vertical_score(
    merchant: str = typer.Argument(..., help="The merchant to score."),
    platform: str = typer.Option(..., "--platform", help="The platform's embedding service HOST:PORT."),
    bank_data: Path = typer.Option(..., "--bank-data", help="The bank's half (the merchant's bank features)."),
    version: str | None = typer.Option(
        None, "--version", help="Registered vertical model version (default: the latest)."
    ),
    bank_db: str | None = typer.Option(None, "--bank-db", help="The bank's database (registry)."),
    store: Path | None = typer.Option(None, "--store", help="The registry's model store."),
    ca: Path | None = typer.Option(None, "--ca", help=CA_HELP),
    cert: Path | None = typer.Option(None, "--cert", help=CERT_HELP),
    key: Path | None = typer.Option(None, "--key", help=KEY_HELP),
    insecure: bool = typer.Option(False, "--insecure", help=INSECURE_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Bank: score a merchant with a vertical model (the platform must hold its consent)."""
    from proto.channel import connect
    from server.registry import Registry
    from server.vertical.scoring import VerticalScorer

    scorer = VerticalScorer(Registry(bank_db, store), version, bank_data)
    result = scorer.score(merchant, connect(platform, _client_tls(ca, cert, key, insecure), insecure=insecure))
    _emit(
        result.to_dict(),
        as_json,
        [
            f"{result.merchant_id}: PD {result.default_probability:.4f} (model {result.model_version}, platform {result.platform})"
        ],
    )
