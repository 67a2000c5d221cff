"""The one way yinqi's programs reach a gRPC service: a channel, and calls with one-line errors;
and the one way a service listens with mutual TLS.

The CLI, the IoT monitor's delivery outbox and a platform's node all connect through
`connect()` and call through `call()`. TLS is the default: a channel is plaintext only when
the caller says `insecure=True`. With a client certificate and key the channel speaks mutual
TLS, which the bank's services require of every caller. A service (the bank's PSI, a
platform's embedding service) listens through `listen()` with its certificate from the bank's CA.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc

from federation.errors import YinqiError

Reply = TypeVar("Reply")
Item = TypeVar("Item")

# A request's size at most: half of gRPC's default 4 MiB a message, which the services keep
REQUEST_BYTES = 2 * 1024 * 1024

# gRPC status -> what the caller is told happened.
KIND_OF_CODE = {
    "INVALID_ARGUMENT": "invalid",
    "FAILED_PRECONDITION": "refused",
    "PERMISSION_DENIED": "refused",
    "UNAUTHENTICATED": "refused",
    "NOT_FOUND": "not_found",
    "ALREADY_EXISTS": "refused",
    "RESOURCE_EXHAUSTED": "refused",
}


class RemoteError(YinqiError):
    """A service refused a call or could not be reached; `code` is the gRPC status name."""

    def __init__(self, message: str, code: str, kind: str) -> None:
        super().__init__(message)
        self.code = code
        self.kind = kind


@dataclass(frozen=True)
class ClientTls:
    """The service's CA and, for mutual TLS, this caller's certificate and key (PEM files)."""

    ca: Path
    cert: Path | None = None
    key: Path | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        if (self.cert is None) != (self.key is None):
            raise YinqiError("a client certificate needs its key and a key its certificate (--cert and --key together)")
        return grpc.ssl_channel_credentials(
            root_certificates=read_pem(self.ca, "CA certificate"),
            private_key=read_pem(self.key, "client key") if self.key else None,
            certificate_chain=read_pem(self.cert, "client certificate") if self.cert else None,
        )


@dataclass(frozen=True)
class ServerTls:
    """A service's certificate and key, and the CA its callers' client certificates must chain
    to (mutual TLS: a caller without such a certificate fails the handshake)."""

    cert: Path
    key: Path
    ca: Path

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(read_pem(self.key, "server key"), read_pem(self.cert, "server certificate"))],
            root_certificates=read_pem(self.ca, "CA certificate"),
            require_client_auth=True,
        )


def new_server(max_workers: int = 8, interceptors: Sequence[grpc.ServerInterceptor] = ()) -> grpc.Server:
    """A gRPC server that owns its port: without SO_REUSEPORT (gRPC's default), so a second
    service on a port already taken fails to listen instead of sharing it with a stale one."""
    return grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers),
        interceptors=list(interceptors),
        options=[("grpc.so_reuseport", 0)],
    )


def listen(server: grpc.Server, address: str, tls: ServerTls | None, *, insecure: bool = False) -> int:
    """Bind `server` to `address` (port 0: any free one): mutual TLS with `tls`, plaintext only
    with `insecure=True`. Returns the port; a one-line `YinqiError` when it cannot listen."""
    if tls is None and not insecure:
        raise YinqiError("give --ca, --cert and --key (mutual TLS), or --insecure for a plaintext loopback service")
    try:
        port = server.add_secure_port(address, tls.credentials()) if tls else server.add_insecure_port(address)
    except RuntimeError:  # grpcio >= 1.60 raises where older versions returned 0
        port = 0
    if port == 0:
        raise YinqiError(f"cannot listen on {address} (address in use or not local?)")
    return int(port)


def read_pem(path: Path, what: str) -> bytes:
    """A PEM file's bytes; a one-line `YinqiError` naming the file when it cannot be read."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise YinqiError(f"{path}: {what} file not found") from None
    except OSError as exc:
        raise YinqiError(f"{path}: cannot read the {what} ({exc.strerror})") from None


def connect(address: str, tls: ClientTls | None = None, *, insecure: bool = False) -> grpc.Channel:
    """A channel to `address` (host:port): TLS with `tls`, plaintext only with `insecure=True`."""
    if not address or ":" not in address:
        raise YinqiError(f"service address '{address}': expected HOST:PORT")
    if tls is not None:
        return grpc.secure_channel(address, tls.credentials())
    if not insecure:
        raise YinqiError(
            f"no TLS settings for {address}: give the service's CA (--ca) and this caller's "
            "certificate and key (--cert, --key), or --insecure for a plaintext loopback service"
        )
    return grpc.insecure_channel(address)


def call(method: Callable[..., Reply], request: Any, *, timeout: float = 30.0) -> Reply:
    """Call a stub method; a refusal or an unreachable service becomes a one-line `RemoteError`."""
    try:
        return method(request, timeout=timeout)
    except grpc.RpcError as exc:
        raise remote_error(exc) from None


def in_requests(items: Sequence[Item], max_items: int, max_bytes: int = REQUEST_BYTES) -> Iterator[Sequence[Item]]:
    """`items` (protobuf messages of a repeated field) in consecutive slices of at most
    `max_items` and `max_bytes`, one request each: a report of many merchants must not be
    refused for the size of one message. An item alone over `max_bytes` goes alone."""
    start, size = 0, 0
    for end, item in enumerate(items):
        grown = size + item.ByteSize() + 8  # type: ignore[attr-defined]  # with its tag and length
        if end > start and (end - start >= max_items or grown > max_bytes):
            yield items[start:end]
            start, grown = end, item.ByteSize() + 8  # type: ignore[attr-defined]
        size = grown
    if start < len(items):
        yield items[start:]


# What a failed TLS handshake looks like from the client's side: the server hangs up.
_HANDSHAKE_SIGNS = ("Socket closed", "handshake", "CERTIFICATE", "certificate", "SSL")


def remote_error(exc: grpc.RpcError) -> RemoteError:
    """A gRPC failure as a `RemoteError` with the service's own message."""
    code = exc.code()
    details = exc.details() or code.name
    kind = KIND_OF_CODE.get(code.name)
    if kind is not None:
        return RemoteError(details, code.name, kind)
    if code == grpc.StatusCode.UNAVAILABLE and any(sign in details for sign in _HANDSHAKE_SIGNS):
        return RemoteError(
            "the service refused the connection during the TLS handshake: it accepts only client "
            "certificates issued by its CA and not revoked (check --ca, --cert and --key) "
            f"[{details.rsplit(': ', 1)[-1][:120]}]",
            code.name,
            "refused",
        )
    return RemoteError(f"service unavailable ({code.name}): {details}", code.name, "unavailable")
