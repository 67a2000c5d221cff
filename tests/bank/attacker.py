"""A caller of the bank's gRPC services, run as its own process with whatever credentials it has
(only `ca.crt`, another CA's certificate, a revoked one, or a party's own), trying every attack
of issue 10 and printing the status each call got, as JSON.

    python -m tests.bank.attacker --bank HOST:PORT --ca CA [--cert C --key K] --account CL-… [--insecure]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from proto import alerts_pb2, alerts_pb2_grpc, bank_pb2, bank_pb2_grpc, platform_pb2, platform_pb2_grpc
from proto.channel import ClientTls, connect


def rows(amount: float) -> list[bank_pb2.FeatureRow]:
    return [
        bank_pb2.FeatureRow(
            numbers={
                "amount": amount,
                "count": 10,
                "avg_rating": 4.5,
                "inventory_turnover": 2.0,
                "growth": 0.0,
                "first_month": float(i == 0),
                "past_defaults": 0,
            },
            labels={"month": f"2026-0{i + 1}", "category": "food"},
        )
        for i in range(3)
    ]


def attacks(channel: grpc.Channel, account: str) -> dict[str, Callable[[], Any]]:
    scoring = bank_pb2_grpc.ScoringServiceStub(channel)
    credit = bank_pb2_grpc.CreditServiceStub(channel)
    platform = platform_pb2_grpc.PlatformServiceStub(channel)
    alerts = alerts_pb2_grpc.AlertServiceStub(channel)
    loans = bank_pb2_grpc.LoanBookServiceStub(channel)
    fake_alert = alerts_pb2.Alert(
        id="f" * 32,
        device_id="x" * 100_000,
        rule="geofence",
        severity="critical",
        state="raised",
        raised_at="not a date",
        evidence_json="{}",
    )
    return {
        # invented features: amount -1e6 scored as a near-certain payer (PD 1.9e-22, band A)
        "score_invented": lambda: scoring.Score(bank_pb2.ScoreRequest(merchant_id="m1", rows=rows(-1e6)), timeout=10),
        "score": lambda: scoring.Score(bank_pb2.ScoreRequest(merchant_id="m1"), timeout=10),
        "score_batch": lambda: scoring.ScoreBatch(
            bank_pb2.ScoreBatchRequest(requests=[bank_pb2.ScoreRequest(merchant_id="m1")]), timeout=10
        ),
        # a line at the maximum for a merchant of the attacker's choosing
        "open_max": lambda: credit.Open(bank_pb2.OpenRequest(merchant_id="m2", rows=rows(1e9)), timeout=10),
        "draw_million": lambda: credit.Draw(
            bank_pb2.MoneyRequest(account_id=account, amount_fen=100_000_000), timeout=10
        ),
        "repay": lambda: credit.Repay(bank_pb2.MoneyRequest(account_id=account, amount_fen=1), timeout=10),
        "accrue": lambda: credit.Accrue(bank_pb2.AccrueRequest(), timeout=10),
        "read_account": lambda: credit.Get(bank_pb2.AccountRequest(account_id=account), timeout=10),
        "list_alerts": lambda: alerts.List(alerts_pb2.ListRequest(), timeout=10),
        "fake_alert": lambda: alerts.Deliver(fake_alert, timeout=10),
        # re-grant m1's consent as platform-1 would, and report features for m1 (platform-1's)
        "report_consent": lambda: platform.ReportConsent(
            platform_pb2.ConsentReport(
                platform="platform-1",
                events=[
                    platform_pb2.ConsentEvent(
                        event_id=1, merchant_id="m1", granted=True, at="2026-01-01T00:00:00+00:00"
                    )
                ],
            ),
            timeout=10,
        ),
        "report_features": lambda: platform.ReportFeatures(
            platform_pb2.FeatureReport(merchants=[platform_pb2.MerchantFeatures(merchant_id="m1", rows=rows(5000.0))]),
            timeout=10,
        ),
        "report_implausible": lambda: platform.ReportFeatures(
            platform_pb2.FeatureReport(merchants=[platform_pb2.MerchantFeatures(merchant_id="m9", rows=rows(-1e6))]),
            timeout=10,
        ),
        # the loan book (issue 13): re-set every limit, move the bank's clock (interest, days past
        # due, tiers), lift a hold, read the book
        "review": lambda: loans.Review(bank_pb2.ReviewRequest(month="2026-03"), timeout=30),
        "advance_clock": lambda: loans.AdvanceClock(bank_pb2.AdvanceClockRequest(days=1), timeout=30),
        "set_clock": lambda: loans.SetClock(bank_pb2.SetClockRequest(date="2026-01-01"), timeout=30),
        "unfreeze": lambda: loans.Unfreeze(bank_pb2.UnfreezeRequest(account_id=account), timeout=10),
        "read_metrics": lambda: loans.Metrics(bank_pb2.MetricsRequest(), timeout=10),
        "read_clock": lambda: loans.Clock(bank_pb2.ClockRequest(), timeout=10),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bank", required=True)
    parser.add_argument("--ca", type=Path)
    parser.add_argument("--cert", type=Path)
    parser.add_argument("--key", type=Path)
    parser.add_argument("--account", required=True)
    parser.add_argument("--insecure", action="store_true")
    args = parser.parse_args()
    tls = ClientTls(args.ca, args.cert, args.key) if args.ca else None
    results: dict[str, dict[str, str]] = {}
    with connect(args.bank, tls, insecure=args.insecure) as channel:
        for name, action in attacks(channel, args.account).items():
            try:
                action()
                results[name] = {"code": "OK", "details": ""}
            except grpc.RpcError as exc:
                results[name] = {"code": exc.code().name, "details": exc.details() or ""}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
