"""The bank's gRPC `AlertService`: validated, idempotent intake by alert id, each stored change
and its anchor leaf committed together."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from datetime import datetime

import grpc
from eth_utils import keccak
from sqlalchemy import select
from sqlalchemy.orm import Session

from contracts.merkle import record_leaf
from contracts.outbox import AnchorLeaf, AnchorOutbox
from proto import alerts_pb2, alerts_pb2_grpc
from proto.channel import REQUEST_BYTES, in_requests
from server.alerts.store import FIELDS, ID, MAX_DEVICE_ID, STATES, AlertStore
from server.credit.errors import BankError

log = logging.getLogger(__name__)

MAX_LIST = 10_000  # alerts a page
PAGE_BYTES = REQUEST_BYTES  # and its size: an alert's evidence may take 16 kB


def _cursor(after: str) -> tuple[str, str] | None:
    """The (raised_at, id) a page's `next` names; None for the first page."""
    if not after:
        return None
    raised_at, _, alert_id = after.partition(" ")
    try:
        datetime.fromisoformat(raised_at)
    except ValueError:
        raised_at = ""
    if not raised_at or len(raised_at) > 40 or not ID.match(alert_id):
        raise BankError(f"after {after[:60]!r}: expected the `next` of the previous page")
    return raised_at, alert_id


def canonical_alert(alert: dict[str, str]) -> bytes:
    """The bytes whose hash is anchored: sorted keys, no spaces, UTF-8."""
    return json.dumps({k: alert[k] for k in FIELDS}, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def anchor_ref(alert: dict[str, str]) -> str:
    """The outbox reference of an alert event: its id, with `:cleared` for the clearing."""
    return alert["id"] if alert["state"] == "raised" else f"{alert['id']}:cleared"


class AlertService(alerts_pb2_grpc.AlertServiceServicer):
    """Stores each alert once; every stored change gets its anchor leaf in the same transaction.

    Parameters
    ----------
    store : the bank's alert table.
    anchor_db_url : database of the anchoring outbox, the bank's own (None: no anchoring).
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
        self.anchor = AnchorOutbox(anchor_db_url) if anchor_db_url else None
        self.anchored: list[tuple[str, str]] = []  # (ref, leaf) this process queued

    def Deliver(self, request: alerts_pb2.Alert, context: grpc.ServicerContext) -> alerts_pb2.Ack:
        alert = {k: getattr(request, k) for k in FIELDS}
        queued: list[tuple[str, str]] = []
        if self.anchor is not None:
            outbox = self.anchor

            def anchor(session: Session, version: dict[str, str]) -> str:
                data, ref = canonical_alert(version), anchor_ref(version)
                leaf = "0x" + record_leaf("alert", ref, keccak(data)).hex()
                if session.scalar(select(AnchorLeaf.id).where(AnchorLeaf.leaf == leaf)) is None:
                    outbox.enqueue(data=data, kind="alert", ref=ref, session=session)
                    queued.append((ref, leaf))
                return leaf

            changed, duplicate = self.store.intake(alert, anchor)
        else:
            changed, duplicate = self.store.intake(alert)
            if changed:  # no outbox here: the record's own hash, for the demo's count
                queued.append((anchor_ref(alert), "sha256:" + hashlib.sha256(canonical_alert(alert)).hexdigest()))
        self.anchored.extend(queued)
        if self.on_intake is not None:
            self.on_intake(alert["id"], alert["state"], duplicate)
        return alerts_pb2.Ack(accepted=True, duplicate=duplicate)

    def List(self, request: alerts_pb2.ListRequest, context: grpc.ServicerContext) -> alerts_pb2.AlertList:
        device = request.device_id
        if len(device) > MAX_DEVICE_ID or (device and not device.isprintable()):
            raise BankError(f"device_id of {len(device)} characters; expected at most {MAX_DEVICE_ID} printable ones")
        if request.state not in ("", *STATES):
            raise BankError(f"state {request.state[:40]!r}: expected raised, cleared or empty (all)")
        limit = min(int(request.limit) or MAX_LIST, MAX_LIST)
        rows = self.store.list(request.device_id, request.state, limit + 1, _cursor(request.after))
        alerts = [alerts_pb2.Alert(**{k: getattr(r, k) for k in FIELDS}) for r in rows[:limit]]
        page = alerts_pb2.AlertList(alerts=next(in_requests(alerts, limit, PAGE_BYTES), []))
        if len(page.alerts) < len(rows):  # more after this page: where it goes on
            last = page.alerts[-1]
            page.next = f"{last.raised_at} {last.id}"
        return page
