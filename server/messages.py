"""The bank's Python values as its gRPC messages (`proto/bank.proto`) and back: feature rows,
score outcomes, reason codes, draws and credit lines.

Its own module so the services (`server.grpc_app`, `server.loanbook.service`) and the local
client (`server.client`) share one conversion without importing each other.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from federation.reasons import Reason
from proto import bank_pb2
from server.credit.accounts import AccountView
from server.loanbook.draws import DrawView
from server.scoring import Outcome, Row


def reason_to_proto(reason: Reason | Mapping[str, Any]) -> bank_pb2.Reason:
    r = reason if isinstance(reason, Reason) else Reason.from_dict(reason)
    return bank_pb2.Reason(
        code=r.code, text_en=r.text_en, text_zh=r.text_zh, feature=r.feature, contribution=r.contribution
    )


def reasons_to_proto(reasons: Iterable[Reason | Mapping[str, Any]]) -> list[bank_pb2.Reason]:
    return [reason_to_proto(r) for r in reasons]


def row_to_proto(row: Row) -> bank_pb2.FeatureRow:
    message = bank_pb2.FeatureRow()
    for key, value in row.items():
        if isinstance(value, str):
            message.labels[key] = value
        else:
            message.numbers[key] = float(value)
    return message


def rows_to_proto(rows: Sequence[Row]) -> list[bank_pb2.FeatureRow]:
    return [row_to_proto(r) for r in rows]


def row_from_proto(message: bank_pb2.FeatureRow) -> Row:
    row: Row = dict(message.labels)
    for key, value in message.numbers.items():
        row[key] = float(value)
    return row


def outcome_to_proto(outcome: Outcome) -> bank_pb2.ScoreReply:
    return bank_pb2.ScoreReply(
        merchant_id=outcome.merchant_id,
        model_version=outcome.model_version,
        model_sha256=outcome.model_sha256,
        default_probability=outcome.pd,
        band=outcome.band,
        turnover_fen=outcome.turnover_fen,
        limit_fen=outcome.limit_fen,
        annual_rate_bp=outcome.annual_rate_bp,
        inputs_hash=outcome.inputs_hash,
        decision_id=outcome.decision_id or 0,
        outcome=outcome.outcome,
        reasons=reasons_to_proto(outcome.reasons),
        application_id=outcome.application_id or 0,
    )


def draw_to_proto(view: DrawView) -> bank_pb2.Draw:
    return bank_pb2.Draw(
        draw_id=view.draw_id,
        amount_fen=view.amount_fen,
        principal_fen=view.principal_fen,
        drawn_on=view.drawn_on,
        term_days=view.term_days,
        due_on=view.due_on,
        days_past_due=view.days_past_due,
        tier=view.tier,
    )


def account_to_proto(view: AccountView) -> bank_pb2.Account:
    return bank_pb2.Account(
        account_id=view.account_id,
        merchant_id=view.merchant_id,
        status=view.status,
        limit_fen=view.limit_fen,
        principal_fen=view.principal_fen,
        interest_fen=view.interest_fen,
        available_fen=view.available_fen,
        annual_rate_bp=view.annual_rate_bp,
        band=view.band,
        default_probability=view.pd,
        model_version=view.model_version,
        decision_id=view.decision_id,
        accrued_through=view.accrued_through,
        frozen=view.frozen,
        days_past_due=view.days_past_due,
        tier=view.tier,
        draws=[draw_to_proto(d) for d in view.draws],
    )
