"""uvicorn internals: hand the TLS peer's certificate to the ASGI application.

uvicorn (0.49) verifies a client certificate when started with `ssl_cert_reqs=CERT_REQUIRED`
but does not put it in the request scope (the ASGI TLS extension is not implemented). This
protocol class reads it from the connection's SSL object when the connection is made and adds
it to each request's scope as the ASGI TLS extension says: `scope["extensions"]["tls"]
["client_cert_chain"] = [PEM]`. Pass it as `uvicorn.Config(..., http=PeerCertH11Protocol)`.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol


def peer_pem(transport: asyncio.BaseTransport) -> str | None:
    """The verified client certificate of a TLS connection as PEM, or None (plaintext, none sent)."""
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return ssl.DER_cert_to_PEM_cert(der) if der else None


class PeerCertH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, adding the peer's certificate to every request's scope."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        pem = peer_pem(transport)
        inner = self.app

        async def app(scope: Any, receive: Any, send: Any) -> None:
            extensions = dict(scope.get("extensions") or {})
            extensions["tls"] = {"client_cert_chain": [pem] if pem else [], "tls_used": True}
            scope["extensions"] = extensions
            await inner(scope, receive, send)

        self.app = app
