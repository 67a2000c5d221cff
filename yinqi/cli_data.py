"""`yinqi features` and `yinqi data synth`: preparing a platform's data."""

from __future__ import annotations

import json
from pathlib import Path

import typer

data_app = typer.Typer(help="Synthetic data for demos, tests and benchmarks.", no_args_is_help=True)


def register(root: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    root.command("features")(features)
    root.add_typer(data_app, name="data")


def features(
    raw: Path = typer.Argument(..., help="The platform's raw transactions (CSV or Parquet)."),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the merchant-month features (CSV, or .parquet)."),
    mapping: Path = typer.Option(
        None,
        "--mapping",
        "-m",
        help='mapping.toml renaming the platform\'s own columns to ours ([columns] ours = "theirs").',
    ),
) -> None:
    """Turn raw platform transactions into one feature row per merchant and month.

    Features: amount, count, avg_rating, inventory_turnover, growth (per-merchant month-on-month,
    0 in a merchant's first month, flagged by first_month), past_defaults, category; label: default.
    Numbers must be finite and plausible (within ±1e15); the file is written whole or not at all.
    """
    from rich.console import Console

    from federation import files
    from federation.features import build_features
    from federation.schema import load_mapping, read_table

    console = Console(stderr=True)
    table = build_features(read_table(raw), str(raw), load_mapping(mapping))
    # Whole or absent: a `features` killed mid-write leaves no truncated file to score.
    if out.suffix.lower() in {".parquet", ".pq"}:
        files.write_with(out, lambda path: table.to_parquet(path, index=False))
    else:
        files.write_with(out, lambda path: table.to_csv(path, index=False))
    console.print(
        f"{raw}: {table['merchant_id'].nunique()} merchants, {len(table)} merchant-months, "
        f"default rate {table['default'].mean():.3f} -> {out}"
    )


@data_app.command("synth")
def synth(
    out: Path = typer.Option(Path("out/synth"), "--out", "-o", help="Directory for platform_<i>.csv and test.csv."),
    platforms: int = typer.Option(3, "--platforms", min=1, help="Number of e-commerce platforms."),
    merchants: int = typer.Option(
        500, "--merchants", min=1, help="Average training merchants per platform (sizes vary 1.5x..0.5x)."
    ),
    months: int = typer.Option(12, "--months", min=1, help="Months of history per merchant."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same files)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Write one raw transaction CSV per platform (non-IID: size, category mix and default rate
    differ) and a held-out test.csv of merchants no platform trains on."""
    from rich.console import Console
    from rich.table import Table

    from federation.synth import generate

    summary = generate(out, platforms=platforms, merchants=merchants, months=months, seed=seed)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "platform_files": [str(p) for p in summary.platform_files],
                    "test_file": str(summary.test_file),
                    "rows": summary.rows,
                    "merchants": summary.merchants,
                    "default_rates": summary.default_rates,
                }
            )
        )
        return
    table = Table(title=f"synthetic platforms (seed {seed})")
    for column in ("file", "merchants", "transactions", "default rate"):
        table.add_column(column)
    for path, n, rows, rate in zip(
        summary.platform_files, summary.merchants, summary.rows, summary.default_rates, strict=True
    ):
        table.add_row(str(path), str(n), str(rows), f"{rate:.3f}")
    table.add_row(str(summary.test_file), "held out", "", "")
    Console().print(table)
