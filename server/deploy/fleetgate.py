"""The only door platforms reach: a TLS front that forwards Flower's Fleet API and nothing else.

Flower 1.42 serves the Fleet, Control and Runtime APIs on one HTTP port and has no open-source
authentication for the Control API (account authentication is an enterprise plug-in). Anyone
who can reach that port with the public `ca.crt` could list nodes, register their own node key
and start a run of their own app. So `yinqi bank up` runs the SuperLink on loopback only and
puts this gate on the public address: it terminates TLS with the bank's server certificate,
forwards exactly the Fleet API's POST paths (and `GET /health`) to the loopback SuperLink, and
answers everything else with 403 and a log line. SuperNode authentication is untouched: the
signed headers travel through, and the SuperLink checks them as before. `yinqi bank register`
and `yinqi bank train` reach the Control API on loopback: they are operator actions on the
bank's host.

Run as a process: `python -m server.deploy.fleetgate --listen HOST:PORT --upstream URL ...`.
"""

from __future__ import annotations

import argparse
import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

log = logging.getLogger("yinqi.fleetgate")

# Every path Flower 1.42's SuperNode calls (flwr/supernode/fleet_http_client.py); pinned by
# tests/deploy/test_fleet_gate.py against the installed Flower.
FLEET_PATHS = frozenset(
    f"/v1/fleet/{name}"
    for name in (
        "register-node",
        "activate-node",
        "deactivate-node",
        "unregister-node",
        "send-node-heartbeat",
        "pull-messages",
        "push-messages",
        "get-run",
        "get-fab",
        "push-object",
        "pull-object",
        "confirm-message-received",
    )
)
OPEN = frozenset({("GET", "/health")} | {("POST", path) for path in FLEET_PATHS})
REFUSED = "refused control-plane request"  # the log line `bank status` looks for
MAX_BODY = 256 * 1024 * 1024
HOP_BY_HOP = frozenset(
    {
        "host",
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)


def create_app(upstream: str, upstream_ca: Path | None = None) -> Starlette:
    """The gate as an ASGI app forwarding the Fleet API to `upstream` (http(s)://host:port)."""
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(upstream_ca)) if upstream_ca else True
    client = httpx.AsyncClient(base_url=upstream, verify=verify, timeout=httpx.Timeout(60.0, connect=10.0))

    async def forward(request: Request) -> Response:
        peer = f"{request.client.host}:{request.client.port}" if request.client else "?"
        if (request.method, request.url.path) not in OPEN:
            log.warning(
                "%s: %s %s from %s (only the Fleet API is served here)", REFUSED, request.method, request.url.path, peer
            )
            return PlainTextResponse(
                "yinqi fleet gate: only Flower's Fleet API is served at this address\n", status_code=403
            )
        body = await request.body()
        if len(body) > MAX_BODY:
            return PlainTextResponse(f"request body over {MAX_BODY} bytes\n", status_code=413)
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        headers.append(("x-forwarded-for", peer.rsplit(":", 1)[0]))
        try:
            answer = await client.request(request.method, request.url.path, content=body, headers=headers)
        except httpx.HTTPError as exc:
            log.error("SuperLink unreachable for %s %s: %s", request.method, request.url.path, exc)
            return PlainTextResponse("the bank's SuperLink is not reachable right now\n", status_code=503)
        kept = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP | {"content-encoding"}}
        return Response(content=answer.content, status_code=answer.status_code, headers=kept)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await client.aclose()

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    return Starlette(routes=[Route("/{path:path}", forward, methods=methods)], lifespan=lifespan)


def gate_argv(
    python: str, listen: str, upstream: str, *, ca: Path | None, cert: Path | None, key: Path | None
) -> list[str]:
    """The command line that starts a gate process (what `bank up` runs)."""
    argv = [python, "-m", "server.deploy.fleetgate", "--listen", listen, "--upstream", upstream]
    if ca is not None:
        argv += ["--ca", str(ca)]
    if cert is not None and key is not None:
        argv += ["--cert", str(cert), "--key", str(key)]
    return argv


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="Forward only Flower's Fleet API to a loopback SuperLink.")
    parser.add_argument("--listen", required=True, help="HOST:PORT the platforms dial")
    parser.add_argument("--upstream", required=True, help="the SuperLink, e.g. https://127.0.0.1:9093")
    parser.add_argument("--ca", type=Path, help="CA the SuperLink's certificate chains to")
    parser.add_argument("--cert", type=Path, help="server certificate for the public side (TLS)")
    parser.add_argument("--key", type=Path, help="its private key")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    host, port = args.listen.rsplit(":", 1)
    log.info("fleet gate on %s -> %s (%s)", args.listen, args.upstream, "TLS" if args.cert else "plaintext")
    uvicorn.run(
        create_app(args.upstream, args.ca),
        host=host.strip("[]"),
        port=int(port),
        ssl_certfile=str(args.cert) if args.cert else None,
        ssl_keyfile=str(args.key) if args.key else None,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
