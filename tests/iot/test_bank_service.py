"""The bank's AlertService over real gRPC: idempotent intake by alert id, listing, anchoring."""

from __future__ import annotations

import json
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
