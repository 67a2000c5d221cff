"""`yinqi bank serve|models|register-model|promote|score|credit …|calls|merchants` and
`yinqi audit model`: the bank's lending services from the shell (the loan book's commands —
review, clock, metrics, applications, monitor — are in `yinqi.cli_loanbook`).

The commands parse, call `server.client` (the bank's database, or a running bank over gRPC with
`--bank HOST:PORT` and this caller's certificate) and print. Heavy imports (torch, grpc,
SQLAlchemy models) stay inside the commands so `yinqi --help` is fast.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from federation.money import rate, yuan
from yinqi import cli_loanbook
from yinqi.bank_options import (
    AsJson,
    Bank,
    Ca,
    Cert,
    Db,
    Insecure,
    Key,
    Model,
    ModelsDir,
    bank_from_options,
    console,
    print_json,
    print_reasons,
)
from yinqi.tables import PlainTable, readable_table


def _print_account(info: dict[str, Any], title: str) -> None:
    table = PlainTable(title=Text(title), show_header=False)
    table.add_column("field", style="bold", overflow="fold")
    table.add_column("value", overflow="fold")
    table.add_row("account", info["account_id"])
    table.add_row("merchant", info["merchant_id"])
    table.add_row("limit", f"{yuan(info['limit_fen'])} yuan")
    table.add_row("drawn (principal)", f"{yuan(info['principal_fen'])} yuan")
    table.add_row("interest due", f"{yuan(info['interest_fen'])} yuan")
    table.add_row("available", f"{yuan(info['available_fen'])} yuan")
    table.add_row("rate", f"{rate(info['annual_rate_bp'])} a year")
    table.add_row("band / PD", f"{info['band']} / {info['default_probability']:.4f}")
    table.add_row("model / decision", f"{info['model_version']} / #{info['decision_id']}")
    table.add_row("interest accrued through", info["accrued_through"])
    table.add_row("days past due / tier", f"{info.get('days_past_due', 0)} / {info.get('tier', 'normal')}")
    table.add_row("new draws", f"frozen: {info['frozen']}" if info.get("frozen") else "open")
    console.print(table)
    if info.get("draws"):
        draws = readable_table("draws owed", ("draw", "drawn", "due", "owed (yuan)", "days past due", "tier"))
        for d in info["draws"]:
            draws.add_row(
                d["draw_id"],
                d["drawn_on"],
                d["due_on"],
                yuan(d["principal_fen"]),
                str(d["days_past_due"]),
                d["tier"],
            )
        console.print(draws)


credit_app = typer.Typer(
    help="Revolving credit lines: open, draw, repay, show, accrue (money in fen).", no_args_is_help=True
)


# ----- the bank's services ------------------------------------------------------------------
def serve(
    address: Annotated[
        str, typer.Option(help="HOST:PORT for the Scoring, Credit, Platform and Alert services.")
    ] = "127.0.0.1:50061",
    db: Db = None,
    models_dir: ModelsDir = None,
    certs: Annotated[
        Path | None,
        typer.Option(
            "--certs",
            help="The bank's CA directory (`yinqi bank certs init`): mutual TLS, callers need its certificates.",
        ),
    ] = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Plaintext, no caller identities (loopback tests only).")
    ] = False,
    anchor_every: Annotated[
        float, typer.Option("--anchor-every", help="Seconds between anchoring the queued records (0: off).", min=0)
    ] = 0.0,
    rpc: Annotated[
        str | None, typer.Option("--rpc", help="Chain JSON-RPC URL for anchoring (default: the configured chain).")
    ] = None,
) -> None:
    """Run the bank's gRPC services (scoring, credit lines, platform reports, alert intake) until Ctrl-C."""
    import signal
    import threading

    from federation.storage import url_of
    from server.anchoring import PeriodicFlusher
    from server.credit.errors import BankError
    from server.grpc_app import build_server, warm_model
    from server.security.ca import CertSet

    if (certs is None) == (not insecure):
        raise BankError("give --certs DIR (mutual TLS with the bank's CA) or --insecure (loopback tests only)")
    server = build_server(address, db, CertSet.in_dir(certs) if certs else None, models_dir, insecure=insecure)
    flusher = PeriodicFlusher(url_of(server.engine), anchor_every, rpc).start() if anchor_every else None
    server.start()
    # the promoted model loaded while the first callers connect, not in the first one's call
    threading.Thread(target=warm_model, args=(server.scorer,), name="yinqi-warm-model", daemon=True).start()
    host = address.rsplit(":", 1)[0]
    mode = "mutual TLS, roles checked" if certs else "INSECURE plaintext, every caller holds every role"
    anchoring = f"; anchoring every {anchor_every:g} s" if flusher else ""
    console.print(
        f"bank services {', '.join(server.services)} on {host}:{server.bound_port} ({mode}){anchoring}; Ctrl-C stops"
    )
    signal.signal(signal.SIGTERM, lambda *_: server.stop(grace=2))  # `yinqi bank down` stops us cleanly
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        server.stop(grace=2).wait()
    if flusher is not None:
        flusher.stop()
        console.print(f"anchored {flusher.anchored} record(s) while serving")
    console.print("stopped")


def models(db: Db = None, as_json: AsJson = False) -> None:
    """List registered model versions with their metrics, participants and ε per platform."""
    from server.registry import Registry

    rows = [m.to_dict() for m in Registry(db).list()]
    if as_json:
        print_json(rows)
        return
    table = PlainTable(title="model registry")
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
        table.add_column(column, overflow="fold")
    for m in rows:
        table.add_row(
            m["version"],
            m["status"],
            f"{m['auc']:.4f}" if m["auc"] is not None else "-",
            f"{m['ks']:.4f}" if m["ks"] is not None else "-",
            str(m["rounds"] or "-"),
            ", ".join(m["participants"]) or "-",
            ", ".join(f"{k} {v:.2f}" for k, v in m["epsilon"].items()) or "-",
            m["sha256"][:16],
            m["created_at"][:19],
        )
    console.print(table)


def register_model(
    model_dir: Annotated[
        Path, typer.Argument(help="A trained model directory (model.pt, encoder.json, meta.json, report.json).")
    ],
    db: Db = None,
    models_dir: ModelsDir = None,
    no_anchor: Annotated[bool, typer.Option("--no-anchor", help="Do not queue the model hash for anchoring.")] = False,
    as_json: AsJson = False,
) -> None:
    """Register a trained model as the next version (`bank train` does this after a run)."""
    from server.client import LocalBank

    row = LocalBank(db, models_dir).register_model(model_dir, anchor=not no_anchor)
    if as_json:
        print_json(row.to_dict())
        return
    anchored = "queued for anchoring" if row.anchor_leaf else "not queued for anchoring"
    console.print(f"registered [bold]{row.version}[/] sha256 {row.sha256} ({row.status}); hash {anchored}")


def promote(
    version: Annotated[str, typer.Argument(help="The model version to promote, e.g. v2.")],
    db: Db = None,
    models_dir: ModelsDir = None,
    as_json: AsJson = False,
) -> None:
    """Make VERSION the scoring default and re-evaluate every open credit line with it."""
    from server.client import LocalBank

    result = LocalBank(db, models_dir).promote(version)
    if as_json:
        print_json(result)
        return
    table = PlainTable(title=Text(f"{version} promoted: credit lines re-evaluated"))
    for column in ("account", "merchant", "old limit (yuan)", "new limit (yuan)", "note"):
        table.add_column(column, overflow="fold")
    for change in result["reevaluated"]:
        if "reason" in change:
            kept = yuan(change["kept"])
            table.add_row(change["account_id"], change["merchant_id"], kept, kept, "kept: " + change["reason"])
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
    merchant: Annotated[str, typer.Option("--merchant", help="The merchant id to score.")],
    model: Model = None,
    db: Db = None,
    models_dir: ModelsDir = None,
    bank: Bank = None,
    ca: Ca = None,
    cert: Cert = None,
    key: Key = None,
    insecure: Insecure = False,
    as_json: AsJson = False,
) -> None:
    """Score a consented merchant on the features its platform reported: PD, band and the limit on offer."""
    client = bank_from_options(db, models_dir, bank, ca, cert, key, insecure)
    try:
        result = client.score(merchant, model)
    finally:
        client.close()
    if as_json:
        print_json(result)
        return
    table = PlainTable(title=Text(f"merchant {merchant} scored with {result['model_version']}"), show_header=False)
    table.add_column("field", style="bold", overflow="fold")
    table.add_column("value", overflow="fold")
    table.add_row("outcome", f"{result['outcome']} (application #{result['application_id']})")
    table.add_row("default probability", f"{result['default_probability']:.4f}")
    table.add_row("band", result["band"])
    table.add_row("recent monthly turnover", f"{yuan(result['turnover_fen'])} yuan")
    table.add_row("credit limit", f"{yuan(result['limit_fen'])} yuan")
    table.add_row("rate", f"{rate(result['annual_rate_bp'])} a year")
    table.add_row("decision / inputs sha256", f"#{result['decision_id']} / {result['inputs_hash']}")
    console.print(table)
    print_reasons(result["reasons"])


# ----- credit lines -------------------------------------------------------------------------
@credit_app.command("open")
def credit_open(
    merchant: Annotated[str, typer.Option("--merchant", help="The merchant id.")],
    model: Model = None,
    db: Db = None,
    models_dir: ModelsDir = None,
    bank: Bank = None,
    ca: Ca = None,
    cert: Cert = None,
    key: Key = None,
    insecure: Insecure = False,
    as_json: AsJson = False,
) -> None:
    """Score a consented merchant (reported features) and open a credit line with the policy's limit."""
    client = bank_from_options(db, models_dir, bank, ca, cert, key, insecure)
    try:
        info = client.open_line(merchant, model)
    finally:
        client.close()
    print_json(info) if as_json else _print_account(info, "credit line opened")


@credit_app.command("draw")
def credit_draw(
    account: Annotated[str, typer.Argument(help="The credit account id (CL-…).")],
    amount_fen: Annotated[int, typer.Argument(help="Amount in fen (1 yuan = 100 fen).")],
    term_days: Annotated[
        int, typer.Option("--term-days", help="Days until the draw is due (0: the policy's default, 30).", min=0)
    ] = 0,
    db: Db = None,
    models_dir: ModelsDir = None,
    bank: Bank = None,
    ca: Ca = None,
    cert: Cert = None,
    key: Key = None,
    insecure: Insecure = False,
    as_json: AsJson = False,
) -> None:
    """Borrow AMOUNT_FEN against the line, due in --term-days (refused above the available limit,
    on a frozen line, or while a draw is past due)."""
    client = bank_from_options(db, models_dir, bank, ca, cert, key, insecure)
    try:
        info = client.draw(account, amount_fen, term_days or None)
    finally:
        client.close()
    print_json(info) if as_json else _print_account(info, f"draw of {yuan(amount_fen)} yuan booked")


@credit_app.command("repay")
def credit_repay(
    account: Annotated[str, typer.Argument(help="The credit account id (CL-…).")],
    amount_fen: Annotated[int, typer.Argument(help="Amount in fen (1 yuan = 100 fen).")],
    db: Db = None,
    models_dir: ModelsDir = None,
    bank: Bank = None,
    ca: Ca = None,
    cert: Cert = None,
    key: Key = None,
    insecure: Insecure = False,
    as_json: AsJson = False,
) -> None:
    """Pay back AMOUNT_FEN: accrued interest first, then principal (the oldest due draw first)."""
    client = bank_from_options(db, models_dir, bank, ca, cert, key, insecure)
    try:
        info = client.repay(account, amount_fen)
    finally:
        client.close()
    print_json(info) if as_json else _print_account(info, f"repay of {yuan(amount_fen)} yuan booked")


@credit_app.command("unfreeze")
def credit_unfreeze(
    account: Annotated[str, typer.Argument(help="The credit account id (CL-…).")],
    db: Db = None,
    models_dir: ModelsDir = None,
    bank: Bank = None,
    ca: Ca = None,
    cert: Cert = None,
    key: Key = None,
    insecure: Insecure = False,
    as_json: AsJson = False,
) -> None:
    """Lift a line's hold on new draws (a referred application a credit officer approved, or a
    review's cut the bank decides to lift)."""
    client = bank_from_options(db, models_dir, bank, ca, cert, key, insecure)
    try:
        info = client.unfreeze(account)
    finally:
        client.close()
    print_json(info) if as_json else _print_account(info, "hold lifted: new draws open")


@credit_app.command("show")
def credit_show(
    account: Annotated[str | None, typer.Argument(help="Account id; omit to list every line (local only).")] = None,
    merchant: Annotated[str | None, typer.Option("--merchant", help="Show the line of this merchant instead.")] = None,
    entries: Annotated[bool, typer.Option("--entries", help="Also print the ledger (local only).")] = False,
    db: Db = None,
    models_dir: ModelsDir = None,
    bank: Bank = None,
    ca: Ca = None,
    cert: Cert = None,
    key: Key = None,
    insecure: Insecure = False,
    as_json: AsJson = False,
) -> None:
    """Show one credit line (with --entries its ledger), or list all lines."""
    from server.credit.errors import BankError

    if bank and ((account is None and merchant is None) or entries):
        raise BankError("a remote bank shows one line: name an account or --merchant, without --entries")
    client = bank_from_options(db, models_dir, bank, ca, cert, key, insecure)
    try:
        if account is None and merchant is None:
            _print_lines(client.lines(), as_json)
            return
        info = client.line(account, merchant)
        ledger = client.entries(info["account_id"]) if entries else []
    finally:
        client.close()
    if as_json:
        print_json({**info, "entries": ledger} if entries else info)
        return
    _print_account(info, "credit line")
    if ledger:
        table = PlainTable(title="ledger")
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
            table.add_column(column, overflow="fold")
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


def _print_lines(lines: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print_json(lines)
        return
    table = PlainTable(title="credit lines")
    for column in ("account", "merchant", "band", "limit", "drawn", "interest due", "available", "model"):
        table.add_column(column, overflow="fold")
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


@credit_app.command("accrue")
def credit_accrue(
    through: Annotated[
        str | None, typer.Option("--through", help="Last day to accrue, YYYY-MM-DD (default: yesterday, UTC).")
    ] = None,
    db: Db = None,
    models_dir: ModelsDir = None,
    bank: Bank = None,
    ca: Ca = None,
    cert: Cert = None,
    key: Key = None,
    insecure: Insecure = False,
    as_json: AsJson = False,
) -> None:
    """Post daily interest on every open line for each whole day not yet accrued."""
    from server.credit.errors import BankError

    try:
        day = date.fromisoformat(through) if through else None
    except ValueError:
        raise BankError(f"--through '{through}' is not a date; expected YYYY-MM-DD") from None
    client = bank_from_options(db, models_dir, bank, ca, cert, key, insecure)
    try:
        result = client.accrue(day)
    finally:
        client.close()
    if as_json:
        print_json(result)
        return
    console.print(
        f"interest accrued through {result['through']}: {yuan(result['interest_fen'])} yuan on {result['accounts']} line(s)"
    )


# ----- who did what -------------------------------------------------------------------------
def calls(
    limit: Annotated[int, typer.Option("--limit", help="Newest calls to show (0: all).", min=0)] = 50,
    caller: Annotated[str | None, typer.Option("--caller", help="Only this party's calls.")] = None,
    method: Annotated[str | None, typer.Option("--method", help="Only calls whose method contains this.")] = None,
    db: Db = None,
    as_json: AsJson = False,
) -> None:
    """The call log: every state-changing call and every refusal, with the caller's identity."""
    from server.security.calllog import CallLog

    rows = [c.to_dict() for c in CallLog(db).list(limit=limit, caller=caller, method=method)]
    if as_json:
        print_json(rows)
        return
    table = PlainTable(title="calls to the bank's services (newest first)")
    for column in ("#", "time (UTC)", "caller", "role", "method", "request", "outcome"):
        table.add_column(column, overflow="fold")
    for c in rows:
        outcome = c["status"] + (f": {c['detail']}" if c["detail"] else "")
        table.add_row(str(c["id"]), c["at"][:19], c["caller"], c["role"], c["method"], c["request"], outcome)
    console.print(table)


def merchants(db: Db = None, as_json: AsJson = False) -> None:
    """Which platform each merchant belongs to (its first reporter) and when its features were reported."""
    from server.feature_store import FeatureStore
    from server.merchants import list_owners

    owned = list_owners(db)
    store = FeatureStore(db)
    reported = store.reported([m for m, _, _ in owned])
    rows: list[dict[str, str]] = [
        {
            "merchant_id": m,
            "platform": p,
            "since": t.isoformat(timespec="seconds"),
            "features_reported_at": reported.get(m, ""),
        }
        for m, p, t in owned
    ]
    if as_json:
        print_json(rows)
        return
    table = PlainTable(title="merchants by platform")
    for column in ("merchant", "platform", "owned since (UTC)", "features reported (UTC)"):
        table.add_column(column, overflow="fold")
    for r in rows:
        reported_at = r["features_reported_at"] or "-"
        table.add_row(r["merchant_id"], r["platform"], r["since"][:19], reported_at[:19])
    console.print(table)


# ----- audit --------------------------------------------------------------------------------
def audit_model(
    version: Annotated[str, typer.Argument(help="The registered model version, e.g. v1.")],
    rpc: Annotated[
        str | None,
        typer.Option(
            "--rpc", help="Ethereum JSON-RPC URL (default: YINQI_CHAIN_RPC, else the embedded EVM in the data dir)."
        ),
    ] = None,
    db: Db = None,
    as_json: AsJson = False,
) -> None:
    """Verify a registered model: re-hash its stored files and check the anchored hash on chain."""
    from server.model_audit import audit_model as check

    result = check(version, rpc, db)
    if as_json:
        print_json(result)
        return
    table = PlainTable(title=Text(f"model {version}: verified"), show_header=False)
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
    bank.command("calls")(calls)
    bank.command("merchants")(merchants)
    cli_loanbook.register(root, groups)

    groups["audit"].command("model")(audit_model)
