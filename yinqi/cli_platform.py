"""`yinqi client keygen|up|consent …`: what a platform runs on its own machine, next to its
private data (its SuperNode and ClientApp worker, its node key, its merchants' consent).

Heavy imports (flwr, torch, cryptography) stay inside the commands so `yinqi --help` is fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from clients.errors import NodeError

console = Console()
JSON_HELP = "Print the result as JSON."
CA_HELP = "The bank's CA certificate (PEM): use TLS to reach --bank."
CERT_HELP = "This platform's certificate from the bank (`yinqi bank certs issue NAME --role platform`)."
KEY_HELP = "This platform's private key (PEM) for mutual TLS."

consent_app = typer.Typer(
    help="Merchant consent: grant, withdraw, list, report to the bank (history kept with time).", no_args_is_help=True
)


def _print_json(value: Any) -> None:
    console.print_json(json.dumps(value, default=str))


def keygen(
    out: Path = typer.Option(..., "--out", help="Private key path; the public key is written to OUT.pub."),
) -> None:
    """Create this platform's SuperNode key pair (EC P-384, OpenSSH format)."""
    from clients.node.keys import make_node_key

    if out.exists():
        raise NodeError(f"{out}: already exists (a node key is its identity; not overwriting)")
    private, public = make_node_key(out)
    console.print(f"private key {private} (keep it here)\npublic key {public} (send it to the bank)")


def client_up(
    bank: str = typer.Option(..., "--bank", help="The bank's SuperLink HOST:PORT."),
    data: Path = typer.Option(..., "--data", help="This platform's private data (features, or raw with --mapping)."),
    mapping: Path | None = typer.Option(
        None,
        "--mapping",
        help="mapping.toml: DATA is raw transactions in this platform's column names; build features first.",
    ),
    key: Path | None = typer.Option(
        None, "--key", help="This node's private key (from `yinqi client keygen`), registered at the bank."
    ),
    ca: Path | None = typer.Option(None, "--ca", help="The bank's CA certificate (TLS)."),
    name: str | None = typer.Option(None, "--name", help="Platform name (default: the key's or data file's name)."),
    policy_file: Path | None = typer.Option(
        None,
        "--policy",
        help="This platform's privacy policy (policy.toml: DP, ε/δ caps, SecAgg+, fewest other platforms, approved ClientApps); default: the safe defaults.",
    ),
    epsilon_budget: float | None = typer.Option(
        None,
        "--epsilon-budget",
        help="This platform's lifetime ε budget (overrides the policy's); training past it is refused.",
    ),
    ledger_db: str | None = typer.Option(
        None, "--ledger-db", help="SQLAlchemy URL of this platform's privacy ledger (default: ledger.db in --workdir)."
    ),
    workdir: Path | None = typer.Option(
        None, "--workdir", help="Where this node keeps logs and Flower state (default: <data dir>/client/NAME)."
    ),
    connect_timeout: float = typer.Option(
        60.0, "--connect-timeout", help="Give up when the bank does not answer within this many seconds."
    ),
) -> None:
    """Run this platform's SuperNode (and ClientApp worker) next to its private data until Ctrl-C.

    The node runs only the ClientApps its policy approves and only runs that meet its policy;
    each refusal is printed here as one line (and kept: `yinqi client status`).
    """
    import math

    from clients.node.platform import PlatformNode, serve
    from clients.policy import PolicyError, load_policy
    from federation.config import data_dir

    policy = load_policy(policy_file)  # a mistake in it stops the node before it starts
    if epsilon_budget is not None and not (math.isfinite(epsilon_budget) and epsilon_budget > 0):
        raise PolicyError(f"--epsilon-budget must be a finite number > 0, got {epsilon_budget:g}")

    node_name = name or (key.name if key else data.stem)
    work = workdir or (data_dir() / "client" / node_name)
    work.mkdir(parents=True, exist_ok=True)
    features = data
    if mapping is not None:
        from federation import files
        from federation.features import build_features
        from federation.schema import load_mapping, read_table

        features = work / "features.csv"
        table = build_features(read_table(data), str(data), mapping=load_mapping(mapping))
        files.write_with(features, lambda path: table.to_csv(path, index=False))
    # The platform's own books: a ledger next to its node unless told otherwise.
    ledger = ledger_db or f"sqlite:///{(work / 'ledger.db').resolve()}"
    node = PlatformNode(
        bank=bank,
        data=features,
        name=node_name,
        key=key,
        ca=ca,
        epsilon_budget=epsilon_budget,
        ledger_db=ledger,
        connect_timeout=connect_timeout,
        policy=policy,
        refusal_log=work / "refusals.jsonl",
    )
    console.print(
        f"platform {node_name}: connecting to {bank} ({'TLS' if ca else 'insecure'}"
        f"{', key ' + str(key) if key else ''})"
    )
    for line in node.effective_policy.describe():
        console.print(
            f"platform {node_name}: policy ({node.effective_policy.source}): {line}", highlight=False, soft_wrap=True
        )
    import signal

    def _terminate(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)  # `kill PID` stops the node cleanly too
    try:
        serve(
            node,
            work,
            on_ready=lambda: console.print(f"platform {node_name}: connected; waiting for runs (Ctrl-C stops)"),
            on_refusal=lambda refusal: console.print(
                f"platform {node_name}: {refusal.line()}", highlight=False, markup=False, soft_wrap=True
            ),
        )
    except KeyboardInterrupt:
        console.print(f"platform {node_name}: stopped")


def _plain(text: str) -> None:
    """One line as it is: no rich markup (reasons contain brackets), no wrapping."""
    console.print(text, highlight=False, markup=False, soft_wrap=True)


def client_status(
    name: str | None = typer.Option(None, "--name", help="The platform's name (its work directory in the data dir)."),
    workdir: Path | None = typer.Option(
        None, "--workdir", help="The node's work directory (default: <data dir>/client/NAME)."
    ),
    recent: int = typer.Option(10, "--recent", min=0, help="How many of the latest refusals to show."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """This platform's node: running or not, its policy, the ClientApps it approves (pinned by
    identity hash), ε spent against its lifetime budget, and what it refused."""
    from clients.node.status import node_status
    from federation.config import data_dir

    if workdir is None:
        if name is None:
            raise NodeError("give --name NAME or --workdir DIR (the directory `yinqi client up` used)")
        workdir = data_dir() / "client" / name
    state = node_status(workdir, recent)
    if as_json:
        _print_json(state)
        return
    running = "running" if state["running"] else "not running"
    _plain(f"platform {state['name']}: node {running} (pid {state['pid']}), bank {state['bank']}")
    _plain(f"  data {state['data']}")
    _plain(f"  policy {state['policy']['source']}")
    for line in state["policy"]["lines"]:
        _plain(f"    {line}")
    for app in state["apps"]:
        changed = "" if app["unchanged"] else "  [installed code changed since start: its runs are refused]"
        _plain(f"  approved ClientApp {app['describe']}{changed}")
        _plain(f"    identity {app['identity']}")
    for digest in state["fab_hashes"]:
        _plain(f"  approved FAB sha256 {digest}")
    ledger = state["ledger"]
    if ledger["spent"] is not None:
        left = f", {ledger['left']:.3f} left of {ledger['lifetime']:g}" if "left" in ledger else ""
        _plain(f"  ε spent over all runs {ledger['spent']:.3f}{left} (ledger {ledger['db']})")
    _plain(f"  refusals: {state['refusal_count']}")
    for refusal in state["refusals"]:
        _plain(f"    {refusal['at'][:19]} run {refusal['run_id']} ({refusal['stage']}): {refusal['reason']}")


def _consent_change(granted: bool) -> Any:
    def command(
        merchants: list[str] = typer.Argument(..., help="Merchant ids."),
        note: str = typer.Option("", help="Why / by which document (kept with the event)."),
        db: str | None = typer.Option(
            None, help="The platform's consent database URL (default: YINQI_DB_URL / data dir)."
        ),
        as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
    ) -> None:
        from clients.consent import ConsentBook

        book = ConsentBook(db)
        records = book.grant(merchants, note=note) if granted else book.withdraw(merchants, note=note)
        if as_json:
            _print_json([r.to_dict() for r in records])
            return
        what = "granted" if granted else "withdrawn"
        console.print(f"consent {what} for {len(records)} merchant(s) at {records[0].at.isoformat()}")

    command.__doc__ = (
        "Record that merchants consent to their data being used for training and scoring."
        if granted
        else "Record that merchants withdraw consent: they are excluded from training and scoring from now on."
    )
    return command


consent_app.command("grant")(_consent_change(True))
consent_app.command("withdraw")(_consent_change(False))


@consent_app.command("report")
def consent_report(
    bank: str = typer.Option(..., envvar="YINQI_BANK", help="The bank's gRPC services, HOST:PORT."),
    ca: Path | None = typer.Option(None, envvar="YINQI_BANK_CA", help=CA_HELP),
    cert: Path | None = typer.Option(None, envvar="YINQI_BANK_CERT", help=CERT_HELP),
    key: Path | None = typer.Option(None, envvar="YINQI_BANK_KEY", help=KEY_HELP),
    features: Path | None = typer.Option(
        None,
        "--features",
        help="Also send the consented merchants' latest feature rows from this table (what the bank scores on).",
    ),
    platform: str = typer.Option(
        "", help="This platform's name; the bank takes it from --cert (needed only with --insecure)."
    ),
    insecure: bool = typer.Option(False, "--insecure", help="Plaintext, for a loopback bank without TLS."),
    db: str | None = typer.Option(None, help="The platform's consent database URL (default: YINQI_DB_URL / data dir)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Report this platform's consent events (idempotent) and, with --features, its consented merchants' features."""
    from clients.consent import ConsentBook
    from clients.consent_report import report_consent
    from clients.reporting import report_features
    from proto.channel import ClientTls, connect

    book = ConsentBook(db)
    with connect(bank, ClientTls(ca, cert, key) if ca else None, insecure=insecure) as channel:
        ack: dict[str, Any] = report_consent(book, channel, platform)
        if features is not None:
            ack["features"] = report_features(book, features, channel, platform)
    if as_json:
        _print_json(ack)
        return
    console.print(f"reported {ack['received']} consent event(s) to the bank at {bank}; {ack['stored']} new")
    if features is not None:
        sent = ack["features"]
        console.print(
            f"reported features of {sent['merchants']} consented merchant(s); {sent['changed']} changed at the bank, "
            f"{sent['not_consented']} merchant(s) without consent not sent"
        )


@consent_app.command("list")
def consent_list(
    merchant: str | None = typer.Option(None, help="Only this merchant."),
    history: bool = typer.Option(False, "--history", help="Every grant and withdrawal, not only the current state."),
    db: str | None = typer.Option(None, help="The platform's consent database URL (default: YINQI_DB_URL / data dir)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Current consent per merchant, or (--history) every change with its time."""
    from clients.consent import ConsentBook

    book = ConsentBook(db)
    if history:
        records = book.history(merchant)
    else:
        records = list(book.current([merchant] if merchant else None).values())
        records.sort(key=lambda r: r.merchant_id)
    if as_json:
        _print_json([r.to_dict() for r in records])
        return
    table = Table(title="consent history" if history else "consent in force")
    for column in ("merchant", "consent", "since (UTC)" if not history else "at (UTC)", "note"):
        table.add_column(column)
    for r in records:
        table.add_row(r.merchant_id, "granted" if r.granted else "withdrawn", r.at.isoformat()[:19], r.note)
    console.print(table)


def register(root: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    client = groups["client"]
    client.command("up")(client_up)
    client.command("status")(client_status)
    client.command("keygen")(keygen)
    client.add_typer(consent_app, name="consent")
