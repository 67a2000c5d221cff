"""Property-based fuzz of the bank's gRPC request handlers (issue 11), through a real server.

Hypothesis builds requests for every RPC of the bank's services from hostile values: empty, huge and control
character text, NaN, ±inf, 1e300, -1e6, extreme int64, unknown feature names, valid-looking ids
mixed in so some calls succeed. For every call:

- the answer is OK or a refusal a user can act on (INVALID_ARGUMENT, FAILED_PRECONDITION,
  NOT_FOUND, PERMISSION_DENIED), never UNKNOWN / INTERNAL (a traceback at the bank);
- it comes within the deadline (no hang);
- if the bank's state changed, the call log holds a completed record of that call.

Settings: `FUZZ_EXAMPLES` examples per database (default 150), no per-example deadline; it runs
in about 10-20 s on SQLite. The server runs plaintext with `insecure=True` (every role), so the
handlers themselves are what is fuzzed; roles are tested in test_security.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text

from federation.storage import session_scope
from proto import alerts_pb2, alerts_pb2_grpc, bank_pb2, bank_pb2_grpc, platform_pb2, platform_pb2_grpc
from server.credit.accounts import CreditBook
from server.db import bank_engine
from server.grpc_app import build_server
from server.registry import Registry
from server.security.calllog import CallRecord
from tests.bank.conftest import merchant_rows
from tests.conftest import free_port

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
ALLOWED = {"OK", "INVALID_ARGUMENT", "FAILED_PRECONDITION", "NOT_FOUND", "PERMISSION_DENIED"}
FEATURES = ["amount", "count", "avg_rating", "inventory_turnover", "growth", "first_month", "past_defaults"]
# Tables whose change is a change of the bank's state (the call log itself is not).
STATE = (
    "SELECT (SELECT COUNT(*) FROM bank_decisions), (SELECT COUNT(*) FROM bank_credit_entries),"
    " (SELECT COALESCE(SUM(principal_fen + interest_fen + limit_fen), 0) FROM bank_credit_accounts),"
    " (SELECT COUNT(*) FROM bank_consent_events), (SELECT COUNT(*) FROM bank_merchant_owners),"
    " (SELECT COUNT(*) || ':' || COALESCE(MAX(rows_sha256), '') FROM bank_reported_features),"
    " (SELECT COUNT(*) || ':' || COALESCE(SUM(deliveries), 0) FROM bank_alerts),"
    " (SELECT COUNT(*) FROM chain_anchor_leaves),"
    " (SELECT COUNT(*) || ':' || COALESCE(CAST(MAX(today) AS VARCHAR), '') FROM bank_clock),"
    " (SELECT COUNT(*) FROM bank_limit_changes),"
    " (SELECT COUNT(*) FROM bank_line_freezes), (SELECT COUNT(*) FROM bank_model_monitoring),"
    " (SELECT COUNT(*) FROM bank_tier_changes), (SELECT COUNT(*) FROM bank_applications)"
)

texts = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=80)
ids = st.one_of(st.sampled_from(["", "m1", "m2", "m9", "CL-none", "v1", "v9", "2026-01-01", " "]), texts)
floats = st.one_of(
    st.sampled_from([1e300, -1e300, -1e6, 0.0, 1000.0, 4.5, float("nan"), float("inf"), float("-inf")]),
    st.floats(allow_nan=True, allow_infinity=True),
)
int64 = st.one_of(st.sampled_from([0, 1, -1, 50_000, 2**62, -(2**63), 2**63 - 1]), st.integers(-(2**63), 2**63 - 1))
numbers = st.dictionaries(st.one_of(st.sampled_from(FEATURES), texts), floats, max_size=9)
labels = st.dictionaries(
    st.sampled_from(["month", "category"]) | texts, texts | st.sampled_from(["2026-01", "food"]), max_size=3
)
rows = st.one_of(st.just([]), st.lists(st.builds(bank_pb2.FeatureRow, numbers=numbers, labels=labels), max_size=4))
versions = st.one_of(st.sampled_from(["", "v1", "v9"]), texts)
times = st.one_of(st.sampled_from(["2026-03-02T08:10:00+00:00", "9999-12-31T23:59:59-12:00", "not a date", ""]), texts)
alert = st.builds(
    alerts_pb2.Alert,
    id=st.one_of(st.sampled_from(["a1", "b" * 32]), texts),
    device_id=st.one_of(st.just("exc-1"), texts, st.just("x" * 100_000)),
    rule=st.one_of(st.sampled_from(["idle", "geofence", "fuel"]), texts),
    severity=st.one_of(st.sampled_from(["warning", "critical"]), texts),
    state=st.one_of(st.sampled_from(["raised", "cleared"]), texts),
    raised_at=times,
    cleared_at=times,
    evidence_json=st.one_of(st.sampled_from(["{}", '{"lat":1}', "[]", "nope"]), texts),
    lease_id=st.one_of(st.just(""), texts),
)
valid_alert = st.builds(
    alerts_pb2.Alert,
    id=st.text(alphabet="0123456789abcdef", min_size=1, max_size=32),
    device_id=st.sampled_from(["exc-1", "exc-2"]),
    rule=st.sampled_from(["idle", "geofence", "fuel"]),
    severity=st.sampled_from(["warning", "critical"]),
    state=st.just("raised"),
    raised_at=st.just("2026-03-02T08:10:00+00:00"),
    evidence_json=st.just("{}"),
)
event = st.builds(
    platform_pb2.ConsentEvent, event_id=int64, merchant_id=ids, granted=st.booleans(), at=times, note=texts
)


def calls(account: str) -> st.SearchStrategy[tuple[str, Any]]:
    """(RPC name, request) pairs over every service."""
    accounts = st.one_of(st.just(account), ids)
    return st.one_of(
        st.tuples(
            st.just("Score"), st.builds(bank_pb2.ScoreRequest, merchant_id=ids, model_version=versions, rows=rows)
        ),
        st.tuples(
            st.just("Score"),
            st.builds(
                bank_pb2.ScoreRequest,
                merchant_id=st.sampled_from(["m1", "m2"]),
                model_version=st.sampled_from(["", "v1"]),
            ),
        ),
        st.tuples(
            st.just("ScoreBatch"),
            st.builds(
                bank_pb2.ScoreBatchRequest,
                model_version=ids,
                requests=st.lists(st.builds(bank_pb2.ScoreRequest, merchant_id=ids, rows=rows), max_size=4),
            ),
        ),
        st.tuples(st.just("Open"), st.builds(bank_pb2.OpenRequest, merchant_id=ids, model_version=versions, rows=rows)),
        st.tuples(st.just("Draw"), st.builds(bank_pb2.MoneyRequest, account_id=accounts, amount_fen=int64)),
        st.tuples(st.just("Repay"), st.builds(bank_pb2.MoneyRequest, account_id=accounts, amount_fen=int64)),
        st.tuples(st.just("Get"), st.builds(bank_pb2.AccountRequest, account_id=accounts, merchant_id=ids)),
        st.tuples(st.just("Accrue"), st.builds(bank_pb2.AccrueRequest, through=times | ids, account_id=accounts)),
        st.tuples(
            st.just("ReportConsent"),
            st.builds(platform_pb2.ConsentReport, platform=ids, events=st.lists(event, max_size=4)),
        ),
        st.tuples(
            st.just("ReportFeatures"),
            st.builds(
                platform_pb2.FeatureReport,
                platform=ids,
                merchants=st.lists(st.builds(platform_pb2.MerchantFeatures, merchant_id=ids, rows=rows), max_size=3),
            ),
        ),
        st.tuples(st.just("Deliver"), alert | valid_alert),
        st.tuples(
            st.just("Review"),
            st.builds(
                bank_pb2.ReviewRequest,
                month=st.sampled_from(["2026-03", "2026-13", ""]) | texts,
                model_version=versions,
            ),
        ),
        st.tuples(st.just("Clock"), st.just(bank_pb2.ClockRequest())),
        st.tuples(
            st.just("AdvanceClock"),
            st.builds(
                bank_pb2.AdvanceClockRequest,
                days=st.sampled_from([0, 1, 31, -5, 3661]) | st.integers(-(2**31), 2**31 - 1),
            ),
        ),
        st.tuples(
            st.just("SetClock"),
            st.builds(
                bank_pb2.SetClockRequest,
                date=st.sampled_from(["2026-01-01", "2099-12-31", "9999-12-31", "0001-01-01", "2026-02-30"]) | texts,
            ),
        ),
        st.tuples(
            st.just("Metrics"),
            st.builds(
                bank_pb2.MetricsRequest,
                month=st.sampled_from(["", "2026-03", "2999-12"]) | texts,
                months=st.integers(-(2**31), 2**31 - 1),
            ),
        ),
        st.tuples(
            st.just("Applications"),
            st.builds(
                bank_pb2.ApplicationsRequest,
                month=st.sampled_from(["", "2026-03"]) | texts,
                merchant_id=ids,
                outcome=st.sampled_from(["", "approved", "nope"]) | texts,
                limit=st.integers(-(2**31), 2**31 - 1),
            ),
        ),
        st.tuples(
            st.just("Monitor"),
            st.builds(
                bank_pb2.MonitorRequest,
                month=st.sampled_from(["", "2026-03"]) | texts,
                model_version=versions,
                refresh=st.booleans(),
            ),
        ),
        st.tuples(st.just("Unfreeze"), st.builds(bank_pb2.UnfreezeRequest, account_id=accounts)),
        st.tuples(
            st.just("List"),
            st.builds(
                alerts_pb2.ListRequest,
                device_id=ids,
                state=st.sampled_from(["", "raised", "x"]) | texts,
                limit=st.integers(0, 2**32 - 1),
            ),
        ),
    )


class Bank:
    def __init__(self, url: str, address: str, account: str) -> None:
        self.engine = bank_engine(url)
        self.account = account
        self.channel = grpc.insecure_channel(address)
        self.methods = {
            "Score": bank_pb2_grpc.ScoringServiceStub(self.channel).Score,
            "ScoreBatch": bank_pb2_grpc.ScoringServiceStub(self.channel).ScoreBatch,
            **{
                n: getattr(bank_pb2_grpc.CreditServiceStub(self.channel), n)
                for n in ("Open", "Draw", "Repay", "Get", "Accrue")
            },
            **{
                n: getattr(platform_pb2_grpc.PlatformServiceStub(self.channel), n)
                for n in ("ReportConsent", "ReportFeatures")
            },
            **{n: getattr(alerts_pb2_grpc.AlertServiceStub(self.channel), n) for n in ("Deliver", "List")},
            **{
                n: getattr(bank_pb2_grpc.LoanBookServiceStub(self.channel), n)
                for n in (
                    "Review",
                    "Clock",
                    "AdvanceClock",
                    "SetClock",
                    "Metrics",
                    "Applications",
                    "Monitor",
                    "Unfreeze",
                )
            },
        }

    def state(self) -> tuple[Any, ...]:
        with self.engine.connect() as conn:
            return tuple(conn.execute(text(STATE)).one())

    def completed_calls(self) -> int:
        with session_scope(self.engine) as s:
            return int(s.scalar(select(func.count()).select_from(CallRecord).where(CallRecord.status == "OK")) or 0)


@pytest.fixture
def bank(db_url: str, make_model, tmp_path) -> Iterator[Bank]:
    from server.credit.promotion import promote
    from tests.bank.conftest import report_features
    from tests.consent_helpers import report_consent

    registry = Registry(db_url, tmp_path / "store")
    registry.register(make_model(0.03), anchor=False)
    promote(registry, "v1")
    report_consent(db_url, ["m1", "m2"], platform="insecure-caller")
    report_features(db_url, {"m1": merchant_rows([1000.0, 2000.0, 3000.0])}, platform="insecure-caller")
    account = CreditBook(db_url, registry=registry).open("m1", merchant_rows([1000.0, 2000.0, 3000.0])).account_id
    server = build_server(f"127.0.0.1:{free_port()}", db_url, None, tmp_path / "store", insecure=True)
    server.start()
    fuzzed = Bank(db_url, f"127.0.0.1:{server.bound_port}", account)
    try:
        yield fuzzed
    finally:
        fuzzed.channel.close()
        server.stop(grace=None)


@pytest.mark.slow
def test_no_request_yields_a_traceback_a_hang_or_an_unrecorded_change(bank: Bank) -> None:
    seen: dict[str, set[str]] = {}

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(call=calls(bank.account))
    def check(call: tuple[str, Any]) -> None:
        name, request = call
        before, logged = bank.state(), bank.completed_calls()
        try:
            bank.methods[name](request, timeout=10)
            code, details = "OK", ""
        except grpc.RpcError as exc:
            code, details = exc.code().name, exc.details() or ""
        seen.setdefault(name, set()).add(code)
        assert code in ALLOWED, f"{name} answered {code}: {details}"
        assert details.count("\n") == 0 and len(details) < 1000, details
        if bank.state() != before:
            assert bank.completed_calls() == logged + 1, f"{name} changed the bank's state without a call record"

    for _ in range(4):  # Hypothesis picks RPCs at random: run again (fresh examples) until each was called
        check()
        if len(seen) == 19:
            break
    assert len(seen) == 19, seen  # every RPC was exercised
