"""What the bank's commands share (`yinqi.cli_bank`, `yinqi.cli_loanbook`): the options that
name the bank (its database, or a running bank with this caller's certificate), opening it, and
printing JSON and reason codes. Heavy imports stay inside the functions so `yinqi --help` is
fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from yinqi.tables import readable_table

console = Console()

# ----- options shared by the bank's commands ------------------------------------------------
Db = Annotated[
    str | None, typer.Option("--db", help="The bank's database URL (default: YINQI_DB_URL, else the data dir's).")
]
ModelsDir = Annotated[
    Path | None,
    typer.Option("--models-dir", help="Where registered model files are stored (default: <data dir>/models)."),
]
Bank = Annotated[
    str | None,
    typer.Option(
        "--bank", envvar="YINQI_BANK", help="Call a running bank's gRPC services at HOST:PORT instead of its database."
    ),
]
Ca = Annotated[
    Path | None, typer.Option("--ca", envvar="YINQI_BANK_CA", help="The bank's CA certificate (PEM) for --bank.")
]
Cert = Annotated[
    Path | None,
    typer.Option("--cert", envvar="YINQI_BANK_CERT", help="This caller's certificate (from `yinqi bank certs issue`)."),
]
Key = Annotated[Path | None, typer.Option("--key", envvar="YINQI_BANK_KEY", help="This caller's private key (PEM).")]
Insecure = Annotated[
    bool, typer.Option("--insecure", help="Reach --bank in plaintext (a loopback bank started with --insecure only).")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
Model = Annotated[str | None, typer.Option("--model", help="Model version (default: the promoted one).")]


def bank_from_options(
    db: str | None,
    models_dir: Path | None,
    bank: str | None,
    ca: Path | None,
    cert: Path | None,
    key: Path | None,
    insecure: bool,
) -> Any:
    """The bank these options name: its database, or a running bank over gRPC (`--bank`)."""
    from federation.errors import YinqiError
    from server.client import Remote, open_bank

    if bank is None:
        if cert or key or insecure:
            raise YinqiError("--cert, --key and --insecure are for reaching a running bank: add --bank HOST:PORT")
        return open_bank(db, models_dir)
    return open_bank(db, models_dir, Remote(bank, ca, cert, key, insecure))


def print_json(value: Any) -> None:
    console.print_json(json.dumps(value, default=str, ensure_ascii=False))


def print_reasons(reasons: list[dict[str, Any]], title: str = "reasons") -> None:
    """Reason codes, one per line, in English and Chinese."""
    if not reasons:
        return
    table = readable_table(title, ("code", "reason", "原因"))
    for r in reasons:
        table.add_row(r["code"], r["text_en"], r["text_zh"])
    console.print(table)
