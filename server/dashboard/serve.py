"""Serve the dashboard over HTTPS with mutual TLS: only holders of a certificate from the bank's
CA get past the handshake, and only the operator role past `OperatorOnly`.

The server's certificate is the bank's (`yinqi bank certs init`: `server.pem` for the hosts it
was made for, 127.0.0.1 and localhost by default); the listening address is loopback unless the
caller names another one. `DashboardServer` runs uvicorn in a thread (the demo, tests); the
CLI runs it in the foreground.
"""

from __future__ import annotations

import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any

from federation.adapters.uvicorn import PeerCertH11Protocol
from federation.errors import YinqiError
from server.dashboard.app import create_app
from server.dashboard.data import DashboardData, Sources
from server.security.ca import CertSet
from server.security.identity import RevocationList

LOOPBACK = "127.0.0.1"


@dataclass
class DashboardServer:
    """A running dashboard: `url`, and `stop()`."""

    url: str
    server: Any
    thread: threading.Thread | None
    data: DashboardData

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout)
        self.data.close()


def config(data: DashboardData, certs: CertSet, host: str = LOOPBACK, port: int = 0, log_level: str = "warning") -> Any:
    """uvicorn's configuration: HTTPS with the bank's server certificate, client certificates
    required and verified against the bank's CA, the peer's certificate passed to the app."""
    import uvicorn

    for path in (certs.ca, certs.cert, certs.key, certs.crl):
        if not path.is_file():
            raise YinqiError(f"{path}: missing; the dashboard needs the bank's CA directory (`yinqi bank certs init`)")
    app = create_app(data, RevocationList(certs.crl, certs.ca))
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=PeerCertH11Protocol,
        ws="none",
        lifespan="off",
        ssl_certfile=str(certs.cert),
        ssl_keyfile=str(certs.key),
        ssl_ca_certs=str(certs.ca),
        ssl_cert_reqs=ssl.CERT_REQUIRED,
        log_level=log_level,
        access_log=False,
    )


def start(
    sources: Sources, certs: CertSet, host: str = LOOPBACK, port: int = 0, timeout: float = 30.0
) -> DashboardServer:
    """Start the dashboard in a background thread; returns once it listens (port 0: a free one)."""
    import uvicorn

    data = DashboardData(sources)
    server = uvicorn.Server(config(data, certs, host, port))
    thread = threading.Thread(target=server.run, name="dashboard", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive():
            data.close()
            raise YinqiError(f"the dashboard did not start on {host}:{port} (is the port taken?)")
        if time.monotonic() > deadline:
            server.should_exit = True
            data.close()
            raise YinqiError(f"the dashboard did not start on {host}:{port} within {timeout:.0f} s")
        time.sleep(0.05)
    bound = server.servers[0].sockets[0].getsockname()[1]
    shown = "localhost" if host in (LOOPBACK, "localhost") else host
    return DashboardServer(f"https://{shown}:{bound}/", server, thread, data)


def spawn_argv(python: str, certs: Any, port: int, url_file: Any) -> list[str]:
    """`yinqi bank dashboard` as `bank up` starts it: loopback, the bank's default database and
    configured chain, writing its URL to `url_file` once it serves."""
    certs_port = ["--certs", str(certs), "--port", str(port)]
    return [python, "-m", "yinqi", "bank", "dashboard", *certs_port, "--chain", "--url-file", str(url_file)]


def wait_for_url(url_file: Any, alive: Any, timeout: float) -> str:
    """The URL a spawned dashboard wrote, polling until `timeout`; YinqiError if it exited."""
    from pathlib import Path

    path = Path(url_file)
    deadline = time.monotonic() + timeout
    while not path.is_file():
        if not alive():
            raise YinqiError("the dashboard exited before serving (see its log)")
        if time.monotonic() > deadline:
            raise YinqiError(f"the dashboard did not serve within {timeout:.0f} s (see its log)")
        time.sleep(0.1)
    return path.read_text().strip()
