"""The dashboard in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright),
after the demo's credit, chain and IoT parts ran: each page loads with the operator's
certificate, shows the numbers `yinqi bank metrics --json` and `yinqi bank models --json` print,
draws its charts and the device map, refreshes itself when the book changes, and is refused
to a platform's certificate or to none. Screenshots go to tests/output/ (CI artifacts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from server.dashboard.serve import DashboardServer, start
from server.security.ca import CertSet
from tests.conftest import require_binary
from tests.dashboard.conftest import OUTPUT

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _data_dir() -> None:
    """(The demo's chain data dir stays set for the whole module: see `demo`.)"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """`yinqi demo --only credit,chain,iot` in a temp dir; yields (workdir, what it printed)."""
    from yinqi.demo import run_demo

    workdir = tmp_path_factory.mktemp("demo")
    saved = os.environ.get("YINQI_DATA_DIR")
    os.environ["YINQI_DATA_DIR"] = str(workdir / "data")
    console_file = workdir / "demo.out"
    with console_file.open("w") as out:
        import yinqi.demo as demo_module

        original = demo_module.Console
        demo_module.Console = lambda: Console(file=out, width=200)  # type: ignore[assignment,misc]
        try:
            run_demo(workdir, ["credit", "chain", "iot"])
        finally:
            demo_module.Console = original  # type: ignore[misc]
    os.environ["YINQI_DATA_DIR"] = str(workdir / "chain" / "data")  # the dashboard reads the chain part's chain
    yield workdir, console_file.read_text()
    if saved is None:
        os.environ.pop("YINQI_DATA_DIR", None)
    else:
        os.environ["YINQI_DATA_DIR"] = saved


@pytest.fixture(scope="module")
def served(demo: tuple[Path, str]) -> Iterator[tuple[DashboardServer, Any, Path]]:
    from yinqi.demo import dashboard_sources

    found = dashboard_sources(demo[0])
    assert found is not None
    sources, certs = found
    running = start(sources, CertSet.in_dir(certs))
    yield running, sources, certs
    running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    chromium = require_binary("chromium")  # Debian's package (.ci/run installs it); never downloaded
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield b
        b.close()


def context(browser: Any, running: DashboardServer, certs: Path, who: str | None) -> Any:
    """A browser profile holding `who`'s certificate (None: no certificate). The bank's CA is
    not in Chromium's trust store, so the server certificate's errors are ignored here; the
    dashboard's check of the *client* certificate is what these tests are about."""
    options: dict[str, Any] = {"ignore_https_errors": True, "viewport": {"width": 1300, "height": 900}}
    if who is not None:
        options["client_certificates"] = [
            {
                "origin": running.url.rstrip("/"),
                "certPath": str(certs / "clients" / f"{who}.crt"),
                "keyPath": str(certs / "clients" / f"{who}.key"),
            }
        ]
    return browser.new_context(**options)


def cli_json(*args: str) -> Any:
    env = {k: v for k, v in os.environ.items() if k != "YINQI_DB_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "yinqi", *args, "--json"], capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value * 100:.{digits}f} %"


def shoot(page: Any, name: str) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUTPUT / f"dashboard-{name}.png"), full_page=True)


def charts_drawn(page: Any) -> int:
    """SVG charts on the page with at least one drawn mark (bar, line, dot, area)."""
    return int(
        page.evaluate(
            "() => [...document.querySelectorAll('svg.chart')]"
            ".filter(s => s.querySelectorAll('rect.bar, polyline, circle, polygon').length > 0).length"
        )
    )


def test_the_demo_ends_with_the_dashboard(demo) -> None:
    _, printed = demo
    assert "yinqi demo --serve" in printed and "https://localhost:8443/" in printed


def test_lending_equals_the_cli(served, browser) -> None:
    running, sources, certs = served
    metrics = cli_json("bank", "metrics", "--db", sources.db, "--models-dir", str(sources.models_dir))
    ctx = context(browser, running, certs, "ops")
    page = ctx.new_page()
    assert page.goto(running.url + "lending").status == 200
    assert charts_drawn(page) >= 3  # applications, approval rate, NPL, balances by tier
    assert metrics["months"], "the demo made a year of months"
    for m in metrics["months"]:
        row = page.locator(f'#months tr[data-month="{m["month"]}"]')
        assert row.locator('td[data-metric="applications"]').inner_text() == str(m["applications"])
        assert row.locator('td[data-metric="approval_rate"]').inner_text() == pct(m["approval_rate"])
        assert row.locator('td[data-metric="npl_ratio"]').inner_text() == pct(m["npl_ratio"], 2)
        assert row.locator('td[data-metric="utilisation"]').inner_text() == pct(m["utilisation"])
    assert page.locator("#decisions tbody tr").count() > 0 and "原因" in page.content()
    shoot(page, "lending")
    ctx.close()


def test_models_equal_the_registry(served, browser) -> None:
    running, sources, certs = served
    registry = cli_json("bank", "models", "--db", sources.db)
    ctx = context(browser, running, certs, "ops")
    page = ctx.new_page()
    assert page.goto(running.url + "models").status == 200
    assert registry
    for v in registry:
        row = page.locator(f'#registry tr[data-version="{v["version"]}"]')
        assert row.locator('[data-field="sha256"]').inner_text() == v["sha256"]
        assert row.locator('[data-field="auc"]').inner_text() == f"{v['auc']:.4f}"
    assert charts_drawn(page) >= 1  # AUC / KS per round
    assert page.locator("#drift tbody tr.alert").count() > 0  # the demo's downturn raises drift alerts
    shoot(page, "models")
    ctx.close()


def test_receivables_leasing_and_anchoring_render(served, browser) -> None:
    running, sources, certs = served
    ctx = context(browser, running, certs, "ops")
    page = ctx.new_page()
    assert page.goto(running.url + "receivables").status == 200
    assert page.locator('[data-state="Repaid"]').inner_text() == "2"  # the demo's receivable and its split-off part
    assert charts_drawn(page) >= 1
    shoot(page, "receivables")
    assert page.goto(running.url + "leasing").status == 200
    devices = sources.fleet.store.devices()
    assert page.locator("svg.chart circle.device").count() == len(devices) > 0
    assert page.locator("svg.chart rect.fence").count() == 1
    shoot(page, "leasing")
    assert page.goto(running.url + "anchoring").status == 200
    assert int(page.locator('[data-field="anchored"]').inner_text()) > 0
    page.fill('input[name="kind"]', "document")
    page.fill('input[name="ref"]', "invoice-2026-001.txt")
    page.click('#lookup button[type="submit"]')
    page.wait_for_selector("#proof")
    assert '"root"' in page.locator("#proof").inner_text()
    shoot(page, "anchoring")
    ctx.close()


def test_a_platform_or_no_certificate_is_refused(served, browser) -> None:
    from playwright.sync_api import Error

    running, _, certs = served
    ctx = context(browser, running, certs, "platform_1")
    page = ctx.new_page()
    answer = page.goto(running.url + "lending")
    assert answer.status == 403 and "holds role platform" in page.content()
    assert page.locator("svg").count() == 0
    shoot(page, "refused-platform")
    ctx.close()
    ctx = context(browser, running, certs, None)
    with pytest.raises(Error):
        ctx.new_page().goto(running.url + "lending")
    ctx.close()


def test_the_page_updates_itself_when_the_book_changes(served, browser) -> None:
    from server.client import LocalBank

    running, sources, certs = served
    ctx = context(browser, running, certs, "ops")
    page = ctx.new_page()
    page.goto(running.url + "lending")
    month = page.locator("#months tbody tr").last.get_attribute("data-month")
    cell = page.locator(f'#months tr[data-month="{month}"] td[data-metric="applications"]')
    before = int(cell.inner_text())
    merchant = page.locator("#decisions tbody tr td").nth(2).inner_text()
    bank = LocalBank(sources.db, sources.models_dir)
    try:
        bank.score(merchant)  # a new application in the business date's month
    finally:
        bank.close()
    page.wait_for_function(
        "([m, n]) => document.querySelector(`#months tr[data-month='${m}'] td[data-metric='applications']`)"
        ".innerText === String(n)",
        arg=[month, before + 1],
        timeout=20_000,
    )
    assert "updated" in page.locator("#live").inner_text()
    ctx.close()
