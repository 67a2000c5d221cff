"""Dashboard page load with a year of demo data: each page's HTML and its browser load against the
same data as JSON (`/api/<page>`, the baseline measured in the same run). Goal: p95 ≤ 300 ms.

Builds the data with the demo's credit, chain and IoT parts (a year of the loan book: ~3 min),
or reuses `--workdir` from an earlier run; serves the dashboard as `yinqi bank dashboard` does
(its own process, mutual TLS, the demo's operator certificate) and asks it over HTTPS with
keep-alive. With Debian's chromium, also times a real browser's load event per page.
"""

from __future__ import annotations

import argparse
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from federation.waiting import wait_until

PAGES = ("lending", "models", "receivables", "leasing", "anchoring")
GOAL_MS = 300.0
console = Console()


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def build(workdir: Path) -> None:
    from yinqi.demo import run_demo

    os.environ["YINQI_DATA_DIR"] = str(workdir / "data")
    with open(os.devnull, "w") as quiet:
        import yinqi.demo as demo

        demo.Console = lambda: Console(file=quiet)  # type: ignore[assignment,misc]
        run_demo(workdir, ["credit", "chain", "iot"])


def serve(workdir: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    from yinqi.demo import dashboard_sources

    found = dashboard_sources(workdir)
    if found is None:
        raise SystemExit(f"{workdir}: no demo credit part here")
    sources, certs = found
    iot_db = f"sqlite:///{workdir / 'iot' / 'iot.db'}" if sources.fleet is not None else None
    url_file = workdir / "dashboard.url"
    url_file.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "yinqi", "bank", "dashboard", "--certs", str(certs), "--port", "0"]
    argv += ["--db", str(sources.db), "--models-dir", str(sources.models_dir), "--url-file", str(url_file)]
    for option, value in (
        ("--alerts-db", sources.alerts_db),
        ("--anchor-db", sources.anchor_db),
        ("--iot-db", iot_db),
    ):
        if value:
            argv += [option, value]
    if sources.chain:
        argv.append("--chain")
    env = {**os.environ, "YINQI_DATA_DIR": str(workdir / "chain" / "data")}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: url_file.is_file() or proc.poll() is not None, timeout=120, what="the dashboard to serve")
    if proc.poll() is not None:
        raise SystemExit("the dashboard exited before serving")
    return proc, url_file.read_text().strip(), certs


def time_http(client: httpx.Client, path: str, repeats: int) -> tuple[float, list[float]]:
    """(the first request, cold: it reads the data, opens the chain; then `repeats` more)."""
    started = time.perf_counter()
    client.get(path).raise_for_status()
    first = (time.perf_counter() - started) * 1000
    out = []
    for _ in range(repeats):
        started = time.perf_counter()
        answer = client.get(path)
        answer.raise_for_status()
        _ = answer.content
        out.append((time.perf_counter() - started) * 1000)
    return first, out


def time_browser(url: str, certs: Path, repeats: int) -> dict[str, list[float]]:
    chromium = shutil.which("chromium")
    if chromium is None:
        return {}
    from playwright.sync_api import sync_playwright

    out: dict[str, list[float]] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        context = browser.new_context(
            ignore_https_errors=True,
            client_certificates=[
                {
                    "origin": url.rstrip("/"),
                    "certPath": str(certs / "clients" / "ops.crt"),
                    "keyPath": str(certs / "clients" / "ops.key"),
                }
            ],
        )
        page = context.new_page()
        for name in (*PAGES, "static/dashboard.css"):
            page.goto(url + name)
            out[name] = []
            for _ in range(repeats):
                started = time.perf_counter()
                page.goto(url + name, wait_until="load")
                out[name].append((time.perf_counter() - started) * 1000)
        browser.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="a demo workdir to reuse (default: build one in a temp dir)")
    parser.add_argument("--repeats", type=int, default=30, help="requests per page and per JSON endpoint")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="yinqi-bench-dashboard-"))
    if not (workdir / "credit" / "bank.db").is_file():
        with console.status(f"a year of demo data in {workdir} (credit, chain, iot parts)"):
            started = time.perf_counter()
            build(workdir)
        console.print(f"demo data built in {time.perf_counter() - started:.0f} s")
    proc, url, certs = serve(workdir)
    try:
        context = ssl.create_default_context(cafile=str(certs / "ca.crt"))
        context.load_cert_chain(str(certs / "clients" / "ops.crt"), str(certs / "clients" / "ops.key"))
        with httpx.Client(base_url=url, verify=context, timeout=60) as client:
            months = len(client.get("/api/lending").json()["metrics"]["months"])
            html = {name: time_http(client, f"/{name}", args.repeats) for name in PAGES}
            api = {name: time_http(client, f"/api/{name}", args.repeats) for name in PAGES}
        browser = time_browser(url, certs, max(5, args.repeats // 3))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    from yinqi.tables import print_wide

    rows = []
    for name in PAGES:
        (html_first, html_times), (_, api_times) = html[name], api[name]
        load = p95(browser[name]) if name in browser else None
        worst = max(p95(html_times), load or 0.0)
        rows.append(
            [
                name,
                f"{p95(api_times):.1f} ms",
                f"{p95(html_times):.1f} ms",
                f"{p95(html_times) / p95(api_times):.2f}×",
                "-" if load is None else f"{load:.1f} ms",
                f"{html_first:.0f} ms",
                "met" if worst <= GOAL_MS else "MISSED",
            ]
        )
    if "static/dashboard.css" in browser:
        rows.append(["(a static file)", "", "", "", f"{p95(browser['static/dashboard.css']):.1f} ms", "", "baseline"])
    print_wide(
        console,
        f"dashboard over mutual TLS, {months} months of demo data, {args.repeats} requests each (p95)",
        ("page", "JSON\n(baseline)", "HTML", "HTML /\nJSON", "browser\nload", "first HTML\n(cold)", "≤ 300 ms"),
        rows,
    )


if __name__ == "__main__":
    main()
