"""Demo part `chain`: deploy, a receivable split, financed within the limit and repaid, records
anchored in one transaction, and one proof verified as an auditor would (chain only)."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table


def run(workdir: Path, console: Console) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "data"
    shutil.rmtree(data / "chain", ignore_errors=True)  # a fresh embedded chain each demo run
    shutil.rmtree(workdir / "proofs", ignore_errors=True)
    for stale in data.glob("anchors.db*"):
        stale.unlink()
    saved = {k: os.environ.get(k) for k in ("YINQI_DATA_DIR", "YINQI_CHAIN_RPC", "YINQI_CHAIN_PERSIST")}
    os.environ["YINQI_DATA_DIR"] = str(data)
    os.environ.pop("YINQI_CHAIN_RPC", None)
    os.environ.pop("YINQI_CHAIN_PERSIST", None)
    try:
        _run(workdir, data, console)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _run(workdir: Path, data: Path, console: Console) -> None:
    from eth_utils import keccak

    from contracts import receivables as rv
    from contracts.audit import verify_proof
    from contracts.client import open_chain
    from contracts.errors import ChainError
    from contracts.outbox import AnchorOutbox

    shown: list[tuple[str, str]] = []
    started = time.perf_counter()
    chain = open_chain()
    shown.append(
        (
            "contracts deployed",
            f"ReceivableFinancing {chain.financing.address[:10]}…, "
            f"AnchorRegistry {chain.registry.address[:10]}… (embedded EVM)",
        )
    )

    rv.set_limit(chain, "debtor", 2_000_000_00, max_tenor_days=90, advance_bps=9_500, discount_bps_per_year=450)
    invoice = workdir / "invoice-2026-001.txt"
    invoice.write_text("Invoice 2026-001\ndebtor: core enterprise\ncreditor: supplier\namount: 1,200,000.00 CNY\n")
    rid = rv.create(chain, "supplier", 1_200_000_00, chain.now() + 60 * 86400, keccak(invoice.read_bytes()))
    child = rv.split(chain, rid, "supplier2", 300_000_00, sender="supplier")
    shown.append(
        (
            "receivable recorded, then split (流转)",
            f"#{rid} 1,200,000.00 → #{rid} 900,000.00 (supplier) + #{child} 300,000.00 (supplier2)",
        )
    )

    auto = rv.apply(chain, child, sender="supplier2")
    advance, discount = rv.fund(chain, child)
    funded = rv.get(chain, child)
    shown.append(
        (
            "tier-2 supplier financed",
            f"approved {'automatically' if auto else 'by the bank'}; "
            f"advance {advance / 100:,.2f}, discount {discount / 100:,.2f}; "
            f"create → funded {funded.turnaround_seconds} s of chain time (7 days → 2 h in the case we started from)",
        )
    )
    try:
        rv.fund(chain, child)
        double = "NOT refused (bug)"
    except ChainError as exc:
        double = f"refused: {exc.error_name}"
    shown.append(("double financing", double))
    rv.repay(chain, child)
    rv.repay(chain, rid)
    shown.append(
        (
            "repaid",
            f"#{child} → bank (financier), #{rid} → supplier (holder); "
            f"states {rv.get(chain, child).state}/{rv.get(chain, rid).state}",
        )
    )

    outbox = AnchorOutbox(f"sqlite:///{data / 'anchors.db'}")
    outbox.enqueue(invoice.read_bytes(), "document", invoice.name)
    for i in (rid, child):
        record = json.dumps(rv.get(chain, i).as_dict(), sort_keys=True).encode()
        outbox.enqueue(record, "receivable", f"receivable-{i}")
    for i in range(1, 6):
        outbox.enqueue(f"device-{i} overheating alert".encode(), "alert", f"device-{i}/alert-1")
    paths = outbox.flush(chain, workdir / "proofs")
    shown.append(
        (
            "records anchored",
            f"{len(paths)} proofs from {len({json.loads(p.read_text())['tx_hash'] for p in paths})} "
            f"anchor transactions (one per kind)",
        )
    )

    proof_path = next(p for p in paths if json.loads(p.read_text())["kind"] == "document")
    verified = verify_proof(proof_path, data=invoice.read_bytes())
    shown.append(
        (
            "auditor verified",
            f"{verified.kind} {verified.ref}: root {verified.root[:12]}…, "
            f"block {verified.block} at {verified.block_time:%H:%M:%S} UTC, tx {verified.tx_hash[:12]}…",
        )
    )
    tampered = dict(json.loads(proof_path.read_text()), data_hash="0x" + keccak(b"altered invoice").hex())
    try:
        verify_proof(tampered)
        caught = "NOT detected (bug)"
    except ChainError as exc:
        caught = str(exc).split(":")[1].strip()
    shown.append(("tampered proof", f"rejected: {caught}"))

    table = Table("step", "what it showed", title=f"chain part ({time.perf_counter() - started:.1f} s)")
    for step, what in shown:
        table.add_row(step, what)
    console.print(table)
    console.print(f"[dim]explore: YINQI_DATA_DIR={data} yinqi chain watch; yinqi audit verify {proof_path}[/]")
