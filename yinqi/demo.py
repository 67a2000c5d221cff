"""The end-to-end demo: each capability contributes one part, run in order.

A part is a module `yinqi.demo_<name>` with `run(workdir: Path, console: Console) -> None`.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from federation.errors import YinqiError

PARTS = ("fl", "credit", "chain", "iot", "vertical")


def run_demo(workdir: Path, parts: list[str] | None = None, serve: bool = False, port: int = 8443) -> None:
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
    show_dashboard(workdir, console, serve, port)


def dashboard_sources(workdir: Path) -> tuple[Any, Path] | None:
    """The dashboard over the demo's data: the credit part's bank (and its CA), the chain part's
    anchoring store and chain, the IoT part's received alerts and monitor store. None without
    the credit part (it makes the bank and the operator's certificate)."""
    from server.dashboard.data import Sources
    from yinqi.dashboard_fleet import MonitorFleet

    credit, chain, iot = workdir / "credit", workdir / "chain" / "data", workdir / "iot"
    if not (credit / "bank.db").is_file() or not (credit / "certs" / "ca.crt").is_file():
        return None

    def url(path: Path) -> str | None:
        return f"sqlite:///{path.resolve()}" if path.is_file() else None

    sources = Sources(
        db=url(credit / "bank.db"),
        models_dir=credit / "store",
        alerts_db=url(iot / "bank.db"),
        anchor_db=url(chain / "bank.db"),
        fleet=MonitorFleet(iot_url) if (iot_url := url(iot / "iot.db")) else None,
        chain=(chain / "chain").is_dir(),
    )
    return sources, credit / "certs"


def show_dashboard(workdir: Path, console: Console, serve: bool, port: int = 8443) -> None:
    """End the demo with the dashboard's URL; with `serve`, serve it until Ctrl-C."""
    import os

    found = dashboard_sources(workdir)
    if found is None:
        console.print("[dim]dashboard: run the credit part to have a bank to show[/]")
        return
    sources, certs = found
    ops = certs / "clients"
    url = f"https://localhost:{port}/"
    curl = f"curl --cacert {certs / 'ca.crt'} --cert {ops / 'ops.crt'} --key {ops / 'ops.key'} {url}lending"
    if not serve:
        console.print(
            f"dashboard: `yinqi demo --serve --workdir {workdir}` serves it at {url} "
            f"(operator certificate {ops / 'ops.crt'}; e.g. {curl})",
            soft_wrap=True,
        )
        return
    from server.dashboard.serve import start
    from server.security.ca import CertSet

    if sources.chain:
        os.environ["YINQI_DATA_DIR"] = str((workdir / "chain" / "data").resolve())  # the chain part's chain
    running = start(sources, CertSet.in_dir(certs), port=port)
    curl = curl.replace(url, running.url)
    console.print(f"dashboard: {running.url} (operator certificate {ops / 'ops.crt'}); e.g. {curl}", soft_wrap=True)
    console.print("serving until Ctrl-C")
    try:
        if running.thread is not None:
            running.thread.join()
    except KeyboardInterrupt:
        pass
    finally:
        running.stop()
