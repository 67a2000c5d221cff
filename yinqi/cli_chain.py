"""`yinqi chain`, `yinqi anchor` and `yinqi audit verify`: receivables financing, anchoring and
the auditor's check from the shell. web3 is imported inside the commands to keep --help fast."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

console = Console()

RPC_HELP = "Ethereum JSON-RPC URL (default: YINQI_CHAIN_RPC, else the embedded EVM in the data dir)."
AS_HELP = "Account to sign with: a role name (bank, debtor, supplier, supplier2, supplier3, auditor) or its address."
JSON_HELP = "Print the result as JSON."

chain_app = typer.Typer(help="On-chain receivables financing: deploy, lifecycle, limits, events.", no_args_is_help=True)
receivable_app = typer.Typer(
    help="A receivable's lifecycle: create → apply → approve → fund → repay | default.", no_args_is_help=True
)
limit_app = typer.Typer(help="Per-debtor financing limits and terms for automatic approval.", no_args_is_help=True)
anchor_app = typer.Typer(
    help="Anchor records (documents, alerts, models) as Merkle roots on chain.", no_args_is_help=True
)
chain_app.add_typer(receivable_app, name="receivable")
chain_app.add_typer(limit_app, name="limit")


def _open(rpc: str | None):  # type: ignore[no-untyped-def]
    from contracts.client import open_chain

    return open_chain(rpc)


def _utc(ts: int) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


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


@chain_app.command("deploy")
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


@chain_app.command("advance-time")
def advance_time(
    days: float = typer.Option(..., "--days", help="How far to move the chain clock forward."),
    rpc: str | None = typer.Option(None, "--rpc", help=RPC_HELP),
) -> None:
    """Move a development chain's clock forward (embedded EVM, Hardhat): e.g. past a due date."""
    chain = _open(rpc)
    target = chain.now() + int(days * 86400)
    chain.time_travel(target)
    console.print(f"chain time is now {_utc(chain.now())}")


@chain_app.command("watch")
def watch(
    from_block: int = typer.Option(0, "--from-block", help="First block to show."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep streaming new events until Ctrl-C."),
    interval: float = typer.Option(1.0, "--interval", help="Seconds between polls with --follow."),
    rpc: str | None = typer.Option(None, "--rpc", help=RPC_HELP),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per event (JSON lines)."),
) -> None:
    """Stream the contracts' events (transfers, splits, financing, anchors) as they happen."""
    from contracts import receivables as rv

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


@chain_app.command("turnaround")
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


@receivable_app.command("create")
def create(
    to: str = typer.Option(..., "--to", help="The creditor (supplier) owed the money: role name or address."),
    amount: int = typer.Option(..., "--amount", min=1, help="Face value in integer minor units (fen/cents)."),
    due: str | None = typer.Option(None, "--due", help="Due date YYYY-MM-DD (end of that day, UTC)."),
    due_days: int | None = typer.Option(None, "--due-days", help="Due this many days after now (chain time)."),
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
        due_ts = chain.now() + int(due_days) * 86400  # type: ignore[arg-type]
    rid = rv.create(chain, to, amount, due_ts, _doc_hash(doc, doc_hash), sender=sender)
    if as_json:
        _print_json(rv.get(chain, rid).as_dict())
    else:
        console.print(f"receivable [bold]{rid}[/] created: {amount:,} owed by {sender} to {to}, due {_utc(due_ts)}")


@receivable_app.command("transfer")
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


@receivable_app.command("split")
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


@receivable_app.command("apply")
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


@receivable_app.command("approve")
def approve(
    rid: int = typer.Argument(..., help="Receivable id."),
    sender: str = typer.Option("bank", "--as", help=AS_HELP),
    rpc: str | None = typer.Option(None, "--rpc", help=RPC_HELP),
) -> None:
    """The bank approves a pending application."""
    from contracts import receivables as rv

    rv.approve(_open(rpc), rid, sender=sender)
    console.print(f"receivable {rid}: approved by the bank")


@receivable_app.command("reject")
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


@receivable_app.command("fund")
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


@receivable_app.command("repay")
def repay(
    rid: int = typer.Argument(..., help="Receivable id."),
    sender: str = typer.Option("debtor", "--as", help=AS_HELP),
    rpc: str | None = typer.Option(None, "--rpc", help=RPC_HELP),
) -> None:
    """The debtor pays the face value (to the financier when financed)."""
    from contracts import receivables as rv

    chain = _open(rpc)
    payee = rv.repay(chain, rid, sender=sender)
    console.print(f"receivable {rid} repaid to {chain.name_of(payee)}")


@receivable_app.command("default")
def default(
    rid: int = typer.Argument(..., help="Receivable id."),
    sender: str = typer.Option("bank", "--as", help=AS_HELP),
    rpc: str | None = typer.Option(None, "--rpc", help=RPC_HELP),
) -> None:
    """Mark an unpaid receivable defaulted (anyone may, after its due date)."""
    from contracts import receivables as rv

    rv.mark_defaulted(_open(rpc), rid, sender=sender)
    console.print(f"receivable {rid} marked defaulted")


@receivable_app.command("show")
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


@limit_app.command("set")
def limit_set(
    debtor: str = typer.Argument(..., help="The core enterprise (role name or address)."),
    limit: int = typer.Option(..., "--limit", min=0, help="Total financed at once, minor units (0 disables)."),
    max_tenor_days: int = typer.Option(
        90, "--max-tenor-days", help="Longest time to the due date approved automatically."
    ),
    advance_bps: int = typer.Option(10_000, "--advance-bps", help="Share of face value advanced, basis points."),
    discount_bps: int = typer.Option(0, "--discount-bps", help="Yearly discount rate, basis points."),
    sender: str = typer.Option("bank", "--as", help=AS_HELP),
    rpc: str | None = typer.Option(None, "--rpc", help=RPC_HELP),
) -> None:
    """The bank sets a debtor's limit and terms; applications within them are approved on chain."""
    from contracts import receivables as rv

    chain = _open(rpc)
    rv.set_limit(chain, debtor, limit, max_tenor_days, advance_bps, discount_bps, sender=sender)
    console.print(
        f"limit for {debtor}: {limit:,} (remaining {rv.remaining_limit(chain, debtor):,}), "
        f"≤ {max_tenor_days} d to due, advance {advance_bps / 100:.2f} %, discount {discount_bps / 100:.2f} %/yr"
    )


# ----- anchor ---------------------------------------------------------------------------------


@anchor_app.command("add")
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


@anchor_app.command("flush")
def anchor_flush(
    rpc: str | None = typer.Option(None, "--rpc", help=RPC_HELP),
    proof_dir: Path | None = typer.Option(
        None, "--proof-dir", help="Where proof files go (default: <data dir>/proofs)."
    ),
    attempts: int = typer.Option(1, "--attempts", min=1, help="Tries while the node is unreachable (growing delays)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Anchor all queued records (one transaction per batch) and write their proof files."""
    from contracts.client import open_chain
    from contracts.outbox import AnchorOutbox

    outbox = AnchorOutbox()
    with console.status(f"anchoring {outbox.pending()} record(s)…"):
        paths = outbox.flush(chain=open_chain(rpc) if rpc else None, proof_dir=proof_dir, attempts=attempts)
    if as_json:
        _print_json([str(p) for p in paths])
        return
    console.print(f"anchored {len(paths)} record(s); proofs:")
    for p in paths:
        console.print(f"  {p}")


# ----- audit ----------------------------------------------------------------------------------


def audit_verify(
    proof: Path = typer.Argument(..., help="A proof file written by `yinqi anchor flush`."),
    rpc: str | None = typer.Option(None, "--rpc", help=RPC_HELP),
    data: Path | None = typer.Option(None, "--data", help="The original record: its keccak256 must match the proof."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Check a proof against the chain alone: what was proven, when and by which transaction."""
    from contracts.audit import verify_proof
    from contracts.errors import ChainError

    raw = None
    if data is not None:
        try:
            raw = data.read_bytes()
        except OSError as exc:
            raise ChainError(f"{data}: cannot read ({exc.strerror})") from None
    v = verify_proof(proof, rpc, data=raw)
    if as_json:
        _print_json({"valid": True, **v.as_dict()})
        return
    table = Table("field", "value", title="[green]proof verified on chain[/]")
    table.add_row("record", f"{v.kind} {v.ref}" + (f" (matches {data})" if data else ""))
    table.add_row("data hash", v.data_hash)
    table.add_row("anchored at", v.block_time.strftime("%Y-%m-%d %H:%M:%S UTC"))
    table.add_row("transaction", v.tx_hash)
    table.add_row("block", str(v.block))
    table.add_row("root", f"{v.root} ({v.leaf_count} records)")
    table.add_row("contract", f"{v.contract} (chain id {v.chain_id})")
    table.add_row("anchored by", v.anchorer)
    console.print(table)


def register(root: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    root.add_typer(chain_app, name="chain")
    root.add_typer(anchor_app, name="anchor")
    groups["audit"].command("verify")(audit_verify)
