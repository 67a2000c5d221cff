"""The bank and consent commands from the shell (typer's runner, same process)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from federation.errors import DataError
from proto.channel import RemoteError
from server.credit.errors import BankError
from server.feature_store import FeatureStore
from server.grpc_app import build_server
from tests.bank.conftest import merchant_rows, report_features
from tests.conftest import free_port
from tests.consent_helpers import report_consent
from yinqi.cli import app

runner = CliRunner()
ROWS = merchant_rows([1000.0, 2000.0, 3000.0])


@pytest.fixture
def setup(tmp_path, make_model):
    url = f"sqlite:///{tmp_path / 'bank.db'}"
    features = tmp_path / "features.csv"
    frame = pd.DataFrame(ROWS)
    frame.insert(0, "merchant_id", "m1")
    pd.concat([frame, frame.assign(merchant_id="m2")]).to_csv(features, index=False)
    ok = runner.invoke(
        app,
        [
            "bank",
            "register-model",
            str(make_model(0.03)),
            "--db",
            url,
            "--models-dir",
            str(tmp_path / "store"),
            "--no-anchor",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert runner.invoke(app, ["bank", "promote", "v1", "--db", url]).exit_code == 0
    return url, features


@pytest.fixture
def served(setup, pki, tmp_path):
    url, _ = setup
    server = build_server(f"127.0.0.1:{free_port()}", url, pki.server, tmp_path / "store")
    server.start()
    try:
        yield f"127.0.0.1:{server.bound_port}"
    finally:
        server.stop(grace=None)


def invoke(*args: str) -> dict:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def as_party(pki, name: str) -> list[str]:
    return ["--ca", str(pki.ca), "--cert", str(pki.cert(name)), "--key", str(pki.key(name))]


def test_consent_grant_withdraw_and_history(setup):
    url, _ = setup
    invoke("client", "consent", "grant", "m1", "m2", "--db", url, "--note", "form 7")
    invoke("client", "consent", "withdraw", "m2", "--db", url)
    current = invoke("client", "consent", "list", "--db", url)
    assert [(r["merchant_id"], r["granted"]) for r in current] == [("m1", True), ("m2", False)]
    assert len(invoke("client", "consent", "list", "--history", "--db", url)) == 3


def test_score_open_draw_repay_show_on_the_reported_features(setup):
    url, _ = setup
    report_consent(url, ["m1"])
    report_features(url, {"m1": ROWS})
    scored = invoke("bank", "score", "--model", "v1", "--merchant", "m1", "--db", url)
    assert (scored["band"], scored["limit_fen"]) == ("B", 400_000)
    opened = invoke("bank", "credit", "open", "--merchant", "m1", "--db", url)
    account = opened["account_id"]
    invoke("bank", "credit", "draw", account, "250000", "--db", url)
    repaid = invoke("bank", "credit", "repay", account, "50000", "--db", url)
    assert (repaid["principal_fen"], repaid["available_fen"]) == (200_000, 200_000)
    shown = invoke("bank", "credit", "show", "--merchant", "m1", "--entries", "--db", url)
    assert [e["kind"] for e in shown["entries"]] == ["open", "draw", "repay"]
    calls = invoke("bank", "calls", "--db", url)
    assert [(c["method"], c["status"], c["serial"]) for c in calls] == [
        ("CreditService/Repay", "OK", "local"),
        ("CreditService/Draw", "OK", "local"),
        ("CreditService/Open", "OK", "local"),
        ("ScoringService/Score", "OK", "local"),
        ("Registry/Promote", "OK", "local"),
        ("Registry/Register", "OK", "local"),
    ]


def test_refusals_are_one_line_errors(setup):
    url, _ = setup
    report_features(url, {"m2": ROWS})
    result = runner.invoke(app, ["bank", "score", "--merchant", "m2", "--db", url])
    assert isinstance(result.exception, BankError)
    assert str(result.exception) == "merchant 'm2' has not consented (or has withdrawn consent) to credit scoring"
    result = runner.invoke(app, ["bank", "score", "--merchant", "m9", "--db", url])
    assert str(result.exception).startswith("merchant 'm9': no features reported by its platform")
    result = runner.invoke(app, ["bank", "credit", "repay", "CL-x", "1", "--db", url])
    assert str(result.exception) == "credit account 'CL-x' not found"
    refused = invoke("bank", "calls", "--db", url)
    assert [(c["method"], c["status"]) for c in refused] == [
        ("CreditService/Repay", "NOT_FOUND"),
        ("ScoringService/Score", "NOT_FOUND"),
        ("ScoringService/Score", "FAILED_PRECONDITION"),
        ("Registry/Promote", "OK"),
        ("Registry/Register", "OK"),
    ]


def test_consent_and_features_reach_the_bank_over_mutual_tls_and_scoring_follows(setup, served, pki, tmp_path):
    url, features = setup
    platform_db = f"sqlite:///{tmp_path / 'platform.db'}"
    report = ["client", "consent", "report", "--bank", served, *as_party(pki, "platform-1"), "--db", platform_db]
    invoke("client", "consent", "grant", "m1", "--db", platform_db)
    first = invoke(*report, "--features", str(features))
    assert {k: first[k] for k in ("received", "stored")} == {"received": 1, "stored": 1}
    assert first["features"] == {"merchants": 1, "received": 1, "changed": 1, "not_consented": 1}
    assert FeatureStore(url).rows(["m1", "m2"]).keys() == {"m1"}  # m2 has no consent: not sent
    assert invoke(*report) == {"received": 1, "stored": 0}  # redelivery stores nothing twice
    assert invoke("bank", "score", "--merchant", "m1", "--db", url)["limit_fen"] == 400_000
    invoke("client", "consent", "withdraw", "m1", "--db", platform_db)
    assert invoke(*report) == {"received": 2, "stored": 1}
    refused = runner.invoke(app, ["bank", "score", "--merchant", "m1", "--db", url])
    assert "has not consented" in str(refused.exception)
    claimed = invoke("bank", "merchants", "--db", url)
    assert [(m["merchant_id"], m["platform"]) for m in claimed] == [("m1", "platform-1")]


def test_a_platform_cannot_report_as_another_or_for_anothers_merchants(setup, served, pki, tmp_path):
    url, features = setup
    db1, db2 = f"sqlite:///{tmp_path / 'p1.db'}", f"sqlite:///{tmp_path / 'p2.db'}"
    invoke("client", "consent", "grant", "m1", "--db", db1)
    invoke("client", "consent", "grant", "m1", "--db", db2)
    invoke("client", "consent", "report", "--bank", served, *as_party(pki, "platform-1"), "--db", db1)
    posing = runner.invoke(
        app,
        [
            "client",
            "consent",
            "report",
            "--bank",
            served,
            *as_party(pki, "platform-2"),
            "--db",
            db2,
            "--platform",
            "platform-1",
        ],
    )
    assert isinstance(posing.exception, RemoteError) and posing.exception.code == "PERMISSION_DENIED"
    assert str(posing.exception) == (
        "this report claims to come from platform 'platform-1', but the caller's certificate is platform-2's"
    )
    stealing = runner.invoke(
        app,
        [
            "client",
            "consent",
            "report",
            "--bank",
            served,
            *as_party(pki, "platform-2"),
            "--db",
            db2,
            "--features",
            str(features),
        ],
    )
    assert isinstance(stealing.exception, RemoteError) and stealing.exception.code == "PERMISSION_DENIED"
    assert str(stealing.exception) == (
        "merchant 'm1' belongs to platform 'platform-1'; platform-2 may report and read only its own merchants"
    )
    assert FeatureStore(url).rows(["m1"]) == {}


def test_an_implausible_feature_is_refused_on_the_platform_naming_file_row_and_column(setup, served, pki, tmp_path):
    url, features = setup
    frame = pd.read_csv(features)
    frame.loc[2, "amount"] = 1e300
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    platform_db = f"sqlite:///{tmp_path / 'platform.db'}"
    invoke("client", "consent", "grant", "m1", "m2", "--db", platform_db)
    result = runner.invoke(
        app,
        [
            "client",
            "consent",
            "report",
            "--bank",
            served,
            *as_party(pki, "platform-1"),
            "--db",
            platform_db,
            "--features",
            str(bad),
        ],
    )
    assert isinstance(result.exception, DataError)
    assert str(result.exception) == f"{bad}, column 'amount', row 3: value is 1e+300; expected 0 to 1e+12"
    assert FeatureStore(url).rows(["m1", "m2"]) == {}


def test_score_through_a_running_bank_as_an_operator(setup, served, pki):
    url, _ = setup
    report_consent(url, ["m1"])
    report_features(url, {"m1": ROWS})
    remote = invoke("bank", "score", "--merchant", "m1", "--bank", served, *as_party(pki, "ops"))
    local = invoke("bank", "score", "--merchant", "m1", "--db", url)
    assert remote["inputs_hash"] == local["inputs_hash"]
    assert remote["limit_fen"] == local["limit_fen"] == 400_000
    result = runner.invoke(app, ["bank", "credit", "draw", "CL-x", "5", "--bank", served, *as_party(pki, "ops")])
    assert isinstance(result.exception, RemoteError) and result.exception.kind == "not_found"
    as_platform = runner.invoke(
        app, ["bank", "score", "--merchant", "m1", "--bank", served, *as_party(pki, "platform-1")]
    )
    assert isinstance(as_platform.exception, RemoteError)
    assert str(as_platform.exception) == (
        "platform-1 (platform) may not call ScoringService/Score; it is open to operator"
    )
    outsider = runner.invoke(app, ["bank", "score", "--merchant", "m1", "--bank", served, "--ca", str(pki.ca)])
    assert isinstance(outsider.exception, RemoteError) and outsider.exception.code == "UNAVAILABLE"
    assert "TLS handshake" in str(outsider.exception)
    no_tls = runner.invoke(app, ["bank", "score", "--merchant", "m1", "--bank", served])
    assert "no TLS settings" in str(no_tls.exception)
    calls = {(c["caller"], c["method"], c["status"]) for c in invoke("bank", "calls", "--db", url)}
    assert ("ops", "ScoringService/Score", "OK") in calls
    assert ("ops", "CreditService/Draw", "NOT_FOUND") in calls
    assert ("platform-1", "ScoringService/Score", "PERMISSION_DENIED") in calls
