"""The bank's gRPC `AlertService`: idempotent intake by alert id, then anchoring hand-off."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable

import grpc

from contracts.outbox import AnchorOutbox
from proto import alerts_pb2, alerts_pb2_grpc
from server.alerts.store import FIELDS, AlertStore

log = logging.getLogger(__name__)


def canonical_alert(alert: dict[str, str]) -> bytes:
    """The bytes whose hash is anchored: sorted keys, no spaces, UTF-8."""
    return json.dumps({k: alert[k] for k in FIELDS}, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class AlertService(alerts_pb2_grpc.AlertServiceServicer):
    """Stores each alert once; hands every stored change to the anchoring outbox.

    Parameters
    ----------
    store : the bank's alert table.
    anchor_db_url : database of the anchoring outbox (None: no anchoring).
    on_intake : called with (alert id, state, duplicate) after each delivery (benchmarks).
    """

    def __init__(
        self,
        store: AlertStore,
        anchor_db_url: str | None = None,
        on_intake: Callable[[str, str, bool], None] | None = None,
    ) -> None:
        self.store = store
        self.on_intake = on_intake
        self.anchor = None
        if anchor_db_url:
            self.anchor = AnchorOutbox(anchor_db_url)
        self.anchored: list[tuple[str, str]] = []  # (ref, leaf) handed over by this process

    def Deliver(self, request: alerts_pb2.Alert, context: grpc.ServicerContext) -> alerts_pb2.Ack:
        alert = {k: getattr(request, k) for k in FIELDS}
        if not alert["id"] or alert["state"] not in ("raised", "cleared"):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "alert needs an id and state raised|cleared")
        changed, duplicate = self.store.intake(alert)
        if changed:
            data = canonical_alert(alert)
            ref = alert["id"] if alert["state"] == "raised" else f"{alert['id']}:cleared"
            if self.anchor is not None:
                leaf = self.anchor.enqueue(data=data, kind="alert", ref=ref)
            else:
                leaf = "sha256:" + hashlib.sha256(data).hexdigest()  # no anchoring outbox here
            self.anchored.append((ref, leaf))
        if self.on_intake is not None:
            self.on_intake(alert["id"], alert["state"], duplicate)
        return alerts_pb2.Ack(accepted=True, duplicate=duplicate)

    def List(self, request: alerts_pb2.ListRequest, context: grpc.ServicerContext) -> alerts_pb2.AlertList:
        rows = self.store.list(request.device_id, request.state, request.limit)
        return alerts_pb2.AlertList(alerts=[alerts_pb2.Alert(**{k: getattr(r, k) for k in FIELDS}) for r in rows])
