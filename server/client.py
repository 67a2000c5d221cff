"""One way to ask the bank for scores and credit lines, on its database or over the wire.

`BankClient` is the interface the CLI (and scripts) use; `open_bank(...)` returns a `LocalBank`
(the bank's own database, for an operator on the bank's machine) or a `RemoteBank` (a running
bank's gRPC services through `proto.channel`, with this caller's certificate). Both answer with
the same plain dicts (the fields of the gRPC replies), so output does not depend on the path.
The local path records its state changes in the bank's call log as `<user>@<host>`.
"""

from __future__ import annotations

import getpass
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Protocol, TypeVar

from federation.errors import YinqiError

Result = dict[str, Any]
T = TypeVar("T")


class BankClient(Protocol):
    """Scoring and credit-line requests, answered as dicts of the gRPC reply's fields."""

    def score(self, merchant: str, version: str | None = None) -> Result: ...

    def open_line(self, merchant: str, version: str | None = None) -> Result: ...

    def draw(self, account: str, amount_fen: int, term_days: int | None = None) -> Result: ...

    def repay(self, account: str, amount_fen: int) -> Result: ...

    def line(self, account: str | None = None, merchant: str | None = None) -> Result: ...

    def accrue(self, through: date | None = None) -> Result: ...

    def review(self, month: str, version: str | None = None) -> Result: ...

    def clock(self) -> Result: ...

    def advance_clock(self, days: int) -> Result: ...

    def set_clock(self, day: str) -> Result: ...

    def metrics(self, month: str | None = None, months: int = 12) -> Result: ...

    def applications(
        self, month: str | None = None, merchant: str | None = None, outcome: str | None = None, limit: int = 50
    ) -> list[Result]: ...

    def monitor(self, month: str | None = None, version: str | None = None, refresh: bool = False) -> list[Result]: ...

    def unfreeze(self, account: str) -> Result: ...

    def close(self) -> None: ...


def _value(field: Any, value: Any) -> Any:
    if field.message_type is not None:
        return message_dict(value)
    return value


def message_dict(message: Any) -> Result:
    """A protobuf message as plain dicts and lists (what both clients return): repeated fields
    as lists, maps as dicts, nested messages as dicts, an unset optional field as None."""
    out: Result = {}
    for f in message.DESCRIPTOR.fields:
        value = getattr(message, f.name)
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            value_field = f.message_type.fields_by_name["value"]
            out[f.name] = {k: _value(value_field, v) for k, v in sorted(value.items())}
        elif f.is_repeated:
            out[f.name] = [_value(f, v) for v in value]
        elif f.has_presence and not message.HasField(f.name):
            out[f.name] = None
        else:
            out[f.name] = _value(f, value)
    return out


@dataclass(frozen=True)
class Remote:
    """Where a running bank is and how to reach it: mutual TLS, or plaintext with `insecure`."""

    address: str
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    insecure: bool = False


class LocalBank:
    """The bank's requests against its own database (an operator on the bank's machine)."""

    def __init__(self, db: str | None = None, models_dir: Path | None = None) -> None:
        from server.credit.accounts import CreditBook
        from server.feature_store import FeatureStore
        from server.loanbook.book import LoanBook
        from server.registry import Registry
        from server.scoring import Scorer
        from server.security.calllog import CallLog
        from server.security.roles import OPERATOR, Identity

        self.registry = Registry(db, models_dir)
        engine = self.registry.engine
        self.scorer = Scorer(engine, registry=self.registry)
        self.book = CreditBook(engine, scorer=self.scorer, registry=self.registry)
        self.loans = LoanBook(self.book)
        self.features = FeatureStore(engine)
        self.calls = CallLog(engine)
        self.who = Identity(f"{getpass.getuser()}@{socket.gethostname()}", OPERATOR, "local")

    def _logged(self, method: str, request: dict[str, Any], work: Callable[[], T]) -> T:
        import json

        call_id = self.calls.start(self.who, method, json.dumps(request, sort_keys=True, default=str), "local")
        status, detail = "OK", ""
        try:
            return work()
        except YinqiError as exc:
            from server.security.guard import status_of

            status, detail = status_of(exc).name, str(exc)
            raise
        except BaseException as exc:
            status, detail = "INTERNAL", type(exc).__name__
            raise
        finally:
            self.calls.finish(call_id, status, detail)

    def score(self, merchant: str, version: str | None = None) -> Result:
        from server.messages import outcome_to_proto

        def work() -> Result:
            return message_dict(outcome_to_proto(self.scorer.score(merchant, self.features.reader(merchant), version)))

        return self._logged("ScoringService/Score", {"merchant_id": merchant, "model_version": version}, work)

    def open_line(self, merchant: str, version: str | None = None) -> Result:
        from server.messages import account_to_proto

        def work() -> Result:
            rows = self.features.rows_of(merchant)
            return message_dict(account_to_proto(self.book.open(merchant, rows, version)))

        return self._logged("CreditService/Open", {"merchant_id": merchant, "model_version": version}, work)

    def draw(self, account: str, amount_fen: int, term_days: int | None = None) -> Result:
        from server.messages import account_to_proto

        return self._logged(
            "CreditService/Draw",
            {"account_id": account, "amount_fen": amount_fen, "term_days": term_days or 0},
            lambda: message_dict(account_to_proto(self.book.draw(account, amount_fen, term_days))),
        )

    def repay(self, account: str, amount_fen: int) -> Result:
        from server.messages import account_to_proto

        return self._logged(
            "CreditService/Repay",
            {"account_id": account, "amount_fen": amount_fen},
            lambda: message_dict(account_to_proto(self.book.repay(account, amount_fen))),
        )

    def line(self, account: str | None = None, merchant: str | None = None) -> Result:
        from server.credit.errors import BankError
        from server.messages import account_to_proto

        if account:
            return message_dict(account_to_proto(self.book.get(account)))
        if merchant:
            return message_dict(account_to_proto(self.book.for_merchant(merchant)))
        raise BankError("name an account or --merchant")

    def accrue(self, through: date | None = None) -> Result:
        def work() -> Result:
            result = self.book.accrue(through)
            return {k: result[k] for k in ("through", "accounts", "interest_fen")}

        return self._logged("CreditService/Accrue", {"through": through}, work)

    # the loan book
    def review(self, month: str, version: str | None = None, progress: Any = None) -> Result:
        from server.loanbook.service import review_to_proto

        return self._logged(
            "LoanBookService/Review",
            {"month": month, "model_version": version},
            lambda: message_dict(review_to_proto(self.loans.review(month, version, progress))),
        )

    def clock(self) -> Result:
        from server.loanbook.service import clock_to_proto

        return message_dict(clock_to_proto(self.loans.clock()))

    def advance_clock(self, days: int) -> Result:
        from server.loanbook.service import clock_to_proto

        return self._logged(
            "LoanBookService/AdvanceClock",
            {"days": days},
            lambda: message_dict(clock_to_proto(self.loans.advance(days, self.who.name))),
        )

    def set_clock(self, day: str) -> Result:
        from server.loanbook.service import clock_to_proto

        return self._logged(
            "LoanBookService/SetClock",
            {"date": day},
            lambda: message_dict(clock_to_proto(self.loans.set_date(day, self.who.name))),
        )

    def metrics(self, month: str | None = None, months: int = 12) -> Result:
        from server.loanbook.service import metrics_to_proto

        return message_dict(metrics_to_proto(self.loans.metrics(month, months)))

    def applications(
        self, month: str | None = None, merchant: str | None = None, outcome: str | None = None, limit: int = 50
    ) -> list[Result]:
        from server.loanbook.service import application_to_proto

        return [message_dict(application_to_proto(a)) for a in self.loans.applications(month, merchant, outcome, limit)]

    def monitor(self, month: str | None = None, version: str | None = None, refresh: bool = False) -> list[Result]:
        from server.loanbook.service import monitor_row_to_proto

        def work() -> list[Result]:
            rows = self.loans.monitor(month, version, refresh_now=refresh)
            return [message_dict(monitor_row_to_proto(r)) for r in rows]

        if not refresh:
            return work()
        return self._logged("LoanBookService/Monitor", {"month": month, "model_version": version}, work)

    def unfreeze(self, account: str) -> Result:
        from server.messages import account_to_proto

        return self._logged(
            "LoanBookService/Unfreeze",
            {"account_id": account},
            lambda: message_dict(account_to_proto(self.loans.unfreeze(account))),
        )

    # local only: the registry, the whole book and a line's ledger
    def register_model(self, model_dir: Path, anchor: bool = True) -> Any:
        """Register a trained model directory (the version row, files and anchor leaf at once)."""
        return self._logged(
            "Registry/Register",
            {"model_dir": str(model_dir), "anchor": anchor},
            lambda: self.registry.register(model_dir, anchor=anchor),
        )

    def promote(self, version: str) -> dict[str, Any]:
        """Make `version` the scoring default; every open line is re-evaluated with it."""
        from server.credit.promotion import promote

        return self._logged("Registry/Promote", {"version": version}, lambda: promote(self.registry, version))

    def lines(self) -> list[Result]:
        return [v.to_dict() for v in self.book.list()]

    def entries(self, account: str) -> list[Result]:
        return [e.to_dict() for e in self.book.entries(account)]

    def close(self) -> None:
        pass


class RemoteBank:
    """The same requests to a running bank's gRPC services (mutual TLS by default)."""

    def __init__(self, remote: Remote) -> None:
        from proto import bank_pb2_grpc
        from proto.channel import ClientTls, connect

        tls = ClientTls(remote.ca, remote.cert, remote.key) if remote.ca else None
        self.channel = connect(remote.address, tls, insecure=remote.insecure)
        self.scoring = bank_pb2_grpc.ScoringServiceStub(self.channel)
        self.credit = bank_pb2_grpc.CreditServiceStub(self.channel)
        self.loans = bank_pb2_grpc.LoanBookServiceStub(self.channel)

    @staticmethod
    def _call(method: Any, request: Any, timeout: float = 30.0) -> Result:
        from proto.channel import call

        return message_dict(call(method, request, timeout=timeout))

    def score(self, merchant: str, version: str | None = None) -> Result:
        from proto import bank_pb2

        return self._call(self.scoring.Score, bank_pb2.ScoreRequest(merchant_id=merchant, model_version=version or ""))

    def open_line(self, merchant: str, version: str | None = None) -> Result:
        from proto import bank_pb2

        return self._call(self.credit.Open, bank_pb2.OpenRequest(merchant_id=merchant, model_version=version or ""))

    def draw(self, account: str, amount_fen: int, term_days: int | None = None) -> Result:
        from proto import bank_pb2

        request = bank_pb2.MoneyRequest(account_id=account, amount_fen=amount_fen, term_days=term_days or 0)
        return self._call(self.credit.Draw, request)

    def repay(self, account: str, amount_fen: int) -> Result:
        from proto import bank_pb2

        return self._call(self.credit.Repay, bank_pb2.MoneyRequest(account_id=account, amount_fen=amount_fen))

    def line(self, account: str | None = None, merchant: str | None = None) -> Result:
        from proto import bank_pb2

        request = bank_pb2.AccountRequest(account_id=account or "", merchant_id=merchant or "")
        return self._call(self.credit.Get, request)

    def accrue(self, through: date | None = None) -> Result:
        from proto import bank_pb2

        request = bank_pb2.AccrueRequest(through=through.isoformat() if through else "")
        return self._call(self.credit.Accrue, request)

    # the loan book
    REVIEW_TIMEOUT = 3600.0  # a review of a large book takes a while

    def review(self, month: str, version: str | None = None) -> Result:
        from proto import bank_pb2

        request = bank_pb2.ReviewRequest(month=month, model_version=version or "")
        return self._call(self.loans.Review, request, timeout=self.REVIEW_TIMEOUT)

    def clock(self) -> Result:
        from proto import bank_pb2

        return self._call(self.loans.Clock, bank_pb2.ClockRequest())

    def advance_clock(self, days: int) -> Result:
        from proto import bank_pb2

        return self._call(self.loans.AdvanceClock, bank_pb2.AdvanceClockRequest(days=days), timeout=600.0)

    def set_clock(self, day: str) -> Result:
        from proto import bank_pb2

        return self._call(self.loans.SetClock, bank_pb2.SetClockRequest(date=day), timeout=600.0)

    def metrics(self, month: str | None = None, months: int = 12) -> Result:
        from proto import bank_pb2

        return self._call(self.loans.Metrics, bank_pb2.MetricsRequest(month=month or "", months=months))

    def applications(
        self, month: str | None = None, merchant: str | None = None, outcome: str | None = None, limit: int = 50
    ) -> list[Result]:
        from proto import bank_pb2

        request = bank_pb2.ApplicationsRequest(
            month=month or "", merchant_id=merchant or "", outcome=outcome or "", limit=limit
        )
        return list(self._call(self.loans.Applications, request)["applications"])

    def monitor(self, month: str | None = None, version: str | None = None, refresh: bool = False) -> list[Result]:
        from proto import bank_pb2

        request = bank_pb2.MonitorRequest(month=month or "", model_version=version or "", refresh=refresh)
        return list(self._call(self.loans.Monitor, request, timeout=600.0)["rows"])

    def unfreeze(self, account: str) -> Result:
        from proto import bank_pb2

        return self._call(self.loans.Unfreeze, bank_pb2.UnfreezeRequest(account_id=account))

    def close(self) -> None:
        self.channel.close()


def open_bank(db: str | None = None, models_dir: Path | None = None, remote: Remote | None = None) -> BankClient:
    """A client of a running bank (`remote`) or of the bank's database (`db`, the default one)."""
    if remote is not None:
        if db is not None or models_dir is not None:
            raise YinqiError("--db/--models-dir name the bank's own database; they cannot be used with --bank")
        return RemoteBank(remote)
    return LocalBank(db, models_dir)
