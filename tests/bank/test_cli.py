"""The bank and consent commands from the shell (typer's runner, same process)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from proto.channel import RemoteError
from server.credit.errors import BankError
from server.grpc_app import build_server
from tests.bank.conftest import merchant_rows
from tests.conftest import free_port
from tests.consent_helpers import report_consent
from yinqi.cli import app

runner = CliRunner()


@pytest.fixture
def setup(tmp_path, make_model):
    url = f"sqlite:///{tmp_path / 'bank.db'}"
    features = tmp_path / "features.csv"
    frame = pd.DataFrame(merchant_rows([1000.0, 2000.0, 3000.0]))
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


def invoke(*args: str) -> dict:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_consent_grant_withdraw_and_history(setup):
    url, _ = setup
    invoke("client", "consent", "grant", "m1", "m2", "--db", url, "--note", "form 7")
    invoke("client", "consent", "withdraw", "m2", "--db", url)
    current = invoke("client", "consent", "list", "--db", url)
    assert [(r["merchant_id"], r["granted"]) for r in current] == [("m1", True), ("m2", False)]
    assert len(invoke("client", "consent", "list", "--history", "--db", url)) == 3


def test_score_open_draw_repay_show(setup):
    url, features = setup
    report_consent(url, ["m1"])
    scored = invoke("bank", "score", "--model", "v1", "--merchant", "m1", "--features", str(features), "--db", url)
    assert (scored["band"], scored["limit_fen"]) == ("B", 400_000)
    opened = invoke("bank", "credit", "open", "--merchant", "m1", "--features", str(features), "--db", url)
    account = opened["account_id"]
    invoke("bank", "credit", "draw", account, "250000", "--db", url)
    repaid = invoke("bank", "credit", "repay", account, "50000", "--db", url)
    assert (repaid["principal_fen"], repaid["available_fen"]) == (200_000, 200_000)
    shown = invoke("bank", "credit", "show", "--merchant", "m1", "--entries", "--db", url)
    assert [e["kind"] for e in shown["entries"]] == ["open", "draw", "repay"]


def test_refusals_are_one_line_errors(setup):
    url, features = setup
    result = runner.invoke(app, ["bank", "score", "--merchant", "m2", "--features", str(features), "--db", url])
    assert isinstance(result.exception, BankError)
    assert str(result.exception) == "merchant 'm2' has not consented (or has withdrawn consent) to credit scoring"
    result = runner.invoke(app, ["bank", "credit", "repay", "CL-x", "1", "--db", url])
    assert str(result.exception) == "credit account 'CL-x' not found"


def test_consent_reaches_the_bank_over_the_wire_and_scoring_follows_it(setup, tmp_path):
    url, features = setup
    platform_db = f"sqlite:///{tmp_path / 'platform.db'}"
    server = build_server(f"127.0.0.1:{free_port()}", url, model_dir_root=tmp_path / "store")
    server.start()
    bank = f"127.0.0.1:{server.bound_port}"
    report = ["client", "consent", "report", "--bank", bank, "--platform", "p1", "--insecure", "--db", platform_db]
    try:
        invoke("client", "consent", "grant", "m1", "--db", platform_db)
        assert invoke(*report) == {"received": 1, "stored": 1}
        assert invoke(*report) == {"received": 1, "stored": 0}  # redelivery stores nothing twice
        assert (
            invoke("bank", "score", "--merchant", "m1", "--features", str(features), "--db", url)["limit_fen"]
            == 400_000
        )
        invoke("client", "consent", "withdraw", "m1", "--db", platform_db)
        assert invoke(*report) == {"received": 2, "stored": 1}
        refused = runner.invoke(app, ["bank", "score", "--merchant", "m1", "--features", str(features), "--db", url])
        assert "has not consented" in str(refused.exception)
    finally:
        server.stop(grace=None)


def test_score_through_a_running_bank(setup, tmp_path):
    url, features = setup
    report_consent(url, ["m1"])
    server = build_server(f"127.0.0.1:{free_port()}", url, model_dir_root=tmp_path / "store")
    server.start()
    try:
        remote = invoke(
            "bank",
            "score",
            "--merchant",
            "m1",
            "--features",
            str(features),
            "--bank",
            f"127.0.0.1:{server.bound_port}",
            "--insecure",
        )
        local = invoke("bank", "score", "--merchant", "m1", "--features", str(features), "--db", url)
        assert remote["inputs_hash"] == local["inputs_hash"]
        assert remote["limit_fen"] == local["limit_fen"] == 400_000
        result = runner.invoke(
            app, ["bank", "credit", "draw", "CL-x", "5", "--bank", f"127.0.0.1:{server.bound_port}", "--insecure"]
        )
        assert isinstance(result.exception, RemoteError) and result.exception.kind == "not_found"
    finally:
        server.stop(grace=None)
