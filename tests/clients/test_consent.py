"""Merchant consent: grants and withdrawals with time, history kept, latest event decides."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from clients.consent import ConsentBook, ConsentError, filter_consented


def test_no_event_means_no_consent(db_url):
    assert ConsentBook(db_url).consented(["m1"]).tolist() == [False]


def test_grant_then_withdraw_keeps_history_and_the_latest_decides(db_url):
    book = ConsentBook(db_url)
    t1 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
    t2 = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)
    book.grant(["m1", "m2"], at=t1, note="signed")
    book.withdraw(["m2"], at=t2)
    assert book.consented(["m1", "m2", "m3"]).tolist() == [True, False, False]
    assert [(r.merchant_id, r.granted, r.at) for r in book.history()] == [
        ("m1", True, t1),
        ("m2", True, t1),
        ("m2", False, t2),
    ]


def test_regrant_after_withdrawal(db_url):
    book = ConsentBook(db_url)
    book.grant(["m1"])
    book.withdraw(["m1"])
    book.grant(["m1"])
    assert book.consented(["m1"]).tolist() == [True]
    assert [r.granted for r in book.history("m1")] == [True, False, True]


def test_filter_consented_drops_other_merchants_rows(db_url):
    ConsentBook(db_url).grant(["a", "c"])
    frame = pd.DataFrame({"amount": [1.0, 2.0, 3.0, 4.0]})
    ids = pd.Series(["a", "b", "c", "a"])
    kept, kept_ids, mask = filter_consented(frame, ids, db_url)
    assert kept["amount"].tolist() == [1.0, 3.0, 4.0]
    assert kept_ids.tolist() == ["a", "c", "a"]
    assert mask.tolist() == [True, False, True, True]


def test_filter_without_ids_is_refused(db_url):
    with pytest.raises(ConsentError, match="no merchant id column"):
        filter_consented(pd.DataFrame({"amount": [1.0]}), None, db_url)


def test_empty_merchant_id_is_refused_and_nothing_recorded(db_url):
    book = ConsentBook(db_url)
    with pytest.raises(ConsentError, match="empty"):
        book.grant(["m1", " "])
    assert book.history() == []


def test_consented_table_filters_labels_with_the_rows(db_url):
    import numpy as np

    from clients.consent import consented_table
    from federation.preprocess import LabeledTable

    ConsentBook(db_url).grant(["b"])
    table = LabeledTable(
        frame=pd.DataFrame({"amount": [1.0, 2.0, 3.0]}),
        y=np.array([0, 1, 1], dtype=np.int8),
        ids=pd.Series(["a", "b", "b"]),
        source="p1.csv",
    )
    kept = consented_table(table, db_url)
    assert (kept.frame["amount"].tolist(), kept.y.tolist(), kept.ids.tolist()) == ([2.0, 3.0], [1, 1], ["b", "b"])
    ConsentBook(db_url).withdraw(["b"])
    with pytest.raises(ConsentError, match=r"p1\.csv: no merchant in this file has consent in force"):
        consented_table(table, db_url)


def test_consent_history_survives_reopening_the_database(db_url):
    from federation.storage import forget_engine

    ConsentBook(db_url).grant(["m1"], note="form 1")
    forget_engine(db_url)
    assert [(r.merchant_id, r.granted, r.note) for r in ConsentBook(db_url).history()] == [("m1", True, "form 1")]
