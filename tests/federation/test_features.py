"""Merchant-month features from raw transactions, checked against hand-computed values."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from federation.errors import DataError
from federation.features import build_features, monthly_growth
from federation.schema import Mapping


def raw(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(
        rows, columns=["merchant_id", "date", "amount", "rating", "inventory_turnover", "category", "default"]
    )


def test_features_aggregate_each_merchant_month():
    frame = raw(
        [
            ("A", "2026-01-03", 100.0, 5, 2.0, "food", 0),
            ("A", "2026-01-20", 50.0, 3, 2.0, "food", 0),
            ("A", "2026-02-02", 300.0, 4, 4.0, "food", 1),
            ("B", "2026-02-10", 80.0, None, 1.5, "home", 0),
        ]
    )
    out = build_features(frame, "raw.csv").set_index(["merchant_id", "month"])

    a_jan, a_feb, b_feb = out.loc[("A", "2026-01")], out.loc[("A", "2026-02")], out.loc[("B", "2026-02")]
    assert (a_jan["amount"], a_jan["count"], a_jan["avg_rating"]) == (150.0, 2, 4.0)
    assert (a_feb["amount"], a_feb["count"], a_feb["inventory_turnover"]) == (300.0, 1, 4.0)
    assert a_feb["growth"] == 1.0  # 150 -> 300
    assert (a_jan["first_month"], a_feb["first_month"]) == (1, 0)
    assert (a_jan["growth"], b_feb["growth"]) == (0.0, 0.0)  # first months: 0, not NaN
    assert (a_feb["default"], a_feb["past_defaults"]) == (1, 0)
    # B's only order is unrated: the platform's mean rating (5+3+4)/3 stands in for it.
    assert b_feb["avg_rating"] == 4.0


def test_past_defaults_count_earlier_months_only():
    frame = raw(
        [
            ("A", "2026-01-01", 10.0, 4, 1.0, "food", 1),
            ("A", "2026-02-01", 10.0, 4, 1.0, "food", 1),
            ("A", "2026-03-01", 10.0, 4, 1.0, "food", 0),
        ]
    )
    assert build_features(frame, "raw.csv")["past_defaults"].tolist() == [0, 1, 2]


def test_growth_is_per_merchant_and_never_nan():
    amount = pd.Series([100.0, 150.0, 0.0, 10.0, 40.0])
    merchant = pd.Series(["A", "A", "A", "B", "B"])
    growth, first = monthly_growth(amount, merchant)
    assert growth.tolist() == [0.0, 0.5, -1.0, 0.0, 3.0]
    assert first.tolist() == [1, 0, 0, 1, 0]
    # a zero month gives no base to grow from: 0, not inf
    growth, _ = monthly_growth(pd.Series([0.0, 25.0]), pd.Series(["A", "A"]))
    assert growth.tolist() == [0.0, 0.0]
    assert not any(math.isnan(g) for g in growth)


def test_mapping_renames_platform_columns_and_text_label():
    frame = pd.DataFrame(
        {
            "shop": ["A", "A"],
            "day": ["2026-01-01", "2026-02-01"],
            "gmv": [10.0, 20.0],
            "stars": [5, 4],
            "turnover": [1.0, 1.0],
            "overdue": ["N", "Y"],
        }
    )
    mapping = Mapping(
        columns={
            "merchant_id": "shop",
            "date": "day",
            "amount": "gmv",
            "rating": "stars",
            "inventory_turnover": "turnover",
            "default": "overdue",
        },
        positive="Y",
    )
    out = build_features(frame, "their.csv", mapping)
    assert out["default"].tolist() == [0, 1]
    assert out["category"].tolist() == ["unknown", "unknown"]


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("amount", "abc", "raw.csv, column 'amount', row 2: expected a number, found 'abc'"),
        ("amount", float("inf"), "raw.csv, column 'amount', row 2: infinite value"),
        ("amount", -5.0, "raw.csv, column 'amount', row 2: negative amount"),
        ("date", "yesterday", "raw.csv, column 'date', row 2: expected a date"),
        ("rating", 9, "raw.csv, column 'rating', row 2: rating outside 1-5"),
        ("default", 2, "raw.csv, column 'default', row 2: label must be 0/1"),
        ("inventory_turnover", None, "raw.csv, column 'inventory_turnover', row 2: empty value"),
    ],
)
def test_bad_values_name_file_column_and_row(column, value, expected):
    frame = raw([("A", "2026-01-01", 10.0, 4, 1.0, "food", 0), ("A", "2026-02-01", 10.0, 4, 1.0, "food", 0)])
    frame[column] = frame[column].astype(object)
    frame.loc[1, column] = value
    with pytest.raises(DataError) as info:
        build_features(frame, "raw.csv")
    assert str(info.value).startswith(expected)


def test_missing_required_and_mapped_columns_are_named():
    frame = raw([("A", "2026-01-01", 10.0, 4, 1.0, "food", 0)]).drop(columns=["rating"])
    with pytest.raises(DataError, match="column 'rating': required column missing"):
        build_features(frame, "raw.csv")
    with pytest.raises(DataError, match="column 'stars': mapped column not found"):
        build_features(frame, "raw.csv", Mapping(columns={"rating": "stars"}, source="m.toml"))
