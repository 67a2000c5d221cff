"""Delivery of alert events from the durable outbox to the bank's `AlertService`, with retry.

Events stay in `iot_outbox` until the bank acknowledges them; a bank outage delays alerts but
loses none. The bank's intake is idempotent by alert id, so a retry after a lost
acknowledgement is harmless (at-least-once delivery, exactly-once storage).

A refusal that no retry can change (`PERMANENT` below: the bank finds the event invalid, or
this monitor's certificate lacks the `iot-monitor` role) moves that event to the dead letters
with the bank's reason, and delivery goes on with the next one; `yinqi iot deadletters
--requeue` puts such events back once the cause is fixed. Anything else (the bank unreachable,
a revoked certificate, a timeout) keeps the event queued and is retried with a backoff.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from federation.canonical import canonical_json
from iot.alerts import Alert
from iot.store import IotStore
from proto.channel import ClientTls, connect

log = logging.getLogger(__name__)

PERMANENT = frozenset({"INVALID_ARGUMENT", "PERMISSION_DENIED"})  # gRPC codes a retry cannot change


def to_proto(alert: Alert) -> Any:  # alerts_pb2.Alert
    from proto import alerts_pb2

    return alerts_pb2.Alert(
        id=alert.id,
        device_id=alert.device_id,
        rule=alert.rule,
        severity=alert.severity,
        state=alert.state,
        raised_at=alert.raised_at.isoformat(),
        cleared_at=alert.cleared_at.isoformat() if alert.cleared_at else "",
        evidence_json=canonical_json(alert.evidence),
        lease_id=alert.lease_id or "",
    )


class Deliverer:
    """A background thread draining the outbox into the bank over gRPC.

    Parameters
    ----------
    store : the monitor's store (the outbox lives there).
    target : the bank's gRPC address, `host:port`.
    tls : the bank's CA and this monitor's client certificate and key (mutual TLS, which the
        bank's services require); plaintext only with `insecure=True` (a loopback intake).
    min_backoff, max_backoff : seconds between retries while the bank is unreachable
        (doubling from min to max; reset after a success).
    timeout : seconds one delivery may take.
    """

    def __init__(
        self,
        store: IotStore,
        target: str,
        *,
        tls: ClientTls | None = None,
        insecure: bool = False,
        min_backoff: float = 0.2,
        max_backoff: float = 10.0,
        timeout: float = 5.0,
    ) -> None:
        self.store, self.target = store, target
        self.channel = connect(target, tls, insecure=insecure)  # refuses missing TLS settings now
        self.min_backoff, self.max_backoff, self.timeout = min_backoff, max_backoff, timeout
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.delivered = 0
        self.duplicates = 0
        self.failures = 0
        self.refused = 0  # events the bank refused for good, moved to the dead letters
        self.last_error: str | None = None

    def wake(self, *_: object) -> None:
        """New events were stored: deliver now instead of at the next poll."""
        self._wake.set()

    def start(self) -> Deliverer:
        self._thread = threading.Thread(target=self._run, name="iot-deliverer", daemon=True)
        self._thread.start()
        return self

    def drain(self, timeout: float) -> bool:
        """Wait (at most `timeout` s) until the outbox is empty; True when it is."""
        deadline = time.monotonic() + timeout
        while self.store.outbox_counts()["pending"]:
            if time.monotonic() >= deadline or self._thread is None or not self._thread.is_alive():
                return False
            self._wake.set()
            time.sleep(0.05)  # polling the outbox with a deadline
        return True

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _refused(self, seq: int, alert: Alert, code: str, details: str) -> None:
        """The bank refused this event for good: dead-letter it with the reason, go on."""
        reason = f"the bank refused the alert event ({code}): {details}"
        if self.store.refuse(seq, reason):
            self.refused += 1
            log.error("alert %s (%s, %s) dead-lettered: %s", alert.id, alert.device_id, alert.state, reason)

    def _run(self) -> None:
        import grpc

        from proto import alerts_pb2_grpc

        channel = self.channel
        stub = alerts_pb2_grpc.AlertServiceStub(channel)  # type: ignore[no-untyped-call]  # generated
        backoff = self.min_backoff
        try:
            while not self._stop.is_set():
                self._wake.clear()
                batch = self.store.pending(limit=100)
                if not batch:
                    self._wake.wait(1.0)
                    continue
                for seq, alert in batch:
                    if self._stop.is_set():
                        break
                    try:
                        ack = stub.Deliver(to_proto(alert), timeout=self.timeout, wait_for_ready=False)
                    except grpc.RpcError as exc:
                        code, details = exc.code().name, exc.details() or ""
                        if code in PERMANENT:
                            self._refused(seq, alert, code, details)
                            continue
                        self.failures += 1
                        self.last_error = f"{code}: {details}"
                        self.store.mark_failed(seq, self.last_error)
                        log.info("bank unreachable at %s (%s); retry in %.1f s", self.target, self.last_error, backoff)
                        self._stop.wait(backoff)
                        backoff = min(backoff * 2, self.max_backoff)
                        break
                    self.store.mark_delivered(seq, ack.duplicate)
                    self.delivered += 1
                    self.duplicates += int(ack.duplicate)
                    backoff = self.min_backoff
        finally:
            channel.close()
