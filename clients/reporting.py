"""Telling the bank what it scores on: a platform sends its consented merchants' latest feature
rows over the bank's gRPC `PlatformService.ReportFeatures`, with its platform certificate.

Only merchants whose consent is in force in this platform's own book are sent, each with its
latest `months` rows (as `yinqi features` builds them). Every value is checked here first
(`federation.plausible`): a bad one stops the report with the file, row and column named, and
nothing is sent. The bank checks again and stores the rows under the certificate's platform.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pandas as pd

from clients.consent import ConsentBook
from federation import plausible
from federation.errors import DataError
from federation.features import FEATURE_LABEL
from federation.schema import read_table
from proto import bank_pb2, platform_pb2, platform_pb2_grpc
from proto.channel import call, in_requests

MONTHS = 12  # latest rows per merchant sent to the bank
CHUNK = 2_000  # merchants per request, at most (and at most 2 MiB: `in_requests`)


def _row(frame_row: dict[str, Any], columns: list[str], file: str, line: int) -> bank_pb2.FeatureRow:
    message = bank_pb2.FeatureRow()
    for column in columns:
        value = frame_row[column]
        if isinstance(value, str):
            problem = plausible.text_problem(value)
            if problem:
                raise DataError(f"value {problem}", file=file, column=column, row=line)
            message.labels[column] = value
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise DataError(f"value {value!r}; expected a number or text", file=file, column=column, row=line) from None
        if math.isnan(number):
            raise DataError("empty value; every feature needs a value", file=file, column=column, row=line)
        problem = plausible.number_problem(column, number)
        if problem:
            raise DataError(f"value {problem}", file=file, column=column, row=line)
        message.numbers[column] = number
    return message


def feature_rows(
    frame: pd.DataFrame, merchants: set[str], file: str, months: int = MONTHS
) -> Iterator[platform_pb2.MerchantFeatures]:
    """The latest `months` rows of each merchant in `merchants`, checked, as report messages."""
    if "merchant_id" not in frame.columns:
        raise DataError("no 'merchant_id' column; expected a feature table from `yinqi features`", file=file)
    if "month" not in frame.columns:
        raise DataError("no 'month' column; expected a feature table from `yinqi features`", file=file)
    columns = [c for c in frame.columns if c not in ("merchant_id", "id", FEATURE_LABEL)]
    frame = frame.assign(merchant_id=frame["merchant_id"].astype(str), month=frame["month"].astype(str))
    frame = frame.assign(_line=range(1, len(frame) + 1))  # 1-based data row, for messages
    chosen = frame[frame["merchant_id"].isin(merchants)].sort_values(["merchant_id", "month"], kind="stable")
    for merchant, group in chosen.groupby("merchant_id", sort=True):
        latest = group.tail(months).to_dict(orient="records")
        rows = [_row(r, columns, file, int(r["_line"])) for r in latest]
        yield platform_pb2.MerchantFeatures(merchant_id=str(merchant), rows=rows)


def report_features(
    book: ConsentBook, features: Path, channel: grpc.Channel, platform: str = "", months: int = MONTHS
) -> dict[str, int]:
    """Send the consented merchants' latest rows from `features`; returns the bank's counts.

    Everything is checked before the first request is sent.
    """
    frame = read_table(features)
    ids = sorted(set(frame["merchant_id"].astype(str))) if "merchant_id" in frame.columns else []
    consented = {m for m, ok in zip(ids, book.consented(ids), strict=True) if ok}
    items = list(feature_rows(frame, consented, str(features), months))
    stub: Any = platform_pb2_grpc.PlatformServiceStub(channel)
    received = changed = 0
    for part in in_requests(items, CHUNK):  # a merchant's 12 months are about 2.4 kB
        ack = call(stub.ReportFeatures, platform_pb2.FeatureReport(merchants=part, platform=platform))
        received += int(ack.received)
        changed += int(ack.changed)
    return {
        "merchants": len(items),
        "received": received,
        "changed": changed,
        "not_consented": len(ids) - len(consented),
    }
