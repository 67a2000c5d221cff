"""A platform trains only on merchants whose consent is in force."""

from __future__ import annotations

import pandas as pd
import pytest

from clients.consent import ConsentBook, ConsentError
from clients.data import load_platform_table


@pytest.fixture
def features(tmp_path):
    path = tmp_path / "platform.csv"
    pd.DataFrame(
        {
            "merchant_id": ["A", "A", "B", "C"],
            "month": ["2026-01", "2026-02", "2026-01", "2026-01"],
            "amount": [1.0, 2.0, 3.0, 4.0],
            "default": [0, 1, 0, 1],
        }
    ).to_csv(path, index=False)
    return path


def test_merchants_without_consent_are_left_out(tmp_path, features):
    db = f"sqlite:///{tmp_path / 'consent.db'}"
    book = ConsentBook(db)
    book.grant(["A", "B", "C"])
    book.withdraw(["B"])

    table = load_platform_table(features, consent_db=db)

    assert table.ids.tolist() == ["A", "A", "C"]
    assert table.y.tolist() == [0, 1, 1]
    assert table.frame["amount"].tolist() == [1.0, 2.0, 4.0]


def test_consent_change_takes_effect_on_next_load(tmp_path, features):
    db = f"sqlite:///{tmp_path / 'consent.db'}"
    book = ConsentBook(db)
    book.grant(["A", "C"])
    assert load_platform_table(features, consent_db=db).ids.tolist() == ["A", "A", "C"]
    book.withdraw(["C"])
    assert load_platform_table(features, consent_db=db).ids.tolist() == ["A", "A"]


def test_no_consenting_merchant_is_a_refusal(tmp_path, features):
    db = f"sqlite:///{tmp_path / 'consent.db'}"
    ConsentBook(db)
    with pytest.raises(ConsentError, match="no merchant in this file has consent in force"):
        load_platform_table(features, consent_db=db)


def test_without_consent_db_every_row_trains(features):
    assert len(load_platform_table(features).y) == 4
