"""The end-to-end demo: each capability contributes one part, run in order.

A part is a module `yinqi.demo_<name>` with `run(workdir: Path, console: Console) -> None`.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path

from rich.console import Console

from federation.errors import YinqiError

PARTS = ("fl", "credit", "chain", "iot", "vertical")


def run_demo(workdir: Path, parts: list[str] | None = None) -> None:
    console = Console()
    selected = parts or list(PARTS)
    unknown = [p for p in selected if p not in PARTS]
    if unknown:
        raise YinqiError(f"--only: unknown demo part(s) {unknown}; expected some of {list(PARTS)}")
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for name in selected:
        module = importlib.import_module(f"yinqi.demo_{name}")
        console.rule(f"[bold]demo: {name}")
        part_start = time.perf_counter()
        module.run(workdir / name, console)
        console.print(f"[dim]{name} part took {time.perf_counter() - part_start:.1f} s[/]")
    console.rule(f"[bold green]demo finished in {time.perf_counter() - started:.1f} s")
