"""The bank's gRPC services on a real in-process server on a free loopback port."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest

from proto import bank_pb2, bank_pb2_grpc
from proto.channel import ClientTls, connect
from server.credit.accounts import CreditBook
from server.credit.promotion import promote
from server.grpc_app import TlsFiles, build_server, rows_to_proto
from server.registry import Registry
from tests.bank.conftest import merchant_rows
from tests.bank.tls import make_pki
from tests.conftest import free_port
from tests.consent_helpers import report_consent

ROWS = merchant_rows([1000.0, 2000.0, 3000.0])


@pytest.fixture
def bank_db(tmp_path, make_model):
    url = f"sqlite:///{tmp_path / 'bank.db'}"
    registry = Registry(url, tmp_path / "store")
    registry.register(make_model(0.03), anchor=False)
    promote(registry, "v1")
    report_consent(url, ["m1", "m2"])
    return url


@pytest.fixture
def channel(bank_db, tmp_path):
    server = build_server(f"127.0.0.1:{free_port()}", bank_db, model_dir_root=tmp_path / "store")
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{server.bound_port}") as chan:
        yield chan
    server.stop(grace=None)


def test_score_over_grpc_matches_in_process_and_is_recorded(channel, bank_db, tmp_path):
    from server.scoring import Scorer

    reply = bank_pb2_grpc.ScoringServiceStub(channel).Score(
        bank_pb2.ScoreRequest(merchant_id="m1", model_version="v1", rows=rows_to_proto(ROWS)), timeout=10
    )
    local = Scorer(bank_db, registry=Registry(bank_db, tmp_path / "store")).evaluate([("m1", ROWS)], "v1")[0]
    assert (reply.band, reply.limit_fen, reply.turnover_fen, reply.model_version) == ("B", 400_000, 200_000, "v1")
    assert reply.default_probability == pytest.approx(0.03, abs=1e-6)
    assert reply.inputs_hash == local.inputs_hash
    assert reply.decision_id > 0


def test_batch_reports_each_refusal_and_scores_the_rest(channel):
    stub = bank_pb2_grpc.ScoringServiceStub(channel)
    request = bank_pb2.ScoreBatchRequest(
        requests=[
            bank_pb2.ScoreRequest(merchant_id="m1", rows=rows_to_proto(ROWS)),
            bank_pb2.ScoreRequest(merchant_id="stranger", rows=rows_to_proto(ROWS)),
            bank_pb2.ScoreRequest(merchant_id="m2", rows=rows_to_proto(ROWS)),
        ]
    )
    replies = stub.ScoreBatch(request, timeout=10).replies
    assert [(r.merchant_id, r.limit_fen, r.error_code) for r in replies] == [
        ("m1", 400_000, ""),
        ("stranger", 0, "FAILED_PRECONDITION"),
        ("m2", 400_000, ""),
    ]
    assert "has not consented" in replies[1].error


def test_score_without_consent_is_failed_precondition(channel):
    with pytest.raises(grpc.RpcError) as info:
        bank_pb2_grpc.ScoringServiceStub(channel).Score(
            bank_pb2.ScoreRequest(merchant_id="stranger", rows=rows_to_proto(ROWS)), timeout=10
        )
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert info.value.details() == "merchant 'stranger' has not consented (or has withdrawn consent) to credit scoring"


def test_unknown_model_version_is_not_found(channel):
    with pytest.raises(grpc.RpcError) as info:
        bank_pb2_grpc.ScoringServiceStub(channel).Score(
            bank_pb2.ScoreRequest(merchant_id="m1", model_version="v7", rows=rows_to_proto(ROWS)), timeout=10
        )
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_credit_line_over_grpc(channel, bank_db, tmp_path):
    stub = bank_pb2_grpc.CreditServiceStub(channel)
    opened = stub.Open(bank_pb2.OpenRequest(merchant_id="m1", rows=rows_to_proto(ROWS)), timeout=10)
    assert (opened.limit_fen, opened.available_fen, opened.model_version) == (400_000, 400_000, "v1")
    stub.Draw(bank_pb2.MoneyRequest(account_id=opened.account_id, amount_fen=300_000), timeout=10)
    with pytest.raises(grpc.RpcError) as over:
        stub.Draw(bank_pb2.MoneyRequest(account_id=opened.account_id, amount_fen=100_001), timeout=10)
    assert over.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "exceeds the available 100000 fen" in over.value.details()
    with pytest.raises(grpc.RpcError) as unknown:
        stub.Repay(bank_pb2.MoneyRequest(account_id="CL-unknown", amount_fen=5), timeout=10)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    repaid = stub.Repay(bank_pb2.MoneyRequest(account_id=opened.account_id, amount_fen=50_000), timeout=10)
    assert (repaid.principal_fen, repaid.available_fen) == (250_000, 150_000)
    shown = stub.Get(bank_pb2.AccountRequest(merchant_id="m1"), timeout=10)
    assert shown.account_id == opened.account_id and shown.principal_fen == 250_000
    with pytest.raises(grpc.RpcError) as bad_date:
        stub.Accrue(bank_pb2.AccrueRequest(through="yesterday"), timeout=10)
    assert bad_date.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # nothing the refusals touched changed: the ledger holds open, draw, repay only
    book = CreditBook(bank_db, registry=Registry(bank_db, tmp_path / "store"))
    assert [e.kind for e in book.entries(opened.account_id)] == ["open", "draw", "repay"]


def test_accrue_over_grpc_posts_yesterdays_interest(channel, bank_db, tmp_path):
    book = CreditBook(bank_db, registry=Registry(bank_db, tmp_path / "store"))
    yesterday = datetime.now(UTC) - timedelta(days=1)
    line = book.open("m1", ROWS, now=yesterday)
    book.draw(line.account_id, 365_000, now=yesterday)
    reply = bank_pb2_grpc.CreditServiceStub(channel).Accrue(bank_pb2.AccrueRequest(), timeout=10)
    assert (reply.accounts, reply.interest_fen) == (1, 90)  # 365,000 fen at 9 % for one day


def test_mutual_tls_accepts_the_bank_ca_and_rejects_plaintext(bank_db, tmp_path):
    pki = make_pki(tmp_path / "pki")
    server = build_server(
        f"127.0.0.1:{free_port()}",
        bank_db,
        TlsFiles(pki["server_cert"], pki["server_key"], pki["ca"]),
        model_dir_root=tmp_path / "store",
    )
    server.start()
    address = f"127.0.0.1:{server.bound_port}"
    try:
        with connect(address, ClientTls(pki["ca"], pki["client_cert"], pki["client_key"])) as chan:
            reply = bank_pb2_grpc.ScoringServiceStub(chan).Score(
                bank_pb2.ScoreRequest(merchant_id="m1", rows=rows_to_proto(ROWS)), timeout=10
            )
            assert reply.limit_fen == 400_000
        with grpc.insecure_channel(address) as chan, pytest.raises(grpc.RpcError) as plain:
            bank_pb2_grpc.ScoringServiceStub(chan).Score(
                bank_pb2.ScoreRequest(merchant_id="m1", rows=rows_to_proto(ROWS)), timeout=5
            )
        assert plain.value.code() == grpc.StatusCode.UNAVAILABLE
        with connect(address, ClientTls(pki["ca"])) as chan, pytest.raises(grpc.RpcError) as no_cert:
            bank_pb2_grpc.ScoringServiceStub(chan).Score(
                bank_pb2.ScoreRequest(merchant_id="m1", rows=rows_to_proto(ROWS)), timeout=5
            )
        assert no_cert.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(grace=None)


def test_server_hosts_the_alert_service_when_present(bank_db, tmp_path):
    pytest.importorskip("server.alerts")
    server = build_server("127.0.0.1:0", bank_db, model_dir_root=tmp_path / "store")
    assert "AlertService" in server.services
    server.stop(grace=None)


def test_a_malformed_merchant_fails_alone_in_a_batch(channel):
    bad = [dict(row, amount="lots") for row in ROWS]
    missing = [{k: v for k, v in row.items() if k != "avg_rating"} for row in ROWS]
    request = bank_pb2.ScoreBatchRequest(
        requests=[
            bank_pb2.ScoreRequest(merchant_id="m1", rows=rows_to_proto(bad)),
            bank_pb2.ScoreRequest(merchant_id="m2", rows=rows_to_proto(missing)),
            bank_pb2.ScoreRequest(merchant_id="m2", rows=rows_to_proto(ROWS)),
        ]
    )
    replies = bank_pb2_grpc.ScoringServiceStub(channel).ScoreBatch(request, timeout=10).replies
    assert [r.error_code for r in replies] == ["INVALID_ARGUMENT", "INVALID_ARGUMENT", ""]
    assert replies[0].error == "merchant 'm1': feature 'amount' is 'lots'; expected a number"
    assert replies[1].error.startswith("merchant 'm2': feature 'avg_rating' missing")
    assert replies[2].limit_fen == 400_000
