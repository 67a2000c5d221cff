"""`yinqi bank serve|models|register-model|promote|score|credit …` and `yinqi audit model`: the
bank's lending services from the shell. Scoring and credit commands work on the bank's database directly, or on a running bank
over gRPC with `--bank HOST:PORT`. Heavy imports (torch, grpc, SQLAlchemy models) stay inside
the commands so `yinqi --help` is fast."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

console = Console()

DB_HELP = "Database URL (default: YINQI_DB_URL, else the SQLite file in the data dir)."
MODELS_HELP = "Where registered model files are stored (default: <data dir>/models)."
JSON_HELP = "Print the result as JSON."
BANK_HELP = "Call a running bank's gRPC services at HOST:PORT instead of opening the database."
CA_HELP = "The bank's CA certificate (PEM): use TLS to reach --bank."
CERT_HELP = "This client's certificate (PEM) for mutual TLS."
KEY_HELP = "This client's private key (PEM) for mutual TLS."
INSECURE_HELP = "Reach --bank in plaintext (a loopback bank without TLS only)."

credit_app = typer.Typer(
    help="Revolving credit lines: open, draw, repay, show, accrue (money in fen).", no_args_is_help=True
)


def yuan(fen: int) -> str:
    """Integer fen as a yuan string without floats: 123456 -> '1,234.56'."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(int(fen)), 100)
    return f"{sign}{whole:,}.{cents:02d}"


def _print_json(value: Any) -> None:
    console.print_json(json.dumps(value, default=str))


def _message_dict(message: Any) -> dict[str, Any]:
    return {f.name: getattr(message, f.name) for f in message.DESCRIPTOR.fields if not f.is_repeated}


# ----- a local or remote backend -------------------------------------------------------------
class _Backend:
    """The same requests against the database (local) or a running bank (gRPC)."""

    def __init__(
        self,
        db: str | None,
        models_dir: Path | None,
        bank: str | None,
        ca: Path | None,
        cert: Path | None,
        key: Path | None,
        insecure: bool = False,
    ) -> None:
        self.remote = bank
        if bank:
            from proto import bank_pb2_grpc
            from proto.channel import ClientTls, connect

            self.channel = connect(bank, ClientTls(ca, cert, key) if ca else None, insecure=insecure)
            self.scoring = bank_pb2_grpc.ScoringServiceStub(self.channel)
            self.credit = bank_pb2_grpc.CreditServiceStub(self.channel)
        else:
            from server.credit.accounts import CreditBook
            from server.registry import Registry
            from server.scoring import Scorer

            registry = Registry(db, models_dir)
            self.scorer = Scorer(registry.engine, registry=registry)
            self.book = CreditBook(registry.engine, scorer=self.scorer, registry=registry)

    def _call(self, method: Any, request: Any) -> dict[str, Any]:
        from proto.channel import call

        return _message_dict(call(method, request))

    def score(self, merchant: str, rows: list[dict[str, Any]], version: str | None) -> dict[str, Any]:
        from proto import bank_pb2
        from server.grpc_app import outcome_to_proto, rows_to_proto

        if self.remote:
            return self._call(
                self.scoring.Score,
                bank_pb2.ScoreRequest(merchant_id=merchant, model_version=version or "", rows=rows_to_proto(rows)),
            )
        return _message_dict(outcome_to_proto(self.scorer.score(merchant, rows, version)))

    def account(self, action: str, **kw: Any) -> dict[str, Any]:
        from proto import bank_pb2
        from server.grpc_app import account_to_proto, rows_to_proto

        if self.remote:
            if action == "open":
                request = bank_pb2.OpenRequest(
                    merchant_id=kw["merchant"], model_version=kw["version"] or "", rows=rows_to_proto(kw["rows"])
                )
                return self._call(self.credit.Open, request)
            if action in ("draw", "repay"):
                method = self.credit.Draw if action == "draw" else self.credit.Repay
                return self._call(method, bank_pb2.MoneyRequest(account_id=kw["account"], amount_fen=kw["amount"]))
            return self._call(
                self.credit.Get,
                bank_pb2.AccountRequest(account_id=kw.get("account") or "", merchant_id=kw.get("merchant") or ""),
            )
        if action == "open":
            view = self.book.open(kw["merchant"], kw["rows"], kw["version"])
        elif action == "draw":
            view = self.book.draw(kw["account"], kw["amount"])
        elif action == "repay":
            view = self.book.repay(kw["account"], kw["amount"])
        elif kw.get("account"):
            view = self.book.get(kw["account"])
        else:
            view = self.book.for_merchant(kw["merchant"])
        return _message_dict(account_to_proto(view))

    def accrue(self, through: date | None) -> dict[str, Any]:
        from proto import bank_pb2

        if self.remote:
            return self._call(
                self.credit.Accrue, bank_pb2.AccrueRequest(through=through.isoformat() if through else "")
            )
        result = self.book.accrue(through)
        return {k: result[k] for k in ("through", "accounts", "interest_fen")}


def _backend(
    db: str | None,
    models_dir: Path | None,
    bank: str | None,
    ca: Path | None,
    cert: Path | None,
    key: Path | None,
    insecure: bool,
) -> _Backend:
    return _Backend(db, models_dir, bank, ca, cert, key, insecure)


def _merchant_rows(features: Path, merchant: str) -> list[dict[str, Any]]:
    from federation.schema import read_table
    from server.scoring import rows_from_frame

    return rows_from_frame(read_table(features), merchant)[merchant]


def _print_account(info: dict[str, Any], title: str) -> None:
    table = Table(title=title, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    table.add_row("account", info["account_id"])
    table.add_row("merchant", info["merchant_id"])
    table.add_row("limit", f"{yuan(info['limit_fen'])} yuan")
    table.add_row("drawn (principal)", f"{yuan(info['principal_fen'])} yuan")
    table.add_row("interest due", f"{yuan(info['interest_fen'])} yuan")
    table.add_row("available", f"{yuan(info['available_fen'])} yuan")
    table.add_row("rate", f"{info['annual_rate_bp'] / 100:.2f} % a year")
    table.add_row("band / PD", f"{info['band']} / {info['default_probability']:.4f}")
    table.add_row("model / decision", f"{info['model_version']} / #{info['decision_id']}")
    table.add_row("interest accrued through", info["accrued_through"])
    console.print(table)


# ----- bank ---------------------------------------------------------------------------------
def serve(
    address: str = typer.Option("127.0.0.1:50061", help="HOST:PORT for the Scoring, Credit (and Alert) services."),
    db: str | None = typer.Option(None, help=DB_HELP),
    models_dir: Path | None = typer.Option(None, help=MODELS_HELP),
    cert: Path | None = typer.Option(None, help="Server certificate (PEM): serve TLS."),
    key: Path | None = typer.Option(None, help="Server private key (PEM)."),
    ca: Path | None = typer.Option(
        None, help="CA certificate (PEM): require client certificates it signed (mutual TLS)."
    ),
) -> None:
    """Run the bank's gRPC services (scoring, credit lines, alert intake) until Ctrl-C."""
    from server.credit.errors import BankError
    from server.grpc_app import TlsFiles, build_server

    if (cert is None) != (key is None):
        raise BankError("--cert and --key go together (a TLS server needs both)")
    tls = TlsFiles(cert, key, ca) if cert and key else None
    server = build_server(address, db, tls, models_dir)
    server.start()
    host = address.rsplit(":", 1)[0]
    console.print(
        f"bank services {', '.join(server.services)} on {host}:{server.bound_port} ({'TLS' if tls else 'plaintext'}{' + client certs' if ca else ''}); Ctrl-C stops"
    )
    import signal

    signal.signal(signal.SIGTERM, lambda *_: server.stop(grace=2))  # `yinqi bank down` stops us cleanly
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        server.stop(grace=2).wait()
    console.print("stopped")


def models(
    db: str | None = typer.Option(None, help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """List registered model versions with their metrics, participants and ε per platform."""
    from server.registry import Registry

    rows = [m.to_dict() for m in Registry(db).list()]
    if as_json:
        _print_json(rows)
        return
    table = Table(title="model registry")
    for column in (
        "version",
        "status",
        "AUC",
        "KS",
        "rounds",
        "participants",
        "ε per platform",
        "sha256",
        "created (UTC)",
    ):
        table.add_column(column)
    for m in rows:
        table.add_row(
            m["version"],
            m["status"],
            f"{m['auc']:.4f}" if m["auc"] is not None else "-",
            f"{m['ks']:.4f}" if m["ks"] is not None else "-",
            str(m["rounds"] or "-"),
            ", ".join(m["participants"]) or "-",
            ", ".join(f"{k} {v:.2f}" for k, v in m["epsilon"].items()) or "-",
            m["sha256"][:12] + "…",
            m["created_at"][:19],
        )
    console.print(table)


def register_model(
    model_dir: Path = typer.Argument(
        ..., help="A trained model directory (model.pt, encoder.json, meta.json, report.json)."
    ),
    db: str | None = typer.Option(None, help=DB_HELP),
    models_dir: Path | None = typer.Option(None, help=MODELS_HELP),
    no_anchor: bool = typer.Option(False, "--no-anchor", help="Do not queue the model hash for anchoring."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Register a trained model as the next version (`bank train` does this after a run)."""
    from server.registry import Registry

    row = Registry(db, models_dir).register(model_dir, anchor=not no_anchor)
    if as_json:
        _print_json(row.to_dict())
        return
    anchored = "queued for anchoring (run `yinqi anchor flush`)" if row.anchor_leaf else "not queued for anchoring"
    console.print(f"registered [bold]{row.version}[/] sha256 {row.sha256} ({row.status}); hash {anchored}")


def promote(
    version: str = typer.Argument(..., help="The model version to promote, e.g. v2."),
    db: str | None = typer.Option(None, help=DB_HELP),
    models_dir: Path | None = typer.Option(None, help=MODELS_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Make VERSION the scoring default and re-evaluate every open credit line with it."""
    from server.credit.promotion import promote as promote_version
    from server.registry import Registry

    result = promote_version(Registry(db, models_dir), version)
    if as_json:
        _print_json(result)
        return
    table = Table(title=f"{version} promoted: credit lines re-evaluated")
    for column in ("account", "merchant", "old limit (yuan)", "new limit (yuan)", "note"):
        table.add_column(column)
    for change in result["reevaluated"]:
        if "reason" in change:
            table.add_row(
                change["account_id"],
                change["merchant_id"],
                yuan(change["kept"]),
                yuan(change["kept"]),
                "kept: " + change["reason"],
            )
        else:
            table.add_row(
                change["account_id"],
                change["merchant_id"],
                yuan(change["old_limit_fen"]),
                yuan(change["new_limit_fen"]),
                f"band {change['band']}",
            )
    console.print(table)


def score(
    model: str | None = typer.Option(None, "--model", help="Model version (default: the promoted one)."),
    merchant: str = typer.Option(..., help="The merchant id to score."),
    features: Path = typer.Option(
        ..., help="Feature table (CSV/Parquet from `yinqi features`); the merchant's rows are used."
    ),
    db: str | None = typer.Option(None, help=DB_HELP),
    models_dir: Path | None = typer.Option(None, help=MODELS_HELP),
    bank: str | None = typer.Option(None, help=BANK_HELP),
    ca: Path | None = typer.Option(None, help=CA_HELP),
    cert: Path | None = typer.Option(None, help=CERT_HELP),
    key: Path | None = typer.Option(None, help=KEY_HELP),
    insecure: bool = typer.Option(False, "--insecure", help=INSECURE_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Score a consented merchant: default probability, band and the credit limit on offer."""
    result = _backend(db, models_dir, bank, ca, cert, key, insecure).score(
        merchant, _merchant_rows(features, merchant), model
    )
    if as_json:
        _print_json(result)
        return
    table = Table(title=f"merchant {merchant} scored with {result['model_version']}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    table.add_row("default probability", f"{result['default_probability']:.4f}")
    table.add_row("band", result["band"])
    table.add_row("recent monthly turnover", f"{yuan(result['turnover_fen'])} yuan")
    table.add_row("credit limit", f"{yuan(result['limit_fen'])} yuan")
    table.add_row("rate", f"{result['annual_rate_bp'] / 100:.2f} % a year")
    table.add_row("decision / inputs sha256", f"#{result['decision_id']} / {result['inputs_hash'][:16]}…")
    console.print(table)


# ----- credit lines -------------------------------------------------------------------------
@credit_app.command("open")
def credit_open(
    merchant: str = typer.Option(..., help="The merchant id."),
    features: Path = typer.Option(..., help="Feature table with the merchant's recent months."),
    model: str | None = typer.Option(None, "--model", help="Model version (default: the promoted one)."),
    db: str | None = typer.Option(None, help=DB_HELP),
    models_dir: Path | None = typer.Option(None, help=MODELS_HELP),
    bank: str | None = typer.Option(None, help=BANK_HELP),
    ca: Path | None = typer.Option(None, help=CA_HELP),
    cert: Path | None = typer.Option(None, help=CERT_HELP),
    key: Path | None = typer.Option(None, help=KEY_HELP),
    insecure: bool = typer.Option(False, "--insecure", help=INSECURE_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Score a consented merchant and open a credit line with the policy's limit."""
    info = _backend(db, models_dir, bank, ca, cert, key, insecure).account(
        "open", merchant=merchant, rows=_merchant_rows(features, merchant), version=model
    )
    _print_json(info) if as_json else _print_account(info, "credit line opened")


def _money_command(action: str) -> Any:
    def command(
        account: str = typer.Argument(..., help="The credit account id (CL-…)."),
        amount_fen: int = typer.Argument(..., help="Amount in fen (1 yuan = 100 fen)."),
        db: str | None = typer.Option(None, help=DB_HELP),
        models_dir: Path | None = typer.Option(None, help=MODELS_HELP),
        bank: str | None = typer.Option(None, help=BANK_HELP),
        ca: Path | None = typer.Option(None, help=CA_HELP),
        cert: Path | None = typer.Option(None, help=CERT_HELP),
        key: Path | None = typer.Option(None, help=KEY_HELP),
        insecure: bool = typer.Option(False, "--insecure", help=INSECURE_HELP),
        as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
    ) -> None:
        info = _backend(db, models_dir, bank, ca, cert, key, insecure).account(
            action, account=account, amount=amount_fen
        )
        _print_json(info) if as_json else _print_account(info, f"{action} of {yuan(amount_fen)} yuan booked")

    command.__doc__ = {
        "draw": "Borrow AMOUNT_FEN against the line (refused above the available limit).",
        "repay": "Pay back AMOUNT_FEN: accrued interest first, then principal.",
    }[action]
    return command


credit_app.command("draw")(_money_command("draw"))
credit_app.command("repay")(_money_command("repay"))


@credit_app.command("show")
def credit_show(
    account: str | None = typer.Argument(None, help="Account id; omit to list every line (local only)."),
    merchant: str | None = typer.Option(None, help="Show the line of this merchant instead."),
    entries: bool = typer.Option(False, "--entries", help="Also print the ledger (local only)."),
    db: str | None = typer.Option(None, help=DB_HELP),
    models_dir: Path | None = typer.Option(None, help=MODELS_HELP),
    bank: str | None = typer.Option(None, help=BANK_HELP),
    ca: Path | None = typer.Option(None, help=CA_HELP),
    cert: Path | None = typer.Option(None, help=CERT_HELP),
    key: Path | None = typer.Option(None, help=KEY_HELP),
    insecure: bool = typer.Option(False, "--insecure", help=INSECURE_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Show one credit line (with --entries its ledger), or list all lines."""
    from server.credit.errors import BankError

    backend = _backend(db, models_dir, bank, ca, cert, key, insecure)
    if account is None and merchant is None:
        if bank:
            raise BankError("name an account or --merchant when asking a remote bank")
        lines = [v.to_dict() for v in backend.book.list()]
        if as_json:
            _print_json(lines)
            return
        table = Table(title="credit lines")
        for column in ("account", "merchant", "band", "limit", "drawn", "interest due", "available", "model"):
            table.add_column(column)
        for v in lines:
            table.add_row(
                v["account_id"],
                v["merchant_id"],
                v["band"],
                yuan(v["limit_fen"]),
                yuan(v["principal_fen"]),
                yuan(v["interest_fen"]),
                yuan(v["available_fen"]),
                v["model_version"],
            )
        console.print(table)
        return
    info = backend.account("get", account=account, merchant=merchant)
    ledger = [e.to_dict() for e in backend.book.entries(info["account_id"])] if entries and not bank else []
    if as_json:
        _print_json({**info, "entries": ledger} if entries else info)
        return
    _print_account(info, "credit line")
    if ledger:
        table = Table(title="ledger")
        for column in (
            "time (UTC)",
            "kind",
            "amount",
            "principal after",
            "interest after",
            "limit after",
            "model",
            "note",
        ):
            table.add_column(column)
        for e in ledger:
            table.add_row(
                e["at"][:19],
                e["kind"],
                yuan(e["amount_fen"]),
                yuan(e["principal_after"]),
                yuan(e["interest_after"]),
                yuan(e["limit_after"]),
                e["model_version"],
                e["note"],
            )
        console.print(table)


@credit_app.command("accrue")
def credit_accrue(
    through: str | None = typer.Option(None, help="Last day to accrue, YYYY-MM-DD (default: yesterday, UTC)."),
    db: str | None = typer.Option(None, help=DB_HELP),
    models_dir: Path | None = typer.Option(None, help=MODELS_HELP),
    bank: str | None = typer.Option(None, help=BANK_HELP),
    ca: Path | None = typer.Option(None, help=CA_HELP),
    cert: Path | None = typer.Option(None, help=CERT_HELP),
    key: Path | None = typer.Option(None, help=KEY_HELP),
    insecure: bool = typer.Option(False, "--insecure", help=INSECURE_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Post daily interest on every open line for each whole day not yet accrued."""
    from server.credit.errors import BankError

    try:
        day = date.fromisoformat(through) if through else None
    except ValueError:
        raise BankError(f"--through '{through}' is not a date; expected YYYY-MM-DD") from None
    result = _backend(db, models_dir, bank, ca, cert, key, insecure).accrue(day)
    if as_json:
        _print_json(result)
        return
    console.print(
        f"interest accrued through {result['through']}: {yuan(result['interest_fen'])} yuan on {result['accounts']} line(s)"
    )


# ----- audit --------------------------------------------------------------------------------
def audit_model(
    version: str = typer.Argument(..., help="The registered model version, e.g. v1."),
    rpc: str | None = typer.Option(
        None, help="Ethereum JSON-RPC URL (default: YINQI_CHAIN_RPC, else the embedded EVM in the data dir)."
    ),
    db: str | None = typer.Option(None, help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Verify a registered model: re-hash its stored files and check the anchored hash on chain."""
    from server.registry import audit_model as check

    result = check(version, rpc, db)
    if as_json:
        _print_json(result)
        return
    table = Table(title=f"model {version}: verified", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    table.add_row("sha256 (files = registry)", result["sha256"])
    table.add_row("anchored leaf", result["leaf"])
    table.add_row("Merkle root", f"{result['root']} ({result['leaf_count']} leaves)")
    table.add_row("transaction", f"{result['tx_hash']} (block {result['block']})")
    table.add_row("anchored at", result["block_time"])
    table.add_row("contract / chain", f"{result['contract']} / {result['chain_id']}")
    console.print(table)


def register(root: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    bank = groups["bank"]
    bank.command("serve")(serve)
    bank.command("models")(models)
    bank.command("register-model")(register_model)
    bank.command("promote")(promote)
    bank.command("score")(score)
    bank.add_typer(credit_app, name="credit")

    groups["audit"].command("model")(audit_model)
