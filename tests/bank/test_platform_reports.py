"""What the platforms report to the bank: consent, stored once per event with the latest event
deciding (SQLite and PostgreSQL), and consent and features of more merchants than one gRPC
message holds, sent in requests within the limits."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from federation.clock import utcnow
from server.consent import MAX_EVENTS, ConsentEventIn, ConsentRegistry


def test_the_latest_event_decides_and_a_replayed_event_changes_nothing(db_url) -> None:
    registry = ConsentRegistry(db_url)
    now = utcnow()
    granted = ConsentEventIn(1, "m1", True, now - timedelta(hours=2))
    withdrawn = ConsentEventIn(2, "m1", False, now - timedelta(hours=1))
    assert registry.record("p1", [granted, withdrawn]) == 2
    assert registry.record("p1", [granted]) == 0  # the same event again: known, not stored
    # an event with a known id but other content is the known event, not a new grant
    assert registry.record("p1", [ConsentEventIn(1, "m1", True, now)]) == 0
    assert registry.consented(["m1", "never-reported"]).tolist() == [False, False]


@pytest.mark.slow
def test_a_report_of_more_events_than_a_statement_takes_parameters_is_stored(db_url) -> None:
    # Reproduction: on PostgreSQL a report of 70,000 events (MAX_EVENTS is 100,000) failed with
    # "number of parameters must be between 0 and 65535": every id went in one IN list.
    assert MAX_EVENTS > 70_000
    registry = ConsentRegistry(db_url)
    now = utcnow()
    events = [ConsentEventIn(k, f"m{k}", k % 2 == 0, now) for k in range(70_000)]
    assert registry.record("p1", events) == 70_000
    assert registry.record("p1", [*events[-10:], ConsentEventIn(70_000, "m1", True, now)]) == 1
    assert registry.consented(["m0", "m1", "m69999"]).tolist() == [True, True, False]


@pytest.mark.slow
def test_a_platform_reports_more_consent_than_one_message_holds(tmp_path, bank_db, running_bank, pki) -> None:
    # Reproduction: a platform's whole consent book went in one request: 70,000 events are more
    # than gRPC's 4 MiB message (RESOURCE_EXHAUSTED), and 100,001 more than a report may hold.
    from clients.consent import ConsentBook
    from clients.consent_report import report_consent
    from proto.channel import connect

    book = ConsentBook(f"sqlite:///{tmp_path / 'platform.db'}")
    merchants = [f"merchant-{k:06d}" for k in range(70_000)]
    book.grant(merchants, note="signed the platform's data-use agreement, version 2026-01")
    book.withdraw(merchants[:10])
    with connect(running_bank, pki.tls("platform-1")) as channel:
        assert report_consent(book, channel) == {"received": 70_010, "stored": 70_010}
        assert report_consent(book, channel) == {"received": 70_010, "stored": 0}  # sent again: kept once
    consented = ConsentRegistry(bank_db).consented([merchants[0], merchants[9], merchants[10], merchants[-1]])
    assert consented.tolist() == [False, False, True, True]


@given(st.lists(st.integers(0, 256), max_size=300), st.integers(1, 50), st.integers(64, 4_000))
def test_a_report_goes_in_requests_within_the_limits_in_order(notes: list[int], most: int, size: int) -> None:
    from proto import platform_pb2
    from proto.channel import in_requests

    sent = [
        platform_pb2.ConsentEvent(
            event_id=k, merchant_id=f"m{k}", granted=True, at="2026-01-01T00:00:00Z", note="n" * n
        )
        for k, n in enumerate(notes)
    ]
    parts = list(in_requests(sent, most, size))
    assert [e for part in parts for e in part] == sent
    for part in parts:
        assert 1 <= len(part) <= most
        # a request is over the byte limit only when one event alone is
        assert len(part) == 1 or platform_pb2.ConsentReport(events=part).ByteSize() <= size


@pytest.mark.slow
def test_a_platform_reports_the_features_of_more_merchants_than_one_message_holds(
    tmp_path, bank_db, running_bank, pki
) -> None:
    # Reproduction: 2,000 merchants' 12 months went in one request of 4.87 MB, over gRPC's
    # 4 MiB message: a platform with more than about 1,700 merchants could not report.
    from clients.consent import ConsentBook
    from clients.reporting import report_features
    from federation.schema import read_table
    from federation.synth import make_feature_files
    from proto.channel import connect
    from server.feature_store import FeatureStore

    (features,), _ = make_feature_files(tmp_path / "data", platforms=1, merchants=2_500, months=12)
    merchants = sorted(set(read_table(features)["merchant_id"].astype(str)))
    book = ConsentBook(f"sqlite:///{tmp_path / 'platform.db'}")
    book.grant(merchants)
    with connect(running_bank, pki.tls("platform-1")) as channel:
        counts = report_features(book, features, channel)
    assert (counts["merchants"], counts["received"], counts["changed"]) == (len(merchants),) * 3
    stored = FeatureStore(bank_db).rows([merchants[0], merchants[-1]])
    assert [len(stored[m]) for m in (merchants[0], merchants[-1])] == [12, 12]
