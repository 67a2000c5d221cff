"""Dashboard page load with a year of demo data: each page's HTML and its browser load against the
same data as JSON (`/api/<page>`, the baseline measured in the same run). Goal: p95 ≤ 300 ms.

Builds the data with the demo's credit, chain and IoT parts (a year of the loan book: ~3 min),
or reuses `--workdir` from an earlier run; serves the dashboard as `yinqi bank dashboard` does
(its own process, mutual TLS, the demo's operator certificate) and asks it over HTTPS with
keep-alive. With Debian's chromium, also times a real browser's load event per page (and a
static file's, the browser's floor).

Fair to every page: each gets the same warm-up (whole rounds over every page before any timing:
the first loads after the browser starts pay for its start-up), and the pages are timed in
interleaved rounds (alternating direction), so a burst of load on a shared machine falls on all
pages alike instead of on whichever page was being timed. p95 is the nearest rank: from 30
samples on it is not the worst one. The table prints median and p95, the number of samples and
the load average before and after.

The browser is Playwright's: it presents the client certificate through a TLS proxy of its own
(Chromium's connections go through Playwright's driver), so a load includes that hop; the static
file's row pays it too.
"""

from __future__ import annotations

import argparse
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from federation.waiting import wait_until

PAGES = ("lending", "models", "receivables", "leasing", "anchoring")
STATIC = "static/dashboard.css"
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


def median(values: list[float]) -> float:
    return statistics.median(values)


def rounds(names: Sequence[str], repeats: int) -> Iterator[str]:
    """`repeats` rounds over `names`, every other one reversed (no page always first or last)."""
    for i in range(repeats):
        yield from (names if i % 2 == 0 else names[::-1])


def time_http(
    client: httpx.Client, paths: Sequence[str], repeats: int
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """(each path's first request, cold: it reads the data, opens the chain; then `repeats` more
    of each, interleaved)."""

    def one(path: str) -> float:
        started = time.perf_counter()
        answer = client.get(path)
        answer.raise_for_status()
        _ = answer.content
        return (time.perf_counter() - started) * 1000

    first = {path: one(path) for path in paths}
    out: dict[str, list[float]] = {path: [] for path in paths}
    for path in rounds(paths, repeats):
        out[path].append(one(path))
    return first, out


def time_browser(url: str, certs: Path, repeats: int, warmup: int) -> dict[str, list[float]]:
    """Load event times per page in a headless Chromium: `warmup` untimed rounds over every page,
    then `repeats` interleaved timed rounds."""
    chromium = shutil.which("chromium")
    if chromium is None:
        return {}
    from playwright.sync_api import sync_playwright

    names = (*PAGES, STATIC)
    out: dict[str, list[float]] = {name: [] for name in names}
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
        for name in rounds(names, warmup):
            page.goto(url + name, wait_until="load")
        for name in rounds(names, repeats):
            started = time.perf_counter()
            page.goto(url + name, wait_until="load")
            out[name].append((time.perf_counter() - started) * 1000)
        browser.close()
    return out


def ms(values: list[float]) -> str:
    """median / p95"""
    return f"{median(values):.1f} / {p95(values):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="a demo workdir to reuse (default: build one in a temp dir)")
    parser.add_argument("--repeats", type=int, default=30, help="requests per page and per JSON endpoint")
    parser.add_argument("--browser-repeats", type=int, default=30, help="timed browser loads per page")
    parser.add_argument("--warmup", type=int, default=3, help="untimed browser rounds over every page first")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="yinqi-bench-dashboard-"))
    if not (workdir / "credit" / "bank.db").is_file():
        with console.status(f"a year of demo data in {workdir} (credit, chain, iot parts)"):
            started = time.perf_counter()
            build(workdir)
        console.print(f"demo data built in {time.perf_counter() - started:.0f} s")
    load_before = os.getloadavg()[0]
    proc, url, certs = serve(workdir)
    try:
        context = ssl.create_default_context(cafile=str(certs / "ca.crt"))
        context.load_cert_chain(str(certs / "clients" / "ops.crt"), str(certs / "clients" / "ops.key"))
        with httpx.Client(base_url=url, verify=context, timeout=60) as client:
            months = len(client.get("/api/lending").json()["metrics"]["months"])
            html_paths, api_paths = [f"/{name}" for name in PAGES], [f"/api/{name}" for name in PAGES]
            first, http = time_http(client, [*html_paths, *api_paths], args.repeats)
        with console.status(f"browser: {args.warmup} warm-up rounds, {args.browser_repeats} timed rounds"):
            browser = time_browser(url, certs, args.browser_repeats, args.warmup)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    load_after = os.getloadavg()[0]
    from yinqi.tables import print_wide

    rows = []
    for name in PAGES:
        html_times, api_times = http[f"/{name}"], http[f"/api/{name}"]
        load = browser.get(name)
        worst = max(p95(html_times), p95(load) if load else 0.0)
        rows.append(
            [
                name,
                ms(api_times),
                ms(html_times),
                f"{p95(html_times) / p95(api_times):.2f}×",
                "-" if not load else ms(load),
                f"{first[f'/{name}']:.0f} ms",
                "met" if worst <= GOAL_MS else "MISSED",
            ]
        )
    if browser.get(STATIC):
        rows.append(["(a static file)", "", "", "", ms(browser[STATIC]), "", "baseline"])
    print_wide(
        console,
        f"dashboard over mutual TLS, {months} months of demo data; ms, median / p95 of {args.repeats} requests "
        f"and {args.browser_repeats} browser loads per page (after {args.warmup} warm-up rounds), interleaved; "
        f"load average {load_before:.2f} before, {load_after:.2f} after",
        (
            "page",
            "JSON\n(baseline)",
            "HTML",
            "HTML /\nJSON\n(p95)",
            "browser\nload",
            "first HTML\n(cold)",
            "p95\n≤ 300 ms",
        ),
        rows,
    )


if __name__ == "__main__":
    main()
