"""The bank's SuperLink process: its command line and its readiness check."""

from __future__ import annotations

import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from federation.flower import flwr_bin
from federation.processes import Proc, log_tail
from server.deploy.errors import DeployError


@dataclass(frozen=True)
class TlsPaths:
    """CA, server certificate and key the SuperLink serves TLS with."""

    ca: Path
    cert: Path
    key: Path


def superlink_argv(host: str, port: int, tls: TlsPaths | None, database: Path | None) -> list[str]:
    """`flower-superlink` serving the Fleet (and Control) API on host:port."""
    argv = [
        flwr_bin("flower-superlink"),
        "--host",
        host,
        "--port",
        str(port),
        "--disable-runtime-dependency-installation",
    ]
    if tls is None:
        argv.append("--insecure")
    else:
        argv += [
            "--ssl-ca-certfile",
            str(tls.ca),
            "--ssl-certfile",
            str(tls.cert),
            "--ssl-keyfile",
            str(tls.key),
            "--enable-supernode-auth",
        ]
    if database is not None:
        argv += ["--database", str(database)]
    return argv


def wait_health(address: str, ca: Path | None, timeout: float = 30.0, proc: Proc | None = None) -> float:
    """Poll the SuperLink's `/health` until it answers; returns the seconds it took."""
    scheme = "https" if ca else "http"
    context = ssl.create_default_context(cafile=str(ca)) if ca else None
    start = time.monotonic()
    while True:
        try:
            with urllib.request.urlopen(f"{scheme}://{address}/health", timeout=2, context=context) as res:
                if res.status == 200:
                    return time.monotonic() - start
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        if proc is not None and proc.popen.poll() is not None:
            raise DeployError(f"SuperLink exited with code {proc.popen.returncode}:\n{log_tail(proc.log)}")
        if time.monotonic() - start > timeout:
            raise DeployError(f"SuperLink at {address} did not answer /health within {timeout:.0f} s")
        time.sleep(0.1)
