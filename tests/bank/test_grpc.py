"""The bank's gRPC services on a real in-process server with mutual TLS: an operator scores and
lends from the features the merchant's platform reported; requests carrying their own rows and
implausible reports are refused, naming the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest

from proto import bank_pb2, bank_pb2_grpc, platform_pb2, platform_pb2_grpc
from proto.channel import connect
from server.credit.accounts import CreditBook
from server.feature_store import FeatureStore
from server.messages import rows_to_proto
from server.registry import Registry
from tests.bank.conftest import merchant_rows

ROWS = merchant_rows([1000.0, 2000.0, 3000.0])


@pytest.fixture
def operator(running_bank, pki):
    with connect(running_bank, pki.tls("ops")) as channel:
        yield channel


@pytest.fixture
def platform(running_bank, pki):
    with connect(running_bank, pki.tls("platform-1")) as channel:
        yield platform_pb2_grpc.PlatformServiceStub(channel)


def test_score_over_grpc_uses_the_reported_rows_and_matches_in_process(operator, bank_db, tmp_path):
    from server.scoring import Scorer

    reply = bank_pb2_grpc.ScoringServiceStub(operator).Score(
        bank_pb2.ScoreRequest(merchant_id="m1", model_version="v1"), timeout=10
    )
    reported = FeatureStore(bank_db).rows_of("m1")
    local = Scorer(bank_db, registry=Registry(bank_db, tmp_path / "store")).evaluate([("m1", reported)], "v1")[0]
    assert (reply.band, reply.limit_fen, reply.turnover_fen, reply.model_version) == ("B", 400_000, 200_000, "v1")
    assert reply.default_probability == pytest.approx(0.03, abs=1e-6)
    assert reply.inputs_hash == local.inputs_hash
    assert reply.decision_id > 0


def _scored_in_batches(operator, bank_db, count: int) -> list[str]:
    """`count` consented merchants with reported features, scored in the largest batches."""
    from server.grpc_app import MAX_BATCH
    from tests.consent_helpers import report_consent

    merchants = [f"batch-{k:05d}" for k in range(count)]
    report_consent(bank_db, merchants)
    FeatureStore(bank_db).report("platform-1", dict.fromkeys(merchants, merchant_rows([1000.0, 2000.0, 3000.0])))
    for start in range(0, count, MAX_BATCH):
        part = merchants[start : start + MAX_BATCH]
        request = bank_pb2.ScoreBatchRequest(requests=[bank_pb2.ScoreRequest(merchant_id=m) for m in part])
        reply = bank_pb2_grpc.ScoringServiceStub(operator).ScoreBatch(request, timeout=60)
        assert len(reply.replies) == len(part) and all(r.limit_fen == 400_000 for r in reply.replies)
        assert reply.ByteSize() < 2 * 1024 * 1024  # half of gRPC's default 4 MiB a message
    return merchants


def test_the_largest_batch_answers_within_a_message_and_a_larger_one_stores_nothing(operator, bank_db):
    # Reproduction: a batch of up to 10,000 merchants was taken, scored and stored, but its
    # reply (0.8 kB a merchant with a fitted model's reasons, 7.9 MB) was larger than the
    # caller's 4 MiB a message: RESOURCE_EXHAUSTED for decisions the bank had made, and a retry
    # made them again. A batch is now at most 2,000, and a larger one stores nothing.
    from sqlalchemy import func, select

    from federation.storage import session_scope
    from server.db import bank_engine
    from server.grpc_app import MAX_BATCH
    from server.scoring import Decision

    def decisions() -> int:
        with session_scope(bank_engine(bank_db)) as session:
            return session.scalar(select(func.count()).select_from(Decision)) or 0

    before = decisions()
    request = bank_pb2.ScoreBatchRequest(
        requests=[bank_pb2.ScoreRequest(merchant_id=f"x{k}") for k in range(MAX_BATCH + 1)]
    )
    with pytest.raises(grpc.RpcError) as info:
        bank_pb2_grpc.ScoringServiceStub(operator).ScoreBatch(request, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"send at most {MAX_BATCH} at once" in info.value.details()
    assert decisions() == before
    _scored_in_batches(operator, bank_db, MAX_BATCH)
    assert decisions() == before + MAX_BATCH


def test_the_longest_listing_of_applications_answers_within_a_message(operator, bank_db):
    # Reproduction: `yinqi bank applications --limit 10000 --bank …` asked for a reply of about
    # 8 MB (0.8 kB an application), over the caller's 4 MiB a message.
    from server.loanbook.book import MAX_LISTED

    _scored_in_batches(operator, bank_db, MAX_LISTED)
    loans = bank_pb2_grpc.LoanBookServiceStub(operator)
    listed = loans.Applications(bank_pb2.ApplicationsRequest(limit=MAX_LISTED), timeout=30)
    assert len(listed.applications) == MAX_LISTED
    assert listed.ByteSize() < 2 * 1024 * 1024
    with pytest.raises(grpc.RpcError) as info:
        loans.Applications(bank_pb2.ApplicationsRequest(limit=MAX_LISTED + 1), timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_request_with_its_own_rows_is_refused(operator):
    invented = merchant_rows([-1e6, -1e6, -1e6])
    with pytest.raises(grpc.RpcError) as info:
        bank_pb2_grpc.ScoringServiceStub(operator).Score(
            bank_pb2.ScoreRequest(merchant_id="m1", rows=rows_to_proto(invented)), timeout=10
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == (
        "merchant 'm1': rows are not accepted; the bank scores the features the merchant's platform reported"
    )
    with pytest.raises(grpc.RpcError) as opened:
        bank_pb2_grpc.CreditServiceStub(operator).Open(
            bank_pb2.OpenRequest(merchant_id="m1", rows=rows_to_proto(invented)), timeout=10
        )
    assert opened.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_batch_reports_each_refusal_and_scores_the_rest(operator):
    request = bank_pb2.ScoreBatchRequest(
        requests=[
            bank_pb2.ScoreRequest(merchant_id="m1"),
            bank_pb2.ScoreRequest(merchant_id="stranger"),
            bank_pb2.ScoreRequest(merchant_id="m3"),
            bank_pb2.ScoreRequest(merchant_id="m2"),
        ]
    )
    replies = bank_pb2_grpc.ScoringServiceStub(operator).ScoreBatch(request, timeout=10).replies
    assert [(r.merchant_id, r.limit_fen, r.error_code) for r in replies] == [
        ("m1", 400_000, ""),
        ("stranger", 0, "NOT_FOUND"),
        ("m3", 0, "FAILED_PRECONDITION"),
        ("m2", 400_000, ""),
    ]
    assert replies[1].error == "merchant 'stranger': no features reported by its platform"
    assert "has not consented" in replies[2].error


def test_score_without_consent_is_failed_precondition(operator):
    with pytest.raises(grpc.RpcError) as info:
        bank_pb2_grpc.ScoringServiceStub(operator).Score(bank_pb2.ScoreRequest(merchant_id="m3"), timeout=10)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert info.value.details() == "merchant 'm3' has not consented (or has withdrawn consent) to credit scoring"


def test_unknown_model_version_is_not_found(operator):
    with pytest.raises(grpc.RpcError) as info:
        bank_pb2_grpc.ScoringServiceStub(operator).Score(
            bank_pb2.ScoreRequest(merchant_id="m1", model_version="v7"), timeout=10
        )
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_credit_line_over_grpc(operator, bank_db, tmp_path):
    stub = bank_pb2_grpc.CreditServiceStub(operator)
    opened = stub.Open(bank_pb2.OpenRequest(merchant_id="m1"), timeout=10)
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


def test_accrue_over_grpc_posts_yesterdays_interest(operator, bank_db, tmp_path):
    book = CreditBook(bank_db, registry=Registry(bank_db, tmp_path / "store"))
    yesterday = datetime.now(UTC) - timedelta(days=1)
    line = book.open("m1", ROWS, now=yesterday)
    book.draw(line.account_id, 365_000, now=yesterday)
    reply = bank_pb2_grpc.CreditServiceStub(operator).Accrue(bank_pb2.AccrueRequest(), timeout=10)
    assert (reply.accounts, reply.interest_fen) == (1, 90)  # 365,000 fen at 9 % for one day


def test_a_platform_reports_features_that_scoring_then_uses(platform, operator, bank_db):
    richer = merchant_rows([10_000.0, 20_000.0, 30_000.0])
    ack = platform.ReportFeatures(
        platform_pb2.FeatureReport(
            merchants=[platform_pb2.MerchantFeatures(merchant_id="m1", rows=rows_to_proto(richer))]
        ),
        timeout=10,
    )
    assert (ack.received, ack.changed) == (1, 1)
    scored = bank_pb2_grpc.ScoringServiceStub(operator).Score(bank_pb2.ScoreRequest(merchant_id="m1"), timeout=10)
    assert scored.turnover_fen == 2_000_000  # mean of the latest three months, in fen
    again = platform.ReportFeatures(
        platform_pb2.FeatureReport(
            merchants=[platform_pb2.MerchantFeatures(merchant_id="m1", rows=rows_to_proto(richer))]
        ),
        timeout=10,
    )
    assert (again.received, again.changed) == (1, 0)


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        (1e300, "merchant 'm1', row 3: feature 'amount' is 1e+300; expected 0 to 1e+12"),
        (-1e6, "merchant 'm1', row 3: feature 'amount' is -1e+06; expected 0 to 1e+12"),
        (float("inf"), "merchant 'm1', row 3: feature 'amount' is inf; expected a finite number"),
        (float("nan"), "merchant 'm1', row 3: feature 'amount' is nan; expected a finite number"),
    ],
)
def test_an_implausible_value_refuses_the_whole_report_naming_the_field(platform, bank_db, amount, expected):
    before = FeatureStore(bank_db).rows_of("m1")
    rows = merchant_rows([5000.0, 5000.0, amount])
    report = platform_pb2.FeatureReport(
        merchants=[
            platform_pb2.MerchantFeatures(merchant_id="m2", rows=rows_to_proto(merchant_rows([9.0, 9.0, 9.0]))),
            platform_pb2.MerchantFeatures(merchant_id="m1", rows=rows_to_proto(rows)),
        ]
    )
    with pytest.raises(grpc.RpcError) as info:
        platform.ReportFeatures(report, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == expected
    assert FeatureStore(bank_db).rows_of("m1") == before
    assert FeatureStore(bank_db).rows_of("m2") == before  # m2 came first and was not stored either


def test_a_started_server_can_load_the_promoted_model_before_its_first_call(bank_db, pki, tmp_path):
    """`warm_model` (what `yinqi bank serve` runs once started): the promoted version is loaded
    into the server's own scorer, so that the first application does not load it, and the heap
    as it then is leaves the collector's full passes; with none promoted, nothing is loaded and
    nothing is raised (the first request says why)."""
    import gc

    from server.grpc_app import build_server, warm_model
    from tests.conftest import free_port

    server = build_server(f"127.0.0.1:{free_port()}", bank_db, pki.server, tmp_path / "store")
    assert server.scorer._models == {}
    gc.unfreeze()
    try:
        assert gc.get_freeze_count() == 0
        assert warm_model(server.scorer) == "v1"
        assert gc.get_freeze_count() > 10_000  # modules, torch, the model: out of the full passes
    finally:
        gc.unfreeze()  # the rest of the test session as it was
    assert set(server.scorer._models) == {"v1"}
    empty = build_server(f"127.0.0.1:{free_port()}", f"sqlite:///{tmp_path / 'empty.db'}", pki.server, tmp_path / "s2")
    assert warm_model(empty.scorer) is None and empty.scorer._models == {}
