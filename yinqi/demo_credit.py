"""Demo part `credit`: a year of the bank's loan book, every step over mutual TLS.

Three platforms train a credit model federatedly on last year's merchants (SecAgg+, Simulation
Engine); the bank registers and promotes it and serves its services with its own CA. Then a
year of months on the bank's clock (`federation.synth.generate_book_year`: merchants whose
business grows, shrinks or defaults, and a downturn in July): on each month's first day the
platforms report consent and the last month's features with their certificates, the operator
reviews every line on them and opens lines for the month's applicants, and merchants draw, due
on the 14th of the next month; on the 14th they repay what is due — all but the defaulting
ones, whose draws pass through the tiers. The end: the month-by-month metrics read back from
the bank, the reasons behind a decline and behind limit changes, the drift alerts.
"""

from __future__ import annotations

import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

MERCHANTS = 200
PLATFORMS = ("platform_1", "platform_2", "platform_3")
ROUNDS = 3
DRAW_SHARE = 0.6  # of the available limit, drawn on each month's first day
DUE_DAY = 14  # draws fall due on this day of the next month
FIRST_DAY = date(2026, 1, 1)


def _next_month(day: date) -> date:
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def run(workdir: Path, console: Console) -> None:
    from clients.consent import ConsentBook
    from clients.consent_report import report_consent
    from clients.reporting import report_features
    from federation.synth import generate_book_year
    from proto.channel import ClientTls, connect
    from server.client import LocalBank, Remote, RemoteBank
    from server.fl.config import FederationConfig
    from server.grpc_app import build_server
    from server.security.ca import CertificateAuthority
    from yinqi.cli_loanbook import print_metrics, print_review
    from yinqi.harness.federated import run_federation

    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    # 1. A model: three platforms train federatedly; the run report carries the aggregates
    #    (feature sketches, score histogram) the bank monitors drift against.
    with console.status("credit: three platforms train the credit model (SecAgg+, Simulation Engine)"):
        clients, test = _training_files(workdir / "train", generate_book_year)
        fed = run_federation(
            FederationConfig(
                clients=clients,
                test=test,
                rounds=ROUNDS,
                seed=11,
                dp=False,
                secagg=True,
                out=workdir / "model",
                platform_names=list(PLATFORMS),
            )
        )
    console.print(
        f"model trained by {', '.join(fed.participants)} in {ROUNDS} rounds: test AUC {fed.final['test_auc']:.3f}"
    )

    # 2. The bank: its database, the model registered and promoted, its CA, its services.
    url = f"sqlite:///{workdir / 'bank.db'}"
    local = LocalBank(url, workdir / "store")
    version = local.register_model(workdir / "model", anchor=False).version
    local.promote(version)
    ca = CertificateAuthority.create(workdir / "certs")
    for name, role in [("ops", "operator"), ("auditor", "auditor"), *[(p, "platform") for p in PLATFORMS]]:
        ca.issue(name, role)
    clients_dir = workdir / "certs" / "clients"
    server = build_server("127.0.0.1:0", url, ca.server, workdir / "store")
    server.start()
    address = f"127.0.0.1:{server.bound_port}"
    ops = RemoteBank(Remote(address, ca.server.ca, clients_dir / "ops.crt", clients_dir / "ops.key"))
    channels = {
        p: connect(address, ClientTls(ca.server.ca, clients_dir / f"{p}.crt", clients_dir / f"{p}.key"))
        for p in PLATFORMS
    }
    console.print(f"bank services on {address} (mutual TLS, roles checked); {version} promoted")
    try:
        _year(workdir, console, ops, channels, generate_book_year, ConsentBook, report_consent, report_features)
        last = ops.review("2026-12")
        result = ops.metrics("2026-12", 12)
        console.rule("the loan book by month, read back from the bank (LoanBookService/Metrics)")
        print_metrics(result, out=console)
        _show_reasons(ops, console)
        console.rule("the review of December's data on 2027-01-01")
        print_review(last, out=console)
    finally:
        for channel in channels.values():
            channel.close()
        ops.close()
        server.stop(grace=None)
    console.print(f"[dim]credit part: bank database {workdir / 'bank.db'}; {time.perf_counter() - started:.1f} s")


def _training_files(out: Path, generate_book_year: Any) -> tuple[list[Path], Path]:
    """Last year's merchants, from the same generator without a downturn: one feature file per
    platform, a fifth of the merchants held out as the bank's test file. Each merchant's first
    month (no previous month to grow from) is left out, as no applicant's newest month is one."""
    import pandas as pd

    last_year = generate_book_year(600, platforms=len(PLATFORMS), start="2025-01", seed=5, downturn_month=None)
    frame = last_year.features[last_year.features["first_month"] == 0]
    out.mkdir(parents=True, exist_ok=True)
    held_out = frame["merchant_id"].str[-1].isin(["0", "5"])
    files = []
    for p in PLATFORMS:
        path = out / f"{p}.csv"
        mine = frame["merchant_id"].map(last_year.platform_of) == p
        frame[mine & ~held_out].to_csv(path, index=False)
        files.append(path)
    test = out / "test.csv"
    pd.DataFrame(frame[held_out]).to_csv(test, index=False)
    return files, test


def _due_day(day: date) -> date:
    """The day a draw made on `day` falls due: the DUE_DAY of the next month."""
    following = _next_month(day)
    return following.replace(day=DUE_DAY)


def _year(
    workdir: Path,
    console: Console,
    ops: Any,
    channels: dict[str, Any],
    generate_book_year: Any,
    consent_book: Any,
    report_consent: Any,
    report_features: Any,
) -> None:
    """Twelve months on the bank's clock (see the module docstring)."""
    year = generate_book_year(MERCHANTS, platforms=len(PLATFORMS), seed=11)
    rng = np.random.default_rng(11)
    merchants = sorted(year.paths)
    arrival = {m: year.months[0] if rng.random() < 0.5 else year.months[int(rng.integers(1, 10))] for m in merchants}
    books = {p: consent_book(f"sqlite:///{workdir / f'{p}.db'}") for p in PLATFORMS}
    for p, book in books.items():
        book.grant([m for m in merchants if year.platform_of[m] == p], note="signed the bank's form")
        report_consent(book, channels[p])
    features = year.features
    ops.set_clock(FIRST_DAY.isoformat())
    lines: dict[str, str] = {}  # merchant -> account
    day = FIRST_DAY

    def report_through(before: str, tmp: str) -> None:
        """Each platform reports its merchants' months before `before`, with its certificate."""
        known = features[features["month"] < before]
        for p in PLATFORMS:
            path = Path(tmp) / f"{p}-{before}.csv"
            known[known["merchant_id"].map(year.platform_of) == p].to_csv(path, index=False)
            report_features(books[p], path, channels[p])

    with tempfile.TemporaryDirectory() as tmp:
        for index, month in enumerate(year.months):
            report_through(month, tmp)
            reviewed = ops.review(year.months[index - 1]) if index and lines else None
            opened = declined = referred = 0
            for merchant in (m for m in merchants if arrival[m] == month):
                line = ops.open_line(merchant)
                lines[merchant] = line["account_id"]
                if line["frozen"].startswith("referred"):
                    referred += 1
                    ops.unfreeze(line["account_id"])  # the credit officer approves
                elif line["limit_fen"] == 0:
                    declined += 1
                else:
                    opened += 1
            drawn = 0
            term = (_due_day(day) - day).days
            for account in lines.values():
                info = ops.line(account)
                amount = int(info["available_fen"] * DRAW_SHARE) // 100 * 100
                if amount >= 10_000 and not info["frozen"] and info["days_past_due"] == 0:
                    ops.draw(account, amount, term)
                    drawn += 1
            ops.advance_clock(DUE_DAY - 1)  # the 14th: last month's draws are due
            repaid = 0
            today = day.replace(day=DUE_DAY).isoformat()
            for merchant, account in lines.items():
                stopped = year.default_month.get(merchant)
                if stopped is not None and stopped <= month:
                    continue  # a defaulting merchant pays nothing from its default month on
                info = ops.line(account)
                due = sum(d["principal_fen"] for d in info["draws"] if d["due_on"] <= today)
                if due:
                    ops.repay(account, info["interest_fen"] + due)
                    repaid += 1
            day = _next_month(day)
            moved = ops.set_clock(day.isoformat())
            review_text = (
                f"review of {reviewed['month']}: {reviewed['raised']} raised, {reviewed['cut']} cut, "
                f"{reviewed['kept']} kept; "
                if reviewed
                else ""
            )
            console.print(
                f"{month}: {review_text}{opened + declined + referred} applied ({declined} declined, "
                f"{referred} referred and approved by an officer), {drawn} draws, {repaid} repaid when due; "
                f"month closed, {moved['tier_changes']} tier change(s)"
            )
        report_through(_next_month(date.fromisoformat(year.months[-1] + "-01")).strftime("%Y-%m"), tmp)


def _show_reasons(ops: Any, console: Console) -> None:
    """A declined application's reasons and the tier balances the defaults left."""
    from yinqi.tables import readable_table

    declined = ops.applications(outcome="declined", limit=1)
    if declined:
        a = declined[0]
        table = readable_table(
            f"why application #{a['id']} ({a['merchant_id']}, {a['month']}) was declined", ("code", "reason", "原因")
        )
        for r in a["reasons"]:
            table.add_row(r["code"], r["text_en"], r["text_zh"])
        console.print(table)
