"""The bank's gRPC server: ScoringService, CreditService, PlatformService and AlertService.

`build_server(...)` returns a bound, NOT yet started `grpc.Server` (call `.start()`); its port
is in `server.bound_port` (useful with port 0). With `TlsFiles` the server speaks TLS, and
with a CA it also requires client certificates (mutual TLS: only platforms and operators the
bank's CA signed may call). Every `YinqiError` becomes a gRPC status with its one-line message:
BankError kinds map to INVALID_ARGUMENT / FAILED_PRECONDITION / NOT_FOUND, other user errors
(bad feature values, consent input) to INVALID_ARGUMENT.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import grpc

from federation.errors import YinqiError
from proto import bank_pb2, bank_pb2_grpc, platform_pb2, platform_pb2_grpc
from server.alerts import register as register_alerts
from server.consent import ConsentEventIn, ConsentRegistry
from server.credit.accounts import AccountView, CreditBook
from server.credit.errors import BankError
from server.credit.policy import CreditPolicy
from server.db import bank_engine
from server.registry import Registry
from server.scoring import Outcome, Row, Scorer
from server.vertical.psi_service import register_on_bank as register_psi_on_bank

log = logging.getLogger(__name__)

STATUS = {
    "invalid": grpc.StatusCode.INVALID_ARGUMENT,
    "refused": grpc.StatusCode.FAILED_PRECONDITION,
    "not_found": grpc.StatusCode.NOT_FOUND,
}
KIND_OF_CODE = {code.name: kind for kind, code in STATUS.items()}


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for the server's TLS; with `ca`, clients must present a certificate it signed."""

    cert: Path
    key: Path
    ca: Path | None = None


def status_of(exc: YinqiError) -> grpc.StatusCode:
    return STATUS[exc.kind] if isinstance(exc, BankError) else grpc.StatusCode.INVALID_ARGUMENT


def _rpc(method: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a user error into a gRPC status with its one-line message (nothing was stored)."""

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except YinqiError as exc:
            context.abort(status_of(exc), str(exc))

    return wrapper


# -- message conversion ------------------------------------------------------------------
def row_to_proto(row: Row) -> bank_pb2.FeatureRow:
    message = bank_pb2.FeatureRow()
    for key, value in row.items():
        if isinstance(value, str):
            message.labels[key] = value
        else:
            message.numbers[key] = float(value)
    return message


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
    )


# -- services ----------------------------------------------------------------------------
class ScoringService(bank_pb2_grpc.ScoringServiceServicer):
    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer

    @_rpc
    def Score(self, request: bank_pb2.ScoreRequest, context: grpc.ServicerContext) -> bank_pb2.ScoreReply:
        rows = [row_from_proto(r) for r in request.rows]
        return outcome_to_proto(self.scorer.score(request.merchant_id, rows, request.model_version or None))

    @_rpc
    def ScoreBatch(
        self, request: bank_pb2.ScoreBatchRequest, context: grpc.ServicerContext
    ) -> bank_pb2.ScoreBatchReply:
        items = [(r.merchant_id, [row_from_proto(x) for x in r.rows]) for r in request.requests]
        replies = []
        for (merchant_id, _), result in zip(
            items, self.scorer.score_batch(items, request.model_version or None), strict=True
        ):
            if isinstance(result, BankError):
                replies.append(
                    bank_pb2.ScoreReply(merchant_id=merchant_id, error=str(result), error_code=STATUS[result.kind].name)
                )
            else:
                replies.append(outcome_to_proto(result))
        return bank_pb2.ScoreBatchReply(replies=replies)


class CreditService(bank_pb2_grpc.CreditServiceServicer):
    def __init__(self, book: CreditBook) -> None:
        self.book = book

    @_rpc
    def Open(self, request: bank_pb2.OpenRequest, context: grpc.ServicerContext) -> bank_pb2.Account:
        rows = [row_from_proto(r) for r in request.rows]
        return account_to_proto(self.book.open(request.merchant_id, rows, request.model_version or None))

    @_rpc
    def Draw(self, request: bank_pb2.MoneyRequest, context: grpc.ServicerContext) -> bank_pb2.Account:
        return account_to_proto(self.book.draw(request.account_id, request.amount_fen))

    @_rpc
    def Repay(self, request: bank_pb2.MoneyRequest, context: grpc.ServicerContext) -> bank_pb2.Account:
        return account_to_proto(self.book.repay(request.account_id, request.amount_fen))

    @_rpc
    def Get(self, request: bank_pb2.AccountRequest, context: grpc.ServicerContext) -> bank_pb2.Account:
        if request.account_id:
            return account_to_proto(self.book.get(request.account_id))
        if request.merchant_id:
            return account_to_proto(self.book.for_merchant(request.merchant_id))
        raise BankError("name an account_id or a merchant_id")

    @_rpc
    def Accrue(self, request: bank_pb2.AccrueRequest, context: grpc.ServicerContext) -> bank_pb2.AccrueReply:
        try:
            through = date.fromisoformat(request.through) if request.through else None
        except ValueError:
            raise BankError(f"through '{request.through}' is not a date; expected YYYY-MM-DD") from None
        result = self.book.accrue(through, request.account_id or None)
        return bank_pb2.AccrueReply(
            through=result["through"], accounts=result["accounts"], interest_fen=result["interest_fen"]
        )


class PlatformService(platform_pb2_grpc.PlatformServiceServicer):
    """What platforms report to the bank: their merchants' consent."""

    def __init__(self, consent: ConsentRegistry) -> None:
        self.consent = consent

    @_rpc
    def ReportConsent(
        self, request: platform_pb2.ConsentReport, context: grpc.ServicerContext
    ) -> platform_pb2.ConsentAck:
        events = []
        for event in request.events:
            try:
                at = datetime.fromisoformat(event.at)
            except ValueError:
                raise BankError(f"consent event {event.event_id}: time '{event.at}' is not ISO 8601") from None
            events.append(ConsentEventIn(event.event_id, event.merchant_id, event.granted, at, event.note))
        stored = self.consent.record_retrying(request.platform, events)
        return platform_pb2.ConsentAck(received=len(events), stored=stored)


# -- server ------------------------------------------------------------------------------
def build_server(
    address: str,
    db_url: str | None = None,
    tls: TlsFiles | None = None,
    model_dir_root: str | Path | None = None,
    *,
    policy: CreditPolicy | None = None,
    max_workers: int = 8,
) -> grpc.Server:
    """A bound gRPC server (not started) hosting the Scoring, Credit, Platform and Alert services.

    Parameters
    ----------
    address:
        `host:port` to listen on (port 0: any free port, see `server.bound_port`).
    db_url:
        The bank's database (default: `YINQI_DB_URL` / the data dir's SQLite file).
    tls:
        Server certificate and key (and a CA to require client certificates); None: plaintext,
        for loopback only.
    model_dir_root:
        Where registered model files are stored (default: `<data dir>/models`).
    policy:
        The credit policy (default: `CreditPolicy.load()`, i.e. the configured or shipped one).
    """
    engine = bank_engine(db_url)
    registry = Registry(engine, model_dir_root)
    policy = policy or CreditPolicy.load()
    scorer = Scorer(engine, registry=registry, policy=policy)
    book = CreditBook(engine, scorer=scorer, registry=registry, policy=policy)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers))
    bank_pb2_grpc.add_ScoringServiceServicer_to_server(ScoringService(scorer), server)
    bank_pb2_grpc.add_CreditServiceServicer_to_server(CreditService(book), server)
    platform_pb2_grpc.add_PlatformServiceServicer_to_server(PlatformService(ConsentRegistry(engine)), server)
    register_alerts(server, engine)
    services = ["ScoringService", "CreditService", "PlatformService", "AlertService"]
    services.append(register_psi_on_bank(server, engine, insecure=tls is None))
    if tls is None:
        port = server.add_insecure_port(address)
    else:
        credentials = grpc.ssl_server_credentials(
            [(Path(tls.key).read_bytes(), Path(tls.cert).read_bytes())],
            root_certificates=Path(tls.ca).read_bytes() if tls.ca else None,
            require_client_auth=tls.ca is not None,
        )
        port = server.add_secure_port(address, credentials)
    if port == 0:
        raise BankError(f"cannot listen on {address} (address in use or not local?)", "refused")
    server.bound_port = port  # type: ignore[attr-defined]
    server.services = tuple(services)  # type: ignore[attr-defined]
    return server


def rows_to_proto(rows: Sequence[Row]) -> list[bank_pb2.FeatureRow]:
    return [row_to_proto(r) for r in rows]
