"""The bank's AlertService over real gRPC: idempotent intake by alert id, listing, anchoring."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import grpc
import pytest

from proto import alerts_pb2, alerts_pb2_grpc
from server.alerts import serve
from tests.conftest import free_port

RAISED = dict(
    id="a1",
    device_id="exc-1",
    rule="geofence",
    severity="critical",
    state="raised",
    raised_at="2026-03-02T08:10:00+00:00",
    cleared_at="",
    evidence_json='{"lat":35.0,"lon":121.0}',
    lease_id="L-1",
)


@pytest.fixture
def bank(tmp_path) -> Iterator[tuple[grpc.Server, alerts_pb2_grpc.AlertServiceStub]]:
    address = f"127.0.0.1:{free_port()}"
    server = serve(address, f"sqlite:///{tmp_path / 'bank.db'}")
    channel = grpc.insecure_channel(address)
    try:
        yield server, alerts_pb2_grpc.AlertServiceStub(channel)
    finally:
        channel.close()
        server.stop(0)


def test_redelivery_is_acknowledged_as_duplicate_and_stored_once(bank) -> None:
    server, stub = bank
    first = stub.Deliver(alerts_pb2.Alert(**RAISED))
    again = stub.Deliver(alerts_pb2.Alert(**RAISED))
    assert (first.accepted, first.duplicate) == (True, False)
    assert (again.accepted, again.duplicate) == (True, True)
    rows = server.alert_service.store.list()
    assert [(r.id, r.state, r.deliveries) for r in rows] == [("a1", "raised", 2)]


def test_clearing_updates_the_same_alert(bank) -> None:
    _, stub = bank
    stub.Deliver(alerts_pb2.Alert(**RAISED))
    cleared = {**RAISED, "state": "cleared", "cleared_at": "2026-03-02T09:00:00+00:00"}
    assert stub.Deliver(alerts_pb2.Alert(**cleared)).duplicate is False
    assert stub.Deliver(alerts_pb2.Alert(**cleared)).duplicate is True
    assert stub.Deliver(alerts_pb2.Alert(**RAISED)).duplicate is True  # a late retry of the raising
    listed = stub.List(alerts_pb2.ListRequest(device_id="exc-1")).alerts
    assert [(a.id, a.state, a.cleared_at) for a in listed] == [("a1", "cleared", "2026-03-02T09:00:00+00:00")]
    assert list(stub.List(alerts_pb2.ListRequest(state="raised")).alerts) == []


def test_each_stored_change_is_handed_to_anchoring(bank, tmp_path) -> None:
    from contracts.outbox import AnchorOutbox

    server, stub = bank
    stub.Deliver(alerts_pb2.Alert(**RAISED))
    stub.Deliver(alerts_pb2.Alert(**RAISED))  # a duplicate is not anchored twice
    stub.Deliver(alerts_pb2.Alert(**{**RAISED, "state": "cleared", "cleared_at": "2026-03-02T09:00:00+00:00"}))
    outbox = AnchorOutbox(f"sqlite:///{tmp_path / 'bank.db'}")
    canonical = json.dumps(RAISED, sort_keys=True, separators=(",", ":")).encode()
    expected_leaf = outbox.enqueue(data=canonical, kind="alert", ref="a1")  # idempotent: same leaf
    assert [ref for ref, _ in server.alert_service.anchored] == ["a1", "a1:cleared"]
    assert server.alert_service.anchored[0][1] == expected_leaf
    assert outbox.pending() == 2


def test_an_alert_without_id_is_refused(bank) -> None:
    _, stub = bank
    with pytest.raises(grpc.RpcError) as info:
        stub.Deliver(alerts_pb2.Alert(**{**RAISED, "id": ""}))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def _many_alerts(store, count: int = 2_500) -> list[str]:
    """`count` alerts of about 2 kB each (5 MB in all), some raised at the same minute."""
    evidence = json.dumps({"zones": ["z" * 60] * 30})
    ids = [f"a{k:05d}" for k in range(count)]
    for k, alert_id in enumerate(ids):  # the same raised_at for some: the id breaks the tie
        raised_at = f"2026-03-02T08:{k // 100:02d}:00+00:00"
        store.intake({**RAISED, "id": alert_id, "raised_at": raised_at, "evidence_json": evidence})
    return ids


def test_a_list_longer_than_a_message_comes_a_page_at_a_time(bank) -> None:
    # Reproduction: every alert (up to 10,000, each with up to 16 kB of evidence) went in one
    # reply, over the caller's 4 MiB a message; and "--limit 0: all" stopped at 10,000 unsaid.
    server, stub = bank
    ids = _many_alerts(server.alert_service.store)
    pages, after = [], ""
    while True:
        page = stub.List(alerts_pb2.ListRequest(after=after))
        assert page.ByteSize() <= 2 * 1024 * 1024 + 16_384
        pages.append([a.id for a in page.alerts])
        if not page.next:
            break
        after = page.next
    assert len(pages) == 3
    assert [alert for page in pages for alert in page] == ids
    limited = stub.List(alerts_pb2.ListRequest(limit=7, after="2026-03-02T08:00:00+00:00 a00095"))
    assert [a.id for a in limited.alerts] == ids[96:103]
    assert limited.next == "2026-03-02T08:01:00+00:00 a00102"
    with pytest.raises(grpc.RpcError) as info:
        stub.List(alerts_pb2.ListRequest(after="no cursor"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_the_cli_lists_every_alert_of_the_bank_a_page_at_a_time(tmp_path) -> None:
    address = f"127.0.0.1:{free_port()}"
    server = serve(address, f"sqlite:///{tmp_path / 'bank.db'}")
    try:
        ids = _many_alerts(server.alert_service.store)
        command = [sys.executable, "-m", "yinqi", "iot", "alerts", "--bank", address, "--insecure", "--json"]
        every = subprocess.run(command, capture_output=True, text=True, timeout=120)
        some = subprocess.run([*command, "--limit", "2100"], capture_output=True, text=True, timeout=120)
    finally:
        server.stop(0)
    assert every.returncode == 0, every.stderr
    assert [json.loads(line)["id"] for line in every.stdout.splitlines()] == ids
    assert [json.loads(line)["id"] for line in some.stdout.splitlines()] == ids[:2_100]
