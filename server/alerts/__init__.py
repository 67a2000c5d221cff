"""Alert intake at the bank: the gRPC `AlertService` and its storage.

`register(grpc_server, engine)` adds the service to the bank's gRPC server; `serve(address,
db_url)` starts a stand-alone server (tests, the demo).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent import futures

import grpc
from sqlalchemy.engine import Engine

from proto import alerts_pb2_grpc
from server.alerts.service import AlertService
from server.alerts.store import AlertStore
from server.db import bank_engine

__all__ = ["AlertService", "AlertStore", "register", "serve"]


def register(
    grpc_server: grpc.Server,
    engine: Engine,
    *,
    anchor_db_url: str | None = None,
    on_intake: Callable[[str, str, bool], None] | None = None,
) -> AlertService:
    """Add the AlertService (storing into `engine`) to a gRPC server the caller starts.

    Alert hashes go to the anchoring outbox on `anchor_db_url`, by default the same database.
    """
    url = anchor_db_url or engine.url.render_as_string(hide_password=False)
    service = AlertService(AlertStore(engine), anchor_db_url=url, on_intake=on_intake)
    alerts_pb2_grpc.add_AlertServiceServicer_to_server(service, grpc_server)
    return service


def serve(
    address: str, db_url: str, *, on_intake: Callable[[str, str, bool], None] | None = None, max_workers: int = 4
) -> grpc.Server:
    """A started gRPC server with only the AlertService (insecure: loopback tests and demo)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers))
    server.alert_service = register(server, bank_engine(db_url), on_intake=on_intake)  # type: ignore[attr-defined]
    if server.add_insecure_port(address) == 0:
        raise OSError(f"cannot listen on {address}")
    server.start()
    return server
