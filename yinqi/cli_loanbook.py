"""`yinqi bank review|clock|metrics|applications|monitor`: the loan book from the shell.

Like the other bank commands, each runs on the bank's database or, with `--bank HOST:PORT`
and this caller's certificate, against a running bank (`LoanBookService`). Output is read back
from the bank; `--json` prints exactly what the bank answered (money in integer fen).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console

from federation.money import yuan
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
from yinqi.tables import print_wide, readable_table

clock_app = typer.Typer(
    help="The bank's business date: show it, advance it (running each day's end) or set it.", no_args_is_help=True
)
TIER_COLUMNS = (
    ("normal", "正常\nnormal"),
    ("special_mention", "关注\nspecial mention"),
    ("substandard", "次级\nsubstandard"),
    ("doubtful", "可疑\ndoubtful"),
    ("loss", "损失\nloss"),
)


def _pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value * 100:.{digits}f} %"


def _money(value: int | None) -> str:
    return "-" if value is None else yuan(value)


# ----- review -------------------------------------------------------------------------------
def review(
    month: Annotated[str, typer.Option("--month", help="The month of data to review, YYYY-MM (e.g. 2026-03).")],
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
    """Re-score every open line on its platform's features for MONTH and raise, cut or keep each
    limit within the review rules; every change is stored with its reason codes. A large book is
    shared over the bank's cores (YINQI_REVIEW_WORKERS or [bank] review_workers: a number of
    processes, or auto, the default)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    client = bank_from_options(db, models_dir, bank, ca, cert, key, insecure)
    try:
        if bank:
            with console.status(f"reviewing {month} at {bank}…"):
                result = client.review(month, model)
        else:
            with Progress(
                TextColumn(f"review {month}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=True,
                disable=as_json,
                auto_refresh=False,  # no drawing thread: a one-thread process forks its workers
            ) as bar:
                task = bar.add_task("lines", total=None)
                result = client.review(
                    month,
                    model,
                    progress=lambda done, total: bar.update(task, completed=done, total=total, refresh=True),
                )
    finally:
        client.close()
    if as_json:
        print_json(result)
        return
    print_review(result)


def print_review(result: dict[str, Any], out: Console = console) -> None:
    """A review's summary, its first limit changes with their reasons, and its drift alerts."""
    rate = f"{result['reviewed'] / result['seconds']:,.0f} lines/s" if result["seconds"] > 0 else "-"
    skipped = ", ".join(f"{k} {v}" for k, v in result["skipped"].items()) or "0"
    summary = readable_table(
        f"review of {result['month']} on {result['on']} with {result['model_version']}", ("lines", "")
    )
    for label, value in (
        ("open", result["lines"]),
        ("reviewed", result["reviewed"]),
        ("raised / cut / kept", f"{result['raised']} / {result['cut']} / {result['kept']}"),
        ("draws frozen / hold lifted", f"{result['frozen']} / {result['unfrozen']}"),
        ("reviewed before", result["already"]),
        ("skipped", skipped),
        ("time", f"{result['seconds']:.2f} s ({rate}, {result.get('workers') or 1} process(es))"),
    ):
        summary.add_row(label, str(value))
    out.print(summary)
    if result["examples"]:
        changes = readable_table("limit changes (the first ones) and why", ("line", "reasons / 原因"))
        for e in result["examples"]:
            changes.add_row(
                f"{e['merchant_id']} ({e['account_id']})\n{e['action']} {yuan(e['old_limit_fen'])} → "
                f"{yuan(e['new_limit_fen'])} yuan\nband {e['band']}, PD {e['default_probability']:.3f}",
                "\n".join(f"{r['text_en']}\n  {r['text_zh']}" for r in e["reasons"]),
            )
        out.print(changes)
    print_alerts(result["alerts"], out=out)


# ----- clock --------------------------------------------------------------------------------
def _print_clock(info: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(info)
        return
    source = "the bank's clock" if info["source"] == "bank" else "the wall clock (UTC; not set yet)"
    console.print(f"business date {info['today']} ({source})")
    if info["moved_from"]:
        closed = ", ".join(info["months_closed"]) or "none"
        console.print(
            f"moved from {info['moved_from']}: interest posted {yuan(info['interest_fen'])} yuan, "
            f"{info['tier_changes']} tier change(s), months closed: {closed}"
        )


@clock_app.command("show")
def clock_show(
    db: Db = None,
    models_dir: ModelsDir = None,
    bank: Bank = None,
    ca: Ca = None,
    cert: Cert = None,
    key: Key = None,
    insecure: Insecure = False,
    as_json: AsJson = False,
) -> None:
    """Print the bank's business date."""
    client = bank_from_options(db, models_dir, bank, ca, cert, key, insecure)
    try:
        _print_clock(client.clock(), as_json)
    finally:
        client.close()


@clock_app.command("advance")
def clock_advance(
    days: Annotated[int, typer.Option("--days", help="Days to move the business date forward.", min=1)],
    db: Db = None,
    models_dir: ModelsDir = None,
    bank: Bank = None,
    ca: Ca = None,
    cert: Cert = None,
    key: Key = None,
    insecure: Insecure = False,
    as_json: AsJson = False,
) -> None:
    """Move the business date forward, running each passed day's end: interest, days past due
    and tiers of every draw, month-end snapshots (operator only)."""
    client = bank_from_options(db, models_dir, bank, ca, cert, key, insecure)
    try:
        _print_clock(client.advance_clock(days), as_json)
    finally:
        client.close()


@clock_app.command("set")
def clock_set(
    day: Annotated[str, typer.Argument(help="The new business date, YYYY-MM-DD.")],
    db: Db = None,
    models_dir: ModelsDir = None,
    bank: Bank = None,
    ca: Ca = None,
    cert: Cert = None,
    key: Key = None,
    insecure: Insecure = False,
    as_json: AsJson = False,
) -> None:
    """Set the business date: a later one runs each passed day's end; an earlier one only back to
    the last recorded activity (operator only)."""
    client = bank_from_options(db, models_dir, bank, ca, cert, key, insecure)
    try:
        _print_clock(client.set_clock(day), as_json)
    finally:
        client.close()


# ----- metrics ------------------------------------------------------------------------------
def _alert_text(a: dict[str, Any]) -> str:
    detail = json.loads(a["detail_json"]) if a.get("detail_json") else {}
    value = "-" if a["value"] is None else f"{a['value']:.3f}"
    if a["metric"].startswith("calibration"):
        return (
            f"{a['model_version']} {a['metric']}: z = {value}, predicted PD {detail.get('predicted_pd', 0):.3f} vs "
            f"observed {detail.get('observed_rate', 0):.3f} over {a['population']} outcomes"
        )
    return f"{a['model_version']} {a['metric']}: PSI {value} > {detail.get('threshold', 0.25)} over {a['population']} merchants"


def print_alerts(alerts: list[dict[str, Any]], title: str = "model monitoring alerts", out: Console = console) -> None:
    if not alerts:
        return
    table = readable_table(title, ("month", "alert"))
    for a in alerts:
        table.add_row(a["month"], _alert_text(a))
    out.print(table)


def metrics(
    month: Annotated[
        str | None, typer.Option("--month", help="The last month shown, YYYY-MM (default: the business date's).")
    ] = None,
    months: Annotated[int, typer.Option("--months", help="Months of trend, ending with --month.", min=1, max=120)] = 12,
    db: Db = None,
    models_dir: ModelsDir = None,
    bank: Bank = None,
    ca: Ca = None,
    cert: Cert = None,
    key: Key = None,
    insecure: Insecure = False,
    as_json: AsJson = False,
) -> None:
    """Operating metrics by month: applications (申请量), approval rate (通过率), NPL ratio (不良率)
    first; then limits, utilisation, balances by tier, reviews, draws and drift alerts."""
    client = bank_from_options(db, models_dir, bank, ca, cert, key, insecure)
    try:
        result = client.metrics(month, months)
    finally:
        client.close()
    if as_json:
        print_json(result)
        return
    print_metrics(result)


def print_metrics(result: dict[str, Any], out: Console = console) -> None:
    """The month-by-month tables: the three numbers first, balances by tier, flows, alerts."""
    rows = result["months"]
    source = "bank clock" if result["clock"] == "bank" else "wall clock"
    print_wide(
        out,
        f"loan book by month (business date {result['today']}, {source})",
        ("month", "申请量\napplied", "通过率\napproved", "不良率\nNPL", "avg limit\n(yuan)", "utilised", "alerts"),
        [
            [
                m["month"],
                str(m["applications"]),
                _pct(m["approval_rate"]),
                _pct(m["npl_ratio"], 2),
                _money(m["average_approved_limit_fen"]),
                _pct(m["utilisation"]),
                str(len(m["alerts"])),
            ]
            for m in rows
        ],
    )
    print_wide(
        out,
        "balances by tier at month end (yuan; the current month: today)",
        ("month", *[h for _, h in TIER_COLUMNS]),
        [
            [
                m["month"],
                *[_money(m["balances_by_tier_fen"][t]) if m["balances_by_tier_fen"] else "-" for t, _ in TIER_COLUMNS],
            ]
            for m in rows
        ],
    )
    print_wide(
        out,
        "flows by month",
        (
            "month",
            "approved / declined\n/ referred",
            "reviews: raised\n/ cut / kept",
            "new draws:\nn, yuan",
            "repaid\n(yuan)",
        ),
        [
            [
                m["month"],
                f"{m['approved']} / {m['declined']} / {m['referred']}",
                f"{m['reviews_raised']} / {m['reviews_cut']} / {m['reviews_kept']}",
                f"{m['new_draws']}: {yuan(m['new_draws_fen'])}",
                yuan(m["repaid_fen"]),
            ]
            for m in rows
        ],
    )
    print_alerts([a for m in rows for a in m["alerts"]], out=out)


# ----- applications and monitoring ------------------------------------------------------------
def applications(
    month: Annotated[str | None, typer.Option("--month", help="Only this month's, YYYY-MM.")] = None,
    merchant: Annotated[str | None, typer.Option("--merchant", help="Only this merchant's.")] = None,
    outcome: Annotated[str | None, typer.Option("--outcome", help="Only approved, declined or referred ones.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="Newest applications to show.", min=1, max=2_000)] = 20,
    reasons: Annotated[bool, typer.Option("--reasons", help="Print every reason in both languages.")] = False,
    db: Db = None,
    models_dir: ModelsDir = None,
    bank: Bank = None,
    ca: Ca = None,
    cert: Cert = None,
    key: Key = None,
    insecure: Insecure = False,
    as_json: AsJson = False,
) -> None:
    """Applications (every score request for a merchant) with outcome, limit and reason codes."""
    client = bank_from_options(db, models_dir, bank, ca, cert, key, insecure)
    try:
        found = client.applications(month, merchant, outcome, limit)
    finally:
        client.close()
    if as_json:
        print_json(found)
        return
    table = readable_table(
        "applications (newest first)",
        ("#", "month", "merchant", "outcome", "band / PD", "limit (yuan)", "first reason"),
    )
    for a in found:
        first = a["reasons"][0]["text_en"] if a["reasons"] else "-"
        table.add_row(
            str(a["id"]),
            a["month"],
            a["merchant_id"],
            a["outcome"],
            f"{a['band']} / {a['default_probability']:.3f}",
            yuan(a["limit_fen"]),
            first,
        )
    console.print(table)
    if reasons:
        for a in found:
            print_reasons(a["reasons"], f"application #{a['id']} ({a['merchant_id']}, {a['outcome']})")


def monitor(
    month: Annotated[str | None, typer.Option("--month", help="YYYY-MM (default: the business date's month).")] = None,
    model: Model = None,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Recompute and store (else: what reviews stored).")
    ] = False,
    db: Db = None,
    models_dir: ModelsDir = None,
    bank: Bank = None,
    ca: Ca = None,
    cert: Cert = None,
    key: Key = None,
    insecure: Insecure = False,
    as_json: AsJson = False,
) -> None:
    """Model monitoring: PSI of the score and every feature (training population vs the month's
    scored merchants) and calibration by band, with alerts."""
    client = bank_from_options(db, models_dir, bank, ca, cert, key, insecure)
    try:
        rows = client.monitor(month, model, refresh)
    finally:
        client.close()
    if as_json:
        print_json(rows)
        return
    table = readable_table("model monitoring", ("version", "month", "metric", "value", "merchants", "level"))
    for r in rows:
        value = "-" if r["value"] is None else f"{r['value']:.4f}"
        table.add_row(r["model_version"], r["month"], r["metric"], value, str(r["population"]), r["level"])
    console.print(table)
    print_alerts([r for r in rows if r["alert"]])


def register(root: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    bank = groups["bank"]
    bank.command("review")(review)
    bank.add_typer(clock_app, name="clock")
    bank.command("metrics")(metrics)
    bank.command("applications")(applications)
    bank.command("monitor")(monitor)
