"""Who may see the dashboard: only the bank's operator, by the certificate its CA issued.

Each refusal is a real TLS connection to a running dashboard: no certificate or one from
another CA fails the handshake; a platform's, an auditor's or a revoked operator's certificate
gets 403 with the reason on one line; the operator gets the pages, whose numbers are the CLI's.
"""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from federation.waiting import wait_until
from server.client import LocalBank
from server.dashboard.app import PAGES, create_app
from server.dashboard.data import DashboardData, Sources
from server.security.ca import CertificateAuthority
from yinqi.cli import app as cli

runner = CliRunner()


def cli_json(*args: str) -> object:
    result = runner.invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_the_operator_sees_every_page_and_the_numbers_are_the_clis(client, book) -> None:
    url, store = book
    ops = client("ops")
    for page in PAGES:
        answer = ops.get(f"/{page}")
        assert answer.status_code == 200, (page, answer.text[:300])
        assert "<svg" in answer.text or 'class="empty"' in answer.text
    lending = ops.get("/api/lending").json()
    assert lending["metrics"] == cli_json("bank", "metrics", "--db", url, "--models-dir", str(store), "--json")
    april = lending["metrics"]["months"][-1]
    assert (april["month"], april["applications"], april["approved"], april["declined"]) == ("2026-04", 2, 1, 1)
    html = ops.get("/lending").text
    assert f'data-metric="applications" data-month="2026-04" data-value="{april["applications"]}"' in html
    assert "NO_TURNOVER" in html  # the decline's reason code, with its words
    models = ops.get("/api/models").json()
    registry = cli_json("bank", "models", "--db", url, "--json")
    assert [(v["version"], v["sha256"], v["auc"]) for v in models["versions"]] == [
        (r["version"], r["sha256"], r["auc"]) for r in registry
    ]
    assert [r["auc"] for r in models["versions"][0]["report"]["rounds"]] == [0.70, 0.75]
    assert models["versions"][0]["anchor"]["anchored"] is False  # queued: no flush has run


@pytest.mark.parametrize(
    ("who", "why"),
    [
        ("platform-1", "platform-1 holds role platform; the dashboard is for the bank's operators only"),
        ("auditor-1", "auditor-1 holds role auditor"),
        ("ops-gone", "was revoked at"),
    ],
)
def test_a_wrong_or_revoked_identity_is_refused_on_every_path(client, who: str, why: str) -> None:
    caller = client(who)
    for path in ("/lending", "/api/lending", "/api/stamp", "/static/live.js", "/", "/nope"):
        answer = caller.get(path)
        assert answer.status_code == 403, path
        assert why in answer.text and answer.text.count("\n") == 1
        assert "申请量" not in answer.text and "applications" not in answer.text


def test_no_certificate_or_another_cas_fails_the_handshake(client, dashboard, tmp_path: Path, pki) -> None:
    with pytest.raises((httpx.ReadError, httpx.ConnectError, httpx.RemoteProtocolError)):
        client(None).get("/lending")
    other = CertificateAuthority.create(tmp_path / "other-ca")
    forged = other.issue("ops", "operator")  # the same name and role, another CA
    context = ssl.create_default_context(cafile=str(pki.ca))
    context.load_cert_chain(forged.cert, forged.key)
    with (
        httpx.Client(base_url=dashboard.url, verify=context) as c,
        pytest.raises((httpx.ReadError, httpx.ConnectError, httpx.RemoteProtocolError)),
    ):
        c.get("/lending")


def test_without_tls_the_app_itself_refuses(book) -> None:
    """Served some other way (no mutual TLS in front), the app still refuses: no identity, no page."""
    url, store = book
    data = DashboardData(Sources(url, store))
    try:
        with TestClient(create_app(data, None), base_url="https://127.0.0.1") as c:
            answer = c.get("/lending")
        assert answer.status_code == 403 and "no client certificate" in answer.text
    finally:
        data.close()


def test_it_listens_on_loopback_unless_told(dashboard) -> None:
    assert dashboard.server.servers[0].sockets[0].getsockname()[0] == "127.0.0.1"
    assert dashboard.url.startswith("https://localhost:")


def test_hostile_lookups_fail_safely(client) -> None:
    ops = client("ops")
    assert ops.get("/nope").status_code == 404
    assert ops.get("/api/nope").status_code == 404
    page = ops.get("/anchoring", params={"kind": "document", "ref": "x" * 10_000})
    assert page.status_code == 200 and "a proof lookup needs a kind" in page.text
    page = ops.get("/anchoring", params={"kind": "<script>alert(1)</script>", "ref": "r"})
    assert "<script>alert(1)</script>" not in page.text and "&lt;script&gt;" in page.text


def test_the_stamp_moves_when_the_book_does(client, book) -> None:
    """What the pages poll for live updates: a new application changes it; nothing else does."""
    url, store = book
    ops = client("ops")
    before = ops.get("/api/stamp").json()["stamp"]
    assert ops.get("/api/stamp").json()["stamp"] == before
    bank = LocalBank(url, store)
    try:
        bank.score("m3")
    finally:
        bank.close()
    wait_until(lambda: ops.get("/api/stamp").json()["stamp"] != before, timeout=10, what="the stamp to change")
    assert ops.get("/api/lending").json()["metrics"]["months"][-1]["applications"] == 3
