"""Demo part `chain`: deploy, parties and roles, a receivable split, financed within the limit
and repaid, records anchored in one transaction per kind, and one proof verified as an auditor
would (against the bank's published registry and anchorer). Every figure printed is read back
from the chain (events, contract state), not restated from the script."""

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
    for stale in data.glob("bank.db*"):  # the anchoring store: the bank's database in this part's data dir
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
    from contracts.roles import parties
    from federation.money import rate, yuan

    shown: list[tuple[str, str]] = []
    started = time.perf_counter()
    chain = open_chain()
    held = parties(chain)
    shown.append(
        (
            "contracts deployed",
            f"ReceivableFinancing {chain.financing.address[:10]}…, AnchorRegistry {chain.registry.address[:10]}… "
            f"(embedded EVM); {len(held)} parties on chain: "
            + ", ".join(f"{p.alias or p.account[:10]} ({'/'.join(p.roles)})" for p in held),
        )
    )

    rv.set_limit(chain, "debtor", 2_000_000_00, max_tenor_days=90, advance_bps=9_500, discount_bps_per_year=450)
    terms = chain.financing.functions.terms(chain.address("debtor")).call()
    invoice = workdir / "invoice-2026-001.txt"
    invoice.write_text("Invoice 2026-001\ndebtor: core enterprise\ncreditor: supplier\namount: 1,200,000.00 CNY\n")
    rid = rv.create(chain, "supplier", 1_200_000_00, chain.now() + 60 * 86400, keccak(invoice.read_bytes()))
    created = next(e["args"] for e in rv.events(chain) if e["event"] == "ReceivableCreated" and e["args"]["id"] == rid)
    child = rv.split(chain, rid, "supplier2", 300_000_00, sender="supplier")
    parent_now, child_now = rv.get(chain, rid), rv.get(chain, child)
    shown.append(
        (
            "receivable recorded, then split (流转)",
            f"#{rid} {yuan(created['amount'])} → #{rid} {yuan(parent_now.amount)} ({chain.name_of(parent_now.holder)}) "
            f"+ #{child} {yuan(child_now.amount)} ({chain.name_of(child_now.holder)})",
        )
    )

    auto = rv.apply(chain, child, sender="supplier2")
    advance, discount = rv.fund(chain, child)
    funded = rv.get(chain, child)
    seconds = funded.turnaround_seconds or 0
    seed_case = 7 * 86400  # the case we started from: 7 days from invoice to money (goal: 2 hours)
    comparison = (
        f"; the case we started from took 7 days (goal 2 h): {seed_case / seconds:,.0f}× faster" if seconds else ""
    )
    shown.append(
        (
            "tier-2 supplier financed",
            f"approved {'automatically' if auto else 'by the bank'} (limit {yuan(terms[0])}, advance "
            f"{rate(terms[3])}, discount {rate(terms[4])}/yr); advance {yuan(advance)}, discount "
            f"{yuan(discount)}; create → funded {seconds} s of chain time (measured){comparison}",
        )
    )
    try:
        rv.fund(chain, child)
        double = "NOT refused (bug)"
    except ChainError as exc:
        double = f"refused: {exc.error_name}"
    shown.append(("double financing", double))
    try:
        rv.mark_defaulted(chain, rid, sender="supplier")
        early = "NOT refused (bug)"
    except ChainError as exc:
        early = f"refused: {exc.error_name} (only the bank or its servicer, after a {rv.grace_period(chain) // 86400}-day grace period)"
    shown.append(("a supplier declaring a default", early))
    rv.repay(chain, child)
    rv.repay(chain, rid)
    repaid = {e["args"]["id"]: e["args"]["payee"] for e in rv.events(chain) if e["event"] == "Repaid"}
    shown.append(
        (
            "repaid",
            f"#{child} → {chain.name_of(repaid[child])}, #{rid} → {chain.name_of(repaid[rid])}; "
            f"states {rv.get(chain, child).state}/{rv.get(chain, rid).state}",
        )
    )

    outbox = AnchorOutbox()  # the bank's anchoring store
    outbox.enqueue(invoice.read_bytes(), "document", invoice.name)
    for i in (rid, child):
        record = json.dumps(rv.get(chain, i).as_dict(), sort_keys=True).encode()
        outbox.enqueue(record, "receivable", f"receivable-{i}")
    for i in range(1, 6):
        outbox.enqueue(f"device-{i} overheating alert".encode(), "alert", f"device-{i}/alert-1")
    paths = outbox.flush(chain, workdir / "proofs")
    anchored = chain.registry.events.Anchored().get_logs(from_block=0)
    shown.append(
        (
            "records anchored",
            f"{len(paths)} proofs; {len(anchored)} anchor transactions on chain holding "
            + ", ".join(f"{e['args']['leafCount']} {e['args']['kind'].rstrip(bytes(1)).decode()}" for e in anchored),
        )
    )

    trust = {"registry": chain.registry.address, "anchorers": [p.account for p in held if "anchorer" in p.roles]}
    proof_path = next(p for p in paths if json.loads(p.read_text())["kind"] == "document")
    verified = verify_proof(proof_path, chain=chain, data=invoice.read_bytes(), **trust)
    shown.append(
        (
            "auditor verified",
            f"{verified.kind} {verified.ref}: root {verified.root[:12]}…, block {verified.block} at "
            f"{verified.block_time:%H:%M:%S} UTC, anchored by {chain.name_of(verified.anchorer)}, tx {verified.tx_hash[:12]}…",
        )
    )
    tampered = dict(json.loads(proof_path.read_text()), data_hash="0x" + keccak(b"altered invoice").hex())
    try:
        verify_proof(tampered, chain=chain, **trust)
        caught = "NOT detected (bug)"
    except ChainError as exc:
        caught = str(exc).split(": ")[1].strip()
    shown.append(("tampered proof", f"rejected: {caught}"))

    table = Table("step", "what the chain says", title=f"chain part ({time.perf_counter() - started:.1f} s)")
    for step, what in shown:
        table.add_row(step, what)
    console.print(table)
    console.print(
        f"[dim]explore: YINQI_DATA_DIR={data} yinqi chain watch; yinqi audit verify {proof_path} "
        f"--registry {trust['registry']} --anchorer {trust['anchorers'][0]}[/]"
    )
