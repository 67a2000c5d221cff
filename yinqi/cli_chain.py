"""`yinqi chain`, `yinqi anchor` and `yinqi audit verify`: receivables financing, parties and
roles, the embedded chain's JSON-RPC node, anchoring and the auditor's check from the shell.
web3 is imported inside the commands to keep --help fast. A mistyped number or choice is one
line and exit code 2, like every other refusal."""

from __future__ import annotations

import json
import math
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

console = Console()

RPC_HELP = "Ethereum JSON-RPC URL (default: YINQI_CHAIN_RPC, else the embedded EVM in the data dir)."
AS_HELP = (
    "Account to sign with: an account name (bank, debtor, supplier, supplier2, supplier3, auditor) or its address."
)
JSON_HELP = "Print the result as JSON."
MAX_ADVANCE_DAYS = 36_500


def _typer(help_text: str) -> typer.Typer:
    return typer.Typer(help=help_text, no_args_is_help=True)


chain_app = _typer("On-chain receivables financing: deploy, parties and roles, lifecycle, limits, events, node.")
receivable_app = _typer("A receivable's lifecycle: create → apply → approve → fund → repay | default.")
limit_app = _typer("Per-debtor financing limits and terms (required before funding).")
party_app = _typer("Onboard parties and grant or revoke their on-chain roles (the bank's admin).")
anchor_app = _typer("Anchor records (documents, alerts, models) as Merkle roots on chain.")
chain_app.add_typer(receivable_app, name="receivable")
chain_app.add_typer(limit_app, name="limit")
chain_app.add_typer(party_app, name="party")


def _command(app: typer.Typer, name: str) -> Any:
    return app.command(name)


def _open(rpc: str | None) -> Any:
    from contracts.client import open_chain

    return open_chain(rpc)


def _utc(ts: int) -> str:
    """A block timestamp as UTC; one no calendar holds (a hostile chain's) is shown raw."""
    try:
        return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (ValueError, OverflowError, OSError):
        return f"{ts} s after 1970 (beyond year 9999)"


def _finite(value: float, option: str, low: float, high: float) -> float:
    from contracts.errors import ChainError

    if not math.isfinite(value) or not low <= value <= high:
        raise ChainError(f"{option} {value!r}: expected a number in {low:g}..{high:g}")
    return value


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "not funded yet"
    d, rem = divmod(int(seconds), 86400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    parts = [
        f"{d} d" if d else "",
        f"{h} h" if h else "",
        f"{m} min" if m else "",
        f"{s} s" if s or not (d or h or m) else "",
    ]
    return " ".join(p for p in parts if p)


def _print_json(value: Any) -> None:
    console.print_json(json.dumps(value, default=str))


def _doc_hash(doc: Path | None, doc_hash: str | None) -> bytes:
    from eth_utils import keccak

    from contracts.errors import ChainError

    if doc is not None:
        try:
            return keccak(doc.read_bytes())
        except OSError as exc:
            raise ChainError(f"{doc}: cannot read the document ({exc.strerror})") from None
    if doc_hash is not None:
        try:
            raw = bytes.fromhex(doc_hash.removeprefix("0x"))
        except ValueError:
            raw = b""
        if len(raw) != 32:
            raise ChainError(f"--doc-hash {doc_hash!r}: expected 32 bytes of hex (keccak256 of the document)")
        return raw
    raise ChainError("create: give the invoice/contract as --doc FILE or its keccak256 as --doc-hash HEX")


# ----- chain ----------------------------------------------------------------------------------


@_command(chain_app, "deploy")
def deploy(
    rpc: str | None = typer.Option(None, "--rpc", help=RPC_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Deploy ReceivableFinancing and AnchorRegistry (once per chain) and list the role accounts."""
    chain = _open(rpc)
    info = {
        "endpoint": chain.endpoint,
        "chain_id": chain.chain_id,
        "deployed_now": chain.deployed_now,
        "ReceivableFinancing": chain.financing.address,
        "AnchorRegistry": chain.registry.address,
        "anchorer": chain.account("bank").address,
        "accounts": {n: a.address for n, a in chain.accounts.items()},
    }
    if as_json:
        _print_json(info)
        return
    console.print(
        f"{'deployed' if chain.deployed_now else 'already deployed'} on {chain.endpoint} (chain id {chain.chain_id})"
    )
    table = Table("name", "address")
    table.add_row("ReceivableFinancing", chain.financing.address)
    table.add_row("AnchorRegistry", chain.registry.address)
    for n, a in chain.accounts.items():
        table.add_row(f"--as {n}", a.address)
    console.print(table)


@_command(chain_app, "advance-time")
def advance_time(
    days: float = typer.Option(..., "--days", help="How far to move the chain clock forward."),
    rpc: str | None = typer.Option(None, "--rpc", help=RPC_HELP),
) -> None:
    """Move a development chain's clock forward (embedded EVM, Hardhat): e.g. past a due date."""
    days = _finite(days, "--days", 0, MAX_ADVANCE_DAYS)
    chain = _open(rpc)
    target = chain.now() + int(days * 86400)
    chain.time_travel(target)
    console.print(f"chain time is now {_utc(chain.now())}")


@_command(chain_app, "watch")
def watch(
    from_block: int = typer.Option(0, "--from-block", help="First block to show."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep streaming new events until Ctrl-C."),
    interval: float = typer.Option(1.0, "--interval", help="Seconds between polls with --follow."),
    rpc: str | None = typer.Option(None, "--rpc", help=RPC_HELP),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per event (JSON lines)."),
) -> None:
    """Stream the contracts' events (transfers, splits, financing, anchors) as they happen."""
    from contracts import receivables as rv

    interval = _finite(interval, "--interval", 0.05, 3600)
    if from_block < 0:
        from contracts.errors import ChainError

        raise ChainError(f"--from-block {from_block}: expected a block number ≥ 0")
    chain = _open(rpc)
    start = from_block
    while True:
        chain.sync()  # the embedded chain: pick up blocks other processes added
        head = int(chain.w3.eth.block_number)
        if head >= start:
            for ev in rv.events(chain, start, head):
                args = {
                    k: (
                        chain.name_of(v)
                        if isinstance(v, str) and v.startswith("0x") and len(v) == 42
                        else ("0x" + v.hex() if isinstance(v, bytes) else v)
                    )
                    for k, v in ev["args"].items()
                }
                if as_json:
                    print(json.dumps({**ev, "args": args}, default=str), flush=True)
                else:
                    shown = " ".join(f"{k}={v}" for k, v in args.items())
                    console.print(f"[dim]block {ev['block']}[/] [bold]{ev['event']}[/] {shown}", highlight=False)
            start = head + 1
        if not follow:
            return
        time.sleep(interval)


@_command(chain_app, "turnaround")
def turnaround(
    rpc: str | None = typer.Option(None, "--rpc", help=RPC_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Create → funded time of every funded receivable (financing turnaround)."""
    from contracts import receivables as rv

    chain = _open(rpc)
    funded = [e["args"]["id"] for e in rv.events(chain) if e["event"] == "Financed"]
    rows = [rv.get(chain, rid) for rid in funded]
    if as_json:
        _print_json([{"id": r.id, "amount": r.amount, "turnaround_seconds": r.turnaround_seconds} for r in rows])
        return
    table = Table("id", "amount", "created", "funded", "turnaround", title="create → funded")
    for r in rows:
        table.add_row(
            str(r.id), f"{r.amount:,}", _utc(r.created_at), _utc(r.funded_at), _duration(r.turnaround_seconds)
        )
    console.print(table)


# ----- receivable ----------------------------------------------------------------------------


@_command(receivable_app, "create")
def create(
    to: str = typer.Option(..., "--to", help="The creditor (supplier) owed the money: role name or address."),
    amount: int = typer.Option(..., "--amount", help="Face value in integer minor units (fen/cents), 1..10**15."),
    due: str | None = typer.Option(None, "--due", help="Due date YYYY-MM-DD (end of that day, UTC)."),
    due_days: int | None = typer.Option(
        None, "--due-days", help="Due this many days after now (chain time), at most 3650."
    ),
    doc: Path | None = typer.Option(None, "--doc", help="The invoice/contract document; its keccak256 is recorded."),
    doc_hash: str | None = typer.Option(None, "--doc-hash", help="keccak256 of the document, hex."),
    sender: str = typer.Option("debtor", "--as", help=AS_HELP),
    rpc: str | None = typer.Option(None, "--rpc", help=RPC_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """The debtor (core enterprise) records a receivable owed to a supplier."""
    from contracts import receivables as rv
    from contracts.errors import ChainError

    chain = _open(rpc)
    if (due is None) == (due_days is None):
        raise ChainError("create: give exactly one of --due YYYY-MM-DD or --due-days N")
    if due is not None:
        try:
            day = datetime.strptime(due, "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:
            raise ChainError(f"--due {due!r}: expected a date YYYY-MM-DD") from None
        due_ts = int(day.timestamp()) + 86399
    else:
        assert due_days is not None
        due_ts = chain.now() + due_days * 86400  # out of range: the contract's DueDateTooFar names the limit
    rid = rv.create(chain, to, amount, due_ts, _doc_hash(doc, doc_hash), sender=sender)
    if as_json:
        _print_json(rv.get(chain, rid).as_dict())
    else:
        console.print(f"receivable [bold]{rid}[/] created: {amount:,} owed by {sender} to {to}, due {_utc(due_ts)}")


@_command(receivable_app, "transfer")
def transfer(
    rid: int = typer.Argument(..., help="Receivable id."),
    to: str = typer.Option(..., "--to", help="The new holder (its own supplier)."),
    sender: str = typer.Option(..., "--as", help=AS_HELP),
    rpc: str | None = typer.Option(None, "--rpc", help=RPC_HELP),
) -> None:
    """The holder passes the whole receivable on (流转); the title history records it."""
    from contracts import receivables as rv

    chain = _open(rpc)
    rv.transfer(chain, rid, to, sender=sender)
    console.print(f"receivable {rid} transferred from {sender} to {to}")


@_command(receivable_app, "split")
def split(
    rid: int = typer.Argument(..., help="Receivable id."),
    to: str = typer.Option(..., "--to", help="Who receives the split-off part."),
    amount: int = typer.Option(..., "--amount", min=1, help="Part to split off, minor units (< current amount)."),
    sender: str = typer.Option(..., "--as", help=AS_HELP),
    rpc: str | None = typer.Option(None, "--rpc", help=RPC_HELP),
) -> None:
    """The holder passes part of a receivable on as a new receivable (amounts conserved)."""
    from contracts import receivables as rv

    chain = _open(rpc)
    child = rv.split(chain, rid, to, amount, sender=sender)
    parent = rv.get(chain, rid)
    console.print(
        f"receivable {rid} split: new receivable [bold]{child}[/] of {amount:,} held by {to}; "
        f"{rid} keeps {parent.amount:,}"
    )


@_command(receivable_app, "apply")
def apply(
    rid: int = typer.Argument(..., help="Receivable id."),
    sender: str = typer.Option(..., "--as", help=AS_HELP),
    rpc: str | None = typer.Option(None, "--rpc", help=RPC_HELP),
) -> None:
    """The holder applies for financing; approved by the contract at once when within the limit."""
    from contracts import receivables as rv

    chain = _open(rpc)
    auto = rv.apply(chain, rid, sender=sender)
    console.print(
        f"receivable {rid}: financing requested; "
        + (
            "[green]approved automatically[/] (within the debtor's limit and terms)"
            if auto
            else "waiting for the bank's decision (outside the automatic limit or terms)"
        )
    )


@_command(receivable_app, "approve")
def approve(
    rid: int = typer.Argument(..., help="Receivable id."),
    over_limit: bool = typer.Option(
        False, "--over-limit", help="Approve beyond the debtor's remaining limit (the bank's admin; logged on chain)."
    ),
    reason: str = typer.Option(
        "", "--reason", help="Why the limit is overridden (≤ 32 bytes; needed with --over-limit)."
    ),
    sender: str = typer.Option("bank", "--as", help=AS_HELP),
    rpc: str | None = typer.Option(None, "--rpc", help=RPC_HELP),
) -> None:
    """The bank approves a pending application within the debtor's limit (or overrides it, logged)."""
    from contracts import receivables as rv

    chain = _open(rpc)
    if over_limit:
        rv.approve_over_limit(chain, rid, reason, sender=sender)
        console.print(f"receivable {rid}: approved over the limit by {sender} (reason {reason!r}, logged on chain)")
        return
    rv.approve(chain, rid, sender=sender)
    console.print(f"receivable {rid}: approved by the bank")


@_command(receivable_app, "reject")
def reject(
    rid: int = typer.Argument(..., help="Receivable id."),
    reason: str = typer.Option("", "--reason", help="Short reason (≤ 32 bytes)."),
    sender: str = typer.Option("bank", "--as", help=AS_HELP),
    rpc: str | None = typer.Option(None, "--rpc", help=RPC_HELP),
) -> None:
    """The bank rejects a pending application (the holder may apply again)."""
    from contracts import receivables as rv

    rv.reject(_open(rpc), rid, reason, sender=sender)
    console.print(f"receivable {rid}: financing rejected")


@_command(receivable_app, "fund")
def fund(
    rid: int = typer.Argument(..., help="Receivable id."),
    sender: str = typer.Option("bank", "--as", help=AS_HELP),
    rpc: str | None = typer.Option(None, "--rpc", help=RPC_HELP),
) -> None:
    """The bank funds an approved receivable (advance and discount recorded); shows the turnaround."""
    from contracts import receivables as rv

    chain = _open(rpc)
    advance, discount = rv.fund(chain, rid, sender=sender)
    r = rv.get(chain, rid)
    console.print(
        f"receivable {rid} funded: advance {advance:,}, discount {discount:,}; "
        f"turnaround create → funded [bold]{_duration(r.turnaround_seconds)}[/]"
    )


@_command(receivable_app, "repay")
def repay(
    rid: int = typer.Argument(..., help="Receivable id."),
    sender: str = typer.Option("debtor", "--as", help=AS_HELP),
    rpc: str | None = typer.Option(None, "--rpc", help=RPC_HELP),
) -> None:
    """The debtor pays the face value (to the financier when financed)."""
    from contracts import receivables as rv

    chain = _open(rpc)
    payee, after_default = rv.repay(chain, rid, sender=sender)
    late = " (late: after a default was declared)" if after_default else ""
    console.print(f"receivable {rid} repaid to {chain.name_of(payee)}{late}")


@_command(receivable_app, "default")
def default(
    rid: int = typer.Argument(..., help="Receivable id."),
    sender: str = typer.Option("bank", "--as", help=AS_HELP),
    rpc: str | None = typer.Option(None, "--rpc", help=RPC_HELP),
) -> None:
    """Declare an unpaid receivable defaulted (the bank or its servicer, after due date + grace period)."""
    from contracts import receivables as rv

    rv.mark_defaulted(_open(rpc), rid, sender=sender)
    console.print(f"receivable {rid} marked defaulted")


@_command(receivable_app, "show")
def show(
    rid: int = typer.Argument(..., help="Receivable id."),
    rpc: str | None = typer.Option(None, "--rpc", help=RPC_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """A receivable's state, amounts, chain of title and create → funded turnaround."""
    from contracts import receivables as rv

    chain = _open(rpc)
    r = rv.get(chain, rid)
    titles = rv.title_history(chain, rid)
    kids = rv.children(chain, rid)
    if as_json:
        _print_json({**r.as_dict(), "title_history": titles, "children": kids})
        return
    table = Table("field", "value", title=f"receivable {rid}")
    table.add_row("state", r.state)
    table.add_row("amount", f"{r.amount:,}")
    table.add_row("debtor", chain.name_of(r.debtor))
    table.add_row("holder", chain.name_of(r.holder))
    table.add_row("title history", " → ".join(chain.name_of(a) for a in titles))
    if r.parent_id:
        table.add_row("split from", str(r.parent_id))
    if kids:
        table.add_row("split into", ", ".join(map(str, kids)))
    table.add_row("due", _utc(r.due_date))
    table.add_row("created", _utc(r.created_at))
    if r.funded_at:
        table.add_row("funded", f"{_utc(r.funded_at)} by {chain.name_of(r.financier)}")
        table.add_row("advance / discount", f"{r.advance:,} / {r.discount:,}")
    table.add_row("turnaround (create → funded)", _duration(r.turnaround_seconds))
    table.add_row("document", r.document_hash)
    console.print(table)


@_command(limit_app, "set")
def limit_set(
    debtor: str = typer.Argument(..., help="The core enterprise (role name or address)."),
    limit: int = typer.Option(..., "--limit", help="Total financed at once, minor units, 0..10**18 (0 disables)."),
    max_tenor_days: int = typer.Option(
        90, "--max-tenor-days", help="Longest time to the due date approved automatically, days."
    ),
    advance_bps: int = typer.Option(
        10_000, "--advance-bps", help="Share of face value advanced, basis points 1..10000."
    ),
    discount_bps: int = typer.Option(0, "--discount-bps", help="Yearly discount rate, basis points 0..10000."),
    sender: str = typer.Option("bank", "--as", help=AS_HELP),
    rpc: str | None = typer.Option(None, "--rpc", help=RPC_HELP),
) -> None:
    """The bank's admin sets a debtor's limit and terms (required before funding); applications
    within them are approved on chain."""
    from contracts import receivables as rv
    from federation.money import rate

    chain = _open(rpc)
    rv.set_limit(chain, debtor, limit, max_tenor_days, advance_bps, discount_bps, sender=sender)
    console.print(
        f"limit for {debtor}: {limit:,} (remaining {rv.remaining_limit(chain, debtor):,}), "
        f"≤ {max_tenor_days} d to due, advance {rate(advance_bps)}, discount {rate(discount_bps)}/yr"
    )


# ----- parties, grace period, node -------------------------------------------------------------


@_command(chain_app, "parties")
def parties(
    rpc: str | None = typer.Option(None, "--rpc", help=RPC_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Who holds which role now, read from the contracts' role events and confirmed on chain."""
    from contracts.roles import parties as list_parties

    chain = _open(rpc)
    found = list_parties(chain)
    if as_json:
        _print_json([p.as_dict() for p in found])
        return
    table = Table("account", "name", "roles", "--as", title=f"parties on {chain.endpoint}")
    for p in found:
        table.add_row(p.account, p.name or "-", ", ".join(p.roles), p.alias or "-")
    console.print(table)


@_command(party_app, "add")
def party_add(
    account: str = typer.Argument(..., help="The party's address (or a local account name)."),
    role: str = typer.Option(
        ..., "--role", help="debtor (core enterprise), supplier, financier, servicer or anchorer."
    ),
    name: str = typer.Option("", "--name", help="Readable name, 1..64 bytes (needed except for anchorer)."),
    sender: str = typer.Option("bank", "--as", help=AS_HELP),
    rpc: str | None = typer.Option(None, "--rpc", help=RPC_HELP),
) -> None:
    """The bank's admin onboards a party with a role (logged on chain: PartyOnboarded / RoleGranted)."""
    from contracts.roles import add_party

    chain = _open(rpc)
    add_party(chain, account, role, name, sender=sender)
    console.print(f"{account} ({chain.address(account)}) now holds the {role} role")


@_command(party_app, "revoke")
def party_revoke(
    account: str = typer.Argument(..., help="The party's address (or a local account name)."),
    role: str = typer.Option(..., "--role", help="debtor, supplier, financier, servicer or anchorer."),
    sender: str = typer.Option("bank", "--as", help=AS_HELP),
    rpc: str | None = typer.Option(None, "--rpc", help=RPC_HELP),
) -> None:
    """The bank's admin revokes a role (RoleRevoked on chain); the party's past records stay."""
    from contracts.roles import revoke_party

    chain = _open(rpc)
    revoke_party(chain, account, role, sender=sender)
    console.print(f"{account} ({chain.address(account)}) no longer holds the {role} role")


@_command(chain_app, "grace-period")
def grace_period(
    days: float | None = typer.Option(
        None, "--days", help="Set it (the bank's admin): days after the due date, 0..365."
    ),
    sender: str = typer.Option("bank", "--as", help=AS_HELP),
    rpc: str | None = typer.Option(None, "--rpc", help=RPC_HELP),
) -> None:
    """Show (or set) how long after the due date a default may first be declared."""
    from contracts import receivables as rv

    chain = _open(rpc)
    if days is not None:
        rv.set_grace_period(chain, int(_finite(days, "--days", 0, 365) * 86400), sender=sender)
    seconds = rv.grace_period(chain)
    console.print(f"grace period before a default: {_duration(seconds)} after the due date")


@_command(chain_app, "node")
def node(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (loopback by default)."),
    port: int = typer.Option(8545, "--port", min=0, max=65535, help="TCP port (0: any free port, printed)."),
    url_file: Path | None = typer.Option(None, "--url-file", help="Write the URL here once listening (scripts)."),
    allow_time_travel: bool = typer.Option(
        False, "--allow-time-travel", help="Accept evm_setNextBlockTimestamp/evm_mine (development chains only)."
    ),
) -> None:
    """Serve the embedded chain as a standard Ethereum JSON-RPC endpoint over HTTP (until Ctrl-C).

    Auditors point `yinqi audit verify --rpc URL` at it; web3.py's HTTPProvider, or any yinqi
    command with --rpc URL, reads and sends signed transactions through it. It never signs
    for anyone and never rewrites history.
    """
    from contracts.client import open_chain
    from contracts.errors import ChainError
    from contracts.node import ChainNode
    from contracts.proofs import write_atomically

    chain = open_chain(persist=True)  # deploys on first use, so the registry exists to publish
    if chain.tester is None:
        raise ChainError("chain node: serves the embedded chain; unset YINQI_CHAIN_RPC / [chain] rpc")
    try:
        server = ChainNode(chain.tester, host, port, allow_time_travel=allow_time_travel)
    except OSError as exc:
        raise ChainError(f"chain node: cannot listen on {host}:{port} ({exc.strerror})") from None
    stop = threading.Event()

    def _stop(*_: Any) -> None:
        if not stop.is_set():
            stop.set()
            threading.Thread(target=server.server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    if url_file is not None:
        write_atomically(url_file, server.url + "\n")
    console.print(
        f"serving the embedded chain (chain id {chain.chain_id}) at [bold]{server.url}[/]\n"
        f"  AnchorRegistry {chain.registry.address}, anchorer {chain.account('bank').address}\n"
        f"  ReceivableFinancing {chain.financing.address}",
        highlight=False,
    )
    if host not in ("127.0.0.1", "localhost", "::1"):
        console.print("[yellow]listening beyond loopback: put TLS (a reverse proxy) in front for other hosts[/]")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server.server_close()
        if url_file is not None:
            url_file.unlink(missing_ok=True)
    console.print("chain node stopped")


# ----- anchor ---------------------------------------------------------------------------------


@_command(anchor_app, "add")
def anchor_add(
    files: list[Path] | None = typer.Argument(None, help="Files to anchor (their keccak256)."),
    hash_hex: str | None = typer.Option(None, "--hash", help="Anchor a keccak256 given as hex instead of files."),
    kind: str = typer.Option(
        "document", "--kind", help="What the records are (≤ 31 bytes), e.g. document, alert, model."
    ),
    ref: str | None = typer.Option(None, "--ref", help="Reference of the record (default: the file name)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Queue records for anchoring (stored durably; `yinqi anchor flush` anchors them)."""
    from contracts.errors import ChainError
    from contracts.outbox import AnchorOutbox

    outbox = AnchorOutbox()
    added = []
    if hash_hex is not None:
        if files:
            raise ChainError("anchor add: give files or --hash, not both")
        try:
            raw = bytes.fromhex(hash_hex.removeprefix("0x"))
        except ValueError:
            raw = b""
        if len(raw) != 32:
            raise ChainError(f"--hash {hash_hex!r}: expected 32 bytes of hex (a keccak256)")
        added.append({"ref": ref or hash_hex, "leaf": outbox.enqueue_hash(raw, kind, ref or hash_hex)})
    else:
        if not files:
            raise ChainError("anchor add: give at least one FILE or --hash HEX")
        for path in files:
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise ChainError(f"{path}: cannot read ({exc.strerror})") from None
            r = ref if ref and len(files) == 1 else path.name
            added.append({"ref": r, "leaf": outbox.enqueue(data, kind, r)})
    if as_json:
        _print_json(added)
    else:
        for a in added:
            console.print(f"queued {kind} {a['ref']}: leaf {a['leaf']}")
        console.print(f"{outbox.pending()} record(s) waiting; run `yinqi anchor flush`")


@_command(anchor_app, "flush")
def anchor_flush(
    rpc: str | None = typer.Option(None, "--rpc", help=RPC_HELP),
    proof_dir: Path | None = typer.Option(
        None, "--proof-dir", help="Where proof files go (default: <data dir>/proofs)."
    ),
    attempts: int = typer.Option(
        1, "--attempts", min=1, max=100, help="Tries while the node is unreachable (growing delays)."
    ),
    wait: float = typer.Option(120.0, "--wait", help="Seconds to wait for another flush of the same store to finish."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Anchor all queued records (one transaction per batch) and write their proof files.

    Flushes of one store take turns (the bank's periodic flusher included): the count printed
    is what this run anchored itself.
    """
    from contracts.client import open_chain
    from contracts.outbox import AnchorOutbox

    wait = _finite(wait, "--wait", 0, 3600)
    outbox = AnchorOutbox()
    with console.status(f"anchoring {outbox.pending()} record(s)…"):
        paths = outbox.flush(chain=open_chain(rpc) if rpc else None, proof_dir=proof_dir, attempts=attempts, wait=wait)
    if as_json:
        _print_json([str(p) for p in paths])
        return
    console.print(f"anchored {len(paths)} record(s)" + ("; proofs:" if paths else ""))
    for p in paths:
        console.print(f"  {p}")


@_command(anchor_app, "proof")
def anchor_proof(
    kind: str = typer.Argument(..., help="What the record is (document, alert, model, …)."),
    ref: str = typer.Argument(..., help="The record's reference (e.g. the file name, the alert id)."),
    out: Path | None = typer.Option(None, "--out", help="Write the proof file here (default: print it)."),
) -> None:
    """The proof of an anchored record, to hand to an auditor."""
    from contracts.errors import ChainError
    from contracts.outbox import AnchorOutbox
    from contracts.proofs import write_atomically

    proof = AnchorOutbox().proof_for(kind, ref)
    if proof is None:
        raise ChainError(f"anchor proof: no anchored record {kind} {ref!r}; queued ones need `yinqi anchor flush`")
    text = json.dumps(proof, indent=2) + "\n"
    if out is None:
        print(text, end="")
        return
    write_atomically(out, text)
    console.print(f"wrote the proof of {kind} {ref} to {out}")


@_command(anchor_app, "trust")
def anchor_trust(
    rpc: str | None = typer.Option(None, "--rpc", help=RPC_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """What the bank publishes for auditors: its AnchorRegistry, anchoring account(s), chain id."""
    from contracts.roles import parties as list_parties

    chain = _open(rpc)
    anchorers = [p.account for p in list_parties(chain) if "anchorer" in p.roles]
    info = {"registry": chain.registry.address, "anchorers": anchorers, "chain_id": chain.chain_id}
    if as_json:
        _print_json(info)
        return
    print("# what an auditor trusts (yinqi.toml, or --registry/--anchorer on `yinqi audit verify`)")
    print("[audit]")
    print(f'registry = "{chain.registry.address}"')
    print("anchorers = [" + ", ".join(f'"{a}"' for a in anchorers) + "]")
    print(f"# chain id {chain.chain_id}; give the auditor the JSON-RPC URL of `yinqi chain node`")


# ----- audit ----------------------------------------------------------------------------------


def _bank_deployment_here() -> bool:
    """True on the bank's own machine (its deployment record exists); checked without creating anything."""
    from federation.config import DEFAULT_DATA_DIR, setting

    return (Path(setting("data_dir", DEFAULT_DATA_DIR)).expanduser() / "chain" / "deployments.json").is_file()


def audit_verify(
    proof: Path = typer.Argument(..., help="A proof file (from `yinqi anchor flush` / `yinqi anchor proof`)."),
    document: Path | None = typer.Option(
        None, "--document", "--data", help="The original record: its keccak256 must match the proof."
    ),
    rpc: str | None = typer.Option(
        None, "--rpc", help="JSON-RPC URL of the chain (default: YINQI_AUDIT_RPC, [audit] rpc, YINQI_CHAIN_RPC)."
    ),
    registry: str | None = typer.Option(
        None, "--registry", help="The bank's AnchorRegistry address you trust (or [audit] registry)."
    ),
    anchorer: list[str] | None = typer.Option(
        None, "--anchorer", help="The bank's anchoring account you trust; repeat for several (or [audit] anchorer)."
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Check a proof against the anchoring contract and account you trust: what was proven, when,
    by whom and in which transaction. Needs only the proof, the document and an RPC URL; writes nothing."""
    from contracts.audit import verify_proof
    from contracts.errors import ChainError
    from contracts.trust import NO_TRUST, trusted_anchor

    raw = None
    if document is not None:
        try:
            raw = document.read_bytes()
        except OSError as exc:
            raise ChainError(f"{document}: cannot read the document ({exc.strerror})") from None
    if trusted_anchor(registry, anchorer) is None and not _bank_deployment_here():
        raise ChainError(NO_TRUST)
    v = verify_proof(proof, rpc, data=raw, registry=registry, anchorers=anchorer)
    if as_json:
        _print_json({"valid": True, **v.as_dict()})
        return
    table = Table("field", "value", title="[green]proof verified on chain[/]")
    table.add_row("record", f"{v.kind} {v.ref}" + (f" (matches {document})" if document else ""))
    table.add_row("data hash", v.data_hash)
    table.add_row("anchored at", v.block_time.strftime("%Y-%m-%d %H:%M:%S UTC"))
    table.add_row("transaction", v.tx_hash)
    table.add_row("block", str(v.block))
    table.add_row("root", f"{v.root} ({v.leaf_count} records)")
    table.add_row("contract", f"{v.contract} (chain id {v.chain_id})")
    table.add_row("anchored by", v.anchorer)
    table.add_row("trusted", f"registry and anchorer from {v.trusted_by}")
    console.print(table)


def register(root: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    root.add_typer(chain_app, name="chain")
    root.add_typer(anchor_app, name="anchor")
    groups["audit"].command("verify")(audit_verify)
