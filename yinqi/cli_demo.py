"""`yinqi demo`: the end-to-end tour on embedded defaults."""

from __future__ import annotations

from pathlib import Path

import typer


def register(root: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    root.command("demo")(demo)


def demo(
    workdir: Path = typer.Option(
        Path("out/demo"), "--workdir", help="Where the demo writes its data, models and proofs."
    ),
    only: str = typer.Option(
        "", "--only", help="Comma-separated parts to run (fl, credit, chain, iot, vertical); default: all."
    ),
    serve: bool = typer.Option(
        False, "--serve", help="Afterwards, serve the bank's dashboard on the demo's data until Ctrl-C."
    ),
    port: int = typer.Option(
        8443, "--port", help="The dashboard's port with --serve (0: a free one).", min=0, max=65535
    ),
) -> None:
    """Run every capability end to end on embedded defaults (simulation, in-process EVM,
    embedded MQTT broker) and print what each showed."""
    from yinqi.demo import run_demo

    parts = [p.strip() for p in only.split(",") if p.strip()] or None
    run_demo(workdir, parts, serve, port)
