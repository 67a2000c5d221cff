"""The bank's gRPC server: ScoringService, CreditService, LoanBookService, PlatformService and
AlertService.

`build_server(...)` returns a bound, NOT yet started `grpc.Server` (call `.start()`); its port
is in `server.bound_port` (useful with port 0). It speaks mutual TLS with the bank's CA
(`server.security.ca`): every caller presents a client certificate the CA issued and did not
revoke, and `server.security.guard.Guard` checks the caller's role on every call, records every
state-changing call with the caller's identity, and turns a `YinqiError` into its status with
the one-line message. Plaintext only with `insecure=True` (loopback tests).

Scoring and opening a credit line use the feature rows the merchant's own platform reported
(`PlatformService.ReportFeatures`, `server.feature_store`), never rows in the request.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import grpc

from federation.collector import freeze_start_up_heap
from federation.errors import YinqiError
from proto import bank_pb2, bank_pb2_grpc, platform_pb2, platform_pb2_grpc
from proto.channel import ServerTls, listen, new_server
from server.alerts import register as register_alerts
from server.consent import ConsentEventIn, ConsentRegistry
from server.credit.accounts import CreditBook
from server.credit.errors import BankError
from server.credit.policy import CreditPolicy
from server.db import bank_engine
from server.feature_store import FeatureStore
from server.loanbook import review
from server.loanbook.book import LoanBook
from server.loanbook.service import LoanBookService
from server.merchants import check_owner
from server.messages import account_to_proto, outcome_to_proto, row_from_proto
from server.registry import Registry
from server.scoring import Outcome, Row, Scorer
from server.security.ca import CertSet
from server.security.calllog import CallLog
from server.security.guard import STATUS_OF_KIND, Guard, current_caller
from server.security.identity import RevocationList
from server.security.roles import ANY_ROLE, PLATFORM, Identity
from server.vertical.psi_service import register_on_bank as register_psi_on_bank

log = logging.getLogger(__name__)

MAX_BATCH = 2_000  # merchants per ScoreBatch request: a reply of about 0.8 kB each stays within 2 MiB


# -- request checks ----------------------------------------------------------------------
def text_field(value: str, field: str, limit: int, *, required: bool = True) -> str:
    """A request's text field: present (if required), at most `limit` printable characters."""
    if not value:
        if required:
            raise BankError(f"{field} is empty")
        return value
    if len(value) > limit or not value.isprintable():
        raise BankError(f"{field}: expected at most {limit} printable characters, got {len(value)}")
    return value


def no_rows(rows: Sequence[Any], where: str) -> None:
    if rows:
        raise BankError(
            f"{where}: rows are not accepted; the bank scores the features the merchant's platform reported"
        )


def reporting_platform(claimed: str) -> str:
    """The platform a report comes from: its certificate's party (a claimed name must match)."""
    who = current_caller()
    claimed = text_field(claimed, "platform", 128, required=False)
    if who.role == ANY_ROLE:  # plaintext loopback: no certificate, the request names the platform
        return claimed or who.name
    if claimed and claimed != who.name:
        raise BankError(
            f"this report claims to come from platform '{claimed}', but the caller's certificate is {who.name}'s",
            "forbidden",
        )
    return who.name


# -- services ----------------------------------------------------------------------------
class ScoringService(bank_pb2_grpc.ScoringServiceServicer):
    """Scores merchants from the features their platform reported (operators only)."""

    def __init__(self, scorer: Scorer, features: FeatureStore) -> None:
        self.scorer = scorer
        self.features = features

    def Score(self, request: bank_pb2.ScoreRequest, context: grpc.ServicerContext) -> bank_pb2.ScoreReply:
        merchant = text_field(request.merchant_id, "merchant_id", 128)
        version = text_field(request.model_version, "model_version", 32, required=False)
        no_rows(request.rows, f"merchant '{merchant}'")
        return outcome_to_proto(self.scorer.score(merchant, self.features.reader(merchant), version or None))

    def ScoreBatch(
        self, request: bank_pb2.ScoreBatchRequest, context: grpc.ServicerContext
    ) -> bank_pb2.ScoreBatchReply:
        version = text_field(request.model_version, "model_version", 32, required=False)
        if len(request.requests) > MAX_BATCH:
            raise BankError(f"a batch of {len(request.requests)} merchants; send at most {MAX_BATCH} at once")
        merchants = []
        for item in request.requests:
            merchant = text_field(item.merchant_id, "merchant_id", 128)
            no_rows(item.rows, f"merchant '{merchant}'")
            merchants.append(merchant)
        reported = self.features.rows(merchants)
        wanted = [(m, reported[m]) for m in merchants if m in reported]
        scored = iter(self.scorer.score_batch(wanted, version or None) if wanted else [])
        replies = []
        for merchant in merchants:
            result: Outcome | BankError = (
                next(scored)
                if merchant in reported
                else BankError(f"merchant '{merchant}': no features reported by its platform", "not_found")
            )
            if isinstance(result, BankError):
                code = STATUS_OF_KIND[result.kind].name
                replies.append(bank_pb2.ScoreReply(merchant_id=merchant, error=str(result), error_code=code))
            else:
                replies.append(outcome_to_proto(result))
        return bank_pb2.ScoreBatchReply(replies=replies)


class CreditService(bank_pb2_grpc.CreditServiceServicer):
    """Credit lines: operators change them; a platform may read its own merchants' lines."""

    def __init__(self, book: CreditBook, features: FeatureStore) -> None:
        self.book = book
        self.features = features

    def Open(self, request: bank_pb2.OpenRequest, context: grpc.ServicerContext) -> bank_pb2.Account:
        merchant = text_field(request.merchant_id, "merchant_id", 128)
        version = text_field(request.model_version, "model_version", 32, required=False)
        no_rows(request.rows, f"merchant '{merchant}'")
        rows = self.features.rows_of(merchant)
        return account_to_proto(self.book.open(merchant, rows, version or None))

    def Draw(self, request: bank_pb2.MoneyRequest, context: grpc.ServicerContext) -> bank_pb2.Account:
        account = text_field(request.account_id, "account_id", 32)
        return account_to_proto(self.book.draw(account, request.amount_fen, request.term_days or None))

    def Repay(self, request: bank_pb2.MoneyRequest, context: grpc.ServicerContext) -> bank_pb2.Account:
        account = text_field(request.account_id, "account_id", 32)
        if request.term_days:
            raise BankError("term_days is for draws; a repayment has no term")
        return account_to_proto(self.book.repay(account, request.amount_fen))

    def Get(self, request: bank_pb2.AccountRequest, context: grpc.ServicerContext) -> bank_pb2.Account:
        who = current_caller()
        account = text_field(request.account_id, "account_id", 32, required=False)
        merchant = text_field(request.merchant_id, "merchant_id", 128, required=False)
        if not account and not merchant:
            raise BankError("name an account_id or a merchant_id")
        if who.role == PLATFORM:
            return self._own(who, account, merchant)
        return account_to_proto(self.book.get(account) if account else self.book.for_merchant(merchant))

    def _own(self, who: Identity, account: str, merchant: str) -> bank_pb2.Account:
        """A platform's read: only lines of merchants it owns; others look alike, found or not."""
        if merchant:
            check_owner(self.book.engine, who.name, merchant)
            return account_to_proto(self.book.for_merchant(merchant))
        try:
            view = self.book.get(account)
            check_owner(self.book.engine, who.name, view.merchant_id)
        except BankError:
            raise BankError(
                f"credit account '{account}' is not a line of one of {who.name}'s merchants", "forbidden"
            ) from None
        return account_to_proto(view)

    def Accrue(self, request: bank_pb2.AccrueRequest, context: grpc.ServicerContext) -> bank_pb2.AccrueReply:
        account = text_field(request.account_id, "account_id", 32, required=False)
        through_text = text_field(request.through, "through", 10, required=False)
        try:
            through = date.fromisoformat(through_text) if through_text else None
        except ValueError:
            raise BankError(f"through '{through_text}' is not a date; expected YYYY-MM-DD") from None
        result = self.book.accrue(through, account or None)
        return bank_pb2.AccrueReply(
            through=result["through"], accounts=result["accounts"], interest_fen=result["interest_fen"]
        )


class PlatformService(platform_pb2_grpc.PlatformServiceServicer):
    """What platforms report about their own merchants: consent and feature rows."""

    def __init__(self, consent: ConsentRegistry, features: FeatureStore) -> None:
        self.consent = consent
        self.features = features

    def ReportConsent(
        self, request: platform_pb2.ConsentReport, context: grpc.ServicerContext
    ) -> platform_pb2.ConsentAck:
        platform = reporting_platform(request.platform)
        events = []
        for event in request.events:
            try:
                at = datetime.fromisoformat(event.at)
            except ValueError:
                raise BankError(f"consent event {event.event_id}: time {event.at[:40]!r} is not ISO 8601") from None
            merchant = text_field(event.merchant_id, f"consent event {event.event_id}: merchant_id", 128)
            events.append(ConsentEventIn(event.event_id, merchant, event.granted, at, event.note))
        stored = self.consent.record_retrying(platform, events)
        return platform_pb2.ConsentAck(received=len(events), stored=stored)

    def ReportFeatures(
        self, request: platform_pb2.FeatureReport, context: grpc.ServicerContext
    ) -> platform_pb2.FeatureAck:
        platform = reporting_platform(request.platform)
        merchants: dict[str, list[Row]] = {}
        for item in request.merchants:
            merchant = text_field(item.merchant_id, "merchant_id", 128)
            if merchant in merchants:
                raise BankError(f"merchant '{merchant}' appears twice in one report")
            merchants[merchant] = [row_from_proto(r) for r in item.rows]
        changed = self.features.report(platform, merchants)
        return platform_pb2.FeatureAck(received=len(merchants), changed=changed)


# -- server ------------------------------------------------------------------------------
def warm_model(scorer: Scorer) -> str | None:
    """Load the promoted model now (torch with it), so that the first application or review a
    server answers does not wait for that (1.4 to 2.3 s here), then leave the heap as it is out
    of the collector's full passes (`freeze_start_up_heap`). The version loaded; None where none
    is promoted yet or it cannot be loaded, which the first request then reports."""
    try:
        name, _, _ = scorer.model(None)
    except Exception:  # said to the caller that needs the model, not here
        return None
    freeze_start_up_heap()  # the model and torch, loaded: out of the collector's full passes
    return name


def build_server(
    address: str,
    db_url: str | None = None,
    tls: CertSet | None = None,
    model_dir_root: str | Path | None = None,
    *,
    insecure: bool = False,
    policy: CreditPolicy | None = None,
    max_workers: int = 8,
) -> grpc.Server:
    """A bound gRPC server (not started) hosting the Scoring, Credit, LoanBook, Platform and Alert
    services.

    Parameters
    ----------
    address:
        `host:port` to listen on (port 0: any free port, see `server.bound_port`).
    db_url:
        The bank's database (default: `YINQI_DB_URL` / the data dir's SQLite file).
    tls:
        The CA directory's files (`CertSet.in_dir(DIR)`): server certificate and key, the CA
        that client certificates must chain to, and `crl.pem` beside the CA.
    insecure:
        Plaintext without client identities (every caller holds every role): loopback tests
        only. Exactly one of `tls` and `insecure` must be given.
    model_dir_root:
        Where registered model files are stored (default: `<data dir>/models`).
    policy:
        The credit policy (default: `CreditPolicy.load()`, i.e. the configured or shipped one).
    """
    if (tls is None) == (not insecure):
        raise BankError(
            "the bank's services need its certificates (mutual TLS) or an explicit insecure=True for loopback tests",
            "refused",
        )
    engine = bank_engine(db_url)
    registry = Registry(engine, model_dir_root)
    policy = policy or CreditPolicy.load()
    scorer = Scorer(engine, registry=registry, policy=policy)
    book = CreditBook(engine, scorer=scorer, registry=registry, policy=policy)
    review.warm_workers(book)  # a large book's review: its workers ready when one is asked for
    features = FeatureStore(engine)
    revocations = RevocationList(tls.crl, tls.ca) if tls is not None else None
    guard = Guard(CallLog(engine), revocations, insecure=insecure)
    server = new_server(max_workers, [guard])
    bank_pb2_grpc.add_ScoringServiceServicer_to_server(ScoringService(scorer, features), server)
    bank_pb2_grpc.add_CreditServiceServicer_to_server(CreditService(book, features), server)
    bank_pb2_grpc.add_LoanBookServiceServicer_to_server(LoanBookService(LoanBook(book)), server)
    platform_pb2_grpc.add_PlatformServiceServicer_to_server(PlatformService(ConsentRegistry(engine), features), server)
    register_alerts(server, engine)
    psi = register_psi_on_bank(server, engine, insecure=insecure)
    server_tls = None if tls is None else ServerTls(tls.cert, tls.key, tls.ca)
    try:
        port = listen(server, address, server_tls, insecure=tls is None)
    except YinqiError as exc:  # an unreadable certificate file, or a port already taken
        raise BankError(str(exc), "refused") from None
    server.bound_port = port
    server.services = ("ScoringService", "CreditService", "LoanBookService", "PlatformService", "AlertService", psi)
    server.engine = engine
    server.scorer = scorer  # `warm_model(server.scorer)` once started
    return server
