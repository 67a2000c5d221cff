"""Alert intake at the bank: the gRPC `AlertService` and its storage.

`register(grpc_server, engine)` adds the service to the bank's gRPC server (built with
`server.grpc_app.build_server`, behind its guard, run by `yinqi bank serve` / `bank up`), the
one place the bank takes alerts. `serve(address, db_url)` starts an in-process, plaintext server
with only this service for tests, benchmarks and the demo's one-process story.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc
from sqlalchemy.engine import Engine

from federation.storage import url_of
from proto import alerts_pb2_grpc
from proto.channel import new_server
from server.alerts.service import AlertService
from server.alerts.store import AlertStore
from server.db import bank_engine
from server.security.calllog import CallLog
from server.security.guard import Guard

__all__ = ["AlertService", "AlertStore", "register", "serve"]


def register(
    grpc_server: grpc.Server,
    engine: Engine,
    *,
    on_intake: Callable[[str, str, bool], None] | None = None,
) -> AlertService:
    """Add the AlertService (storing into `engine`) to a gRPC server the caller starts.

    Alert hashes go to the anchoring outbox in the same database: an alert and its leaf commit
    together.
    """
    service = AlertService(AlertStore(engine), anchor_db_url=url_of(engine), on_intake=on_intake)
    alerts_pb2_grpc.add_AlertServiceServicer_to_server(service, grpc_server)
    return service


def serve(
    address: str, db_url: str, *, on_intake: Callable[[str, str, bool], None] | None = None, max_workers: int = 4
) -> grpc.Server:
    """A started plaintext gRPC server with only the AlertService (in-process tests, bench, demo).

    Its calls are logged like the bank's (caller `insecure-caller`).
    """
    engine = bank_engine(db_url)
    server = new_server(max_workers, [Guard(CallLog(engine), insecure=True)])
    server.alert_service = register(server, engine, on_intake=on_intake)
    if server.add_insecure_port(address) == 0:
        raise OSError(f"cannot listen on {address}")
    server.start()
    return server
