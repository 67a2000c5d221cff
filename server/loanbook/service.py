"""The loan book over gRPC (`LoanBookService`) and its messages.

Reviews, moving the clock, refreshing the monitoring and lifting a hold are the operator's
(`server.security.roles`); reading the clock, metrics and applications is also open to
auditors. Each handler calls `LoanBook`; a refusal is a `BankError` the guard turns into its
status with the one-line message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import grpc

from proto import bank_pb2, bank_pb2_grpc
from server.credit.errors import BankError
from server.credit.rules import TIERS
from server.loanbook.applications import ApplicationView
from server.loanbook.book import LoanBook
from server.loanbook.review import ReviewResult
from server.messages import account_to_proto, reasons_to_proto
from server.monitoring import MonitorRow
from server.security.guard import current_caller


# -- messages --------------------------------------------------------------------------------
def monitor_row_to_proto(row: MonitorRow | Mapping[str, Any]) -> bank_pb2.MonitorRow:
    r = row if isinstance(row, MonitorRow) else MonitorRow(**row)
    message = bank_pb2.MonitorRow(
        model_version=r.model_version,
        month=r.month,
        metric=r.metric,
        population=r.population,
        level=r.level,
        alert=r.alert,
        detail_json=json.dumps(r.detail, sort_keys=True),
    )
    if r.value is not None:
        message.value = r.value
    return message


def review_to_proto(result: ReviewResult) -> bank_pb2.ReviewReply:
    return bank_pb2.ReviewReply(
        month=result.month,
        on=result.on,
        model_version=result.model_version,
        lines=result.lines,
        already=result.already,
        reviewed=result.reviewed,
        raised=result.raised,
        cut=result.cut,
        kept=result.kept,
        frozen=result.frozen,
        unfrozen=result.unfrozen,
        skipped=result.skipped,
        seconds=result.seconds,
        workers=result.workers,
        examples=[
            bank_pb2.LimitExample(
                account_id=e["account_id"],
                merchant_id=e["merchant_id"],
                action=e["action"],
                old_limit_fen=e["old_limit_fen"],
                new_limit_fen=e["new_limit_fen"],
                band=e["band"],
                default_probability=e["pd"],
                reasons=reasons_to_proto(e["reasons"]),
            )
            for e in result.examples
        ],
        alerts=[monitor_row_to_proto(a) for a in result.alerts],
    )


def clock_to_proto(state: Mapping[str, Any]) -> bank_pb2.ClockReply:
    return bank_pb2.ClockReply(
        today=state["today"],
        month=state["month"],
        source=state["source"],
        changed_at=state["changed_at"],
        changed_by=state["changed_by"],
        moved_from=state["moved_from"],
        interest_fen=state["interest_fen"],
        tier_changes=state["tier_changes"],
        months_closed=list(state["months_closed"]),
    )


def _tiers(amounts: Mapping[str, int]) -> bank_pb2.TierAmounts:
    return bank_pb2.TierAmounts(**{t: int(amounts.get(t, 0)) for t in TIERS})


def month_to_proto(m: Mapping[str, Any]) -> bank_pb2.MonthMetrics:
    message = bank_pb2.MonthMetrics(
        month=m["month"],
        applications=m["applications"],
        approved=m["approved"],
        declined=m["declined"],
        referred=m["referred"],
        stocks_as_of=m["stocks_as_of"] or "",
        stocks_final=m["stocks_final"],
        reviews_raised=m["reviews"]["raise"],
        reviews_cut=m["reviews"]["cut"],
        reviews_kept=m["reviews"]["keep"],
        new_draws=m["new_draws"],
        new_draws_fen=m["new_draws_fen"],
        repaid_fen=m["repaid_fen"],
        alerts=[monitor_row_to_proto(a) for a in m["alerts"]],
    )
    for name in (
        "approval_rate",
        "npl_ratio",
        "average_approved_limit_fen",
        "utilisation",
        "lines",
        "total_limit_fen",
        "drawn_fen",
        "npl_fen",
    ):
        if m[name] is not None:
            setattr(message, name, m[name])
    if m["balances_by_tier_fen"] is not None:
        message.balances_by_tier_fen.CopyFrom(_tiers(m["balances_by_tier_fen"]))
    if m["draws_by_tier"] is not None:
        message.draws_by_tier.CopyFrom(_tiers(m["draws_by_tier"]))
    return message


def metrics_to_proto(result: Mapping[str, Any]) -> bank_pb2.MetricsReply:
    return bank_pb2.MetricsReply(
        today=result["today"],
        clock=result["clock"],
        month=result["month"],
        months=[month_to_proto(m) for m in result["months"]],
    )


def application_to_proto(a: ApplicationView) -> bank_pb2.ApplicationRecord:
    return bank_pb2.ApplicationRecord(
        id=a.id,
        merchant_id=a.merchant_id,
        month=a.month,
        applied_at=a.applied_at,
        purpose=a.purpose,
        outcome=a.outcome,
        decision_id=a.decision_id,
        account_id=a.account_id,
        model_version=a.model_version,
        inputs_hash=a.inputs_hash,
        default_probability=a.pd,
        band=a.band,
        limit_fen=a.limit_fen,
        annual_rate_bp=a.annual_rate_bp,
        reasons=reasons_to_proto(a.reasons),
    )


def _text(value: str, field: str, limit: int) -> str:
    if len(value) > limit or not value.isprintable():
        raise BankError(f"{field}: expected at most {limit} printable characters, got {len(value)}")
    return value


# -- the service -----------------------------------------------------------------------------
class LoanBookService(bank_pb2_grpc.LoanBookServiceServicer):
    """Reviews, the bank's clock, metrics, applications, monitoring, holds."""

    def __init__(self, loans: LoanBook) -> None:
        self.loans = loans

    def Review(self, request: bank_pb2.ReviewRequest, context: grpc.ServicerContext) -> bank_pb2.ReviewReply:
        month = _text(request.month, "month", 7)
        version = _text(request.model_version, "model_version", 32)
        return review_to_proto(self.loans.review(month, version or None))

    def Clock(self, request: bank_pb2.ClockRequest, context: grpc.ServicerContext) -> bank_pb2.ClockReply:
        return clock_to_proto(self.loans.clock())

    def AdvanceClock(self, request: bank_pb2.AdvanceClockRequest, context: grpc.ServicerContext) -> bank_pb2.ClockReply:
        return clock_to_proto(self.loans.advance(int(request.days), current_caller().name))

    def SetClock(self, request: bank_pb2.SetClockRequest, context: grpc.ServicerContext) -> bank_pb2.ClockReply:
        day = _text(request.date, "date", 10)
        return clock_to_proto(self.loans.set_date(day, current_caller().name))

    def Metrics(self, request: bank_pb2.MetricsRequest, context: grpc.ServicerContext) -> bank_pb2.MetricsReply:
        month = _text(request.month, "month", 7)
        return metrics_to_proto(self.loans.metrics(month or None, int(request.months)))

    def Applications(
        self, request: bank_pb2.ApplicationsRequest, context: grpc.ServicerContext
    ) -> bank_pb2.ApplicationsReply:
        found = self.loans.applications(
            _text(request.month, "month", 7) or None,
            _text(request.merchant_id, "merchant_id", 128) or None,
            _text(request.outcome, "outcome", 16) or None,
            int(request.limit),
        )
        return bank_pb2.ApplicationsReply(applications=[application_to_proto(a) for a in found])

    def Monitor(self, request: bank_pb2.MonitorRequest, context: grpc.ServicerContext) -> bank_pb2.MonitorReply:
        rows = self.loans.monitor(
            _text(request.month, "month", 7) or None,
            _text(request.model_version, "model_version", 32) or None,
            refresh_now=bool(request.refresh),
        )
        return bank_pb2.MonitorReply(rows=[monitor_row_to_proto(r) for r in rows])

    def Unfreeze(self, request: bank_pb2.UnfreezeRequest, context: grpc.ServicerContext) -> bank_pb2.Account:
        account = _text(request.account_id, "account_id", 32)
        if not account:
            raise BankError("account_id is empty")
        return account_to_proto(self.loans.unfreeze(account))
