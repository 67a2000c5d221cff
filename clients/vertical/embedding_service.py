"""The platform's embedding service: the bank asks for one merchant's embedding to score it.

The platform answers only when (1) the caller's mutual-TLS client certificate, from the bank's
CA, has the role `operator` (`federation.identity`: the bank's operators score), (2) the
merchant's consent is in force in the platform's own consent book, (3) the bank names the
bottom model its top half was trained with (the platform serves only that model), and (4) the
merchant is in the platform's current file. Otherwise the call is refused
with a one-line reason and nothing is released. Every answered or refused call is logged with
the caller's identity.
"""

from __future__ import annotations

import logging
from pathlib import Path

import grpc
import numpy as np

from clients.consent import ConsentBook
from federation.errors import YinqiError
from federation.identity import OPERATOR, Identity, IdentityError, peer_identity
from federation.vertical.data import load_mapping, load_party
from federation.vertical.model import embed, load_half
from proto import vertical_pb2, vertical_pb2_grpc
from proto.channel import ServerTls, listen, new_server

__all__ = ["EmbeddingRefused", "EmbeddingService", "ServerTls", "build_embedding_server"]

log = logging.getLogger("yinqi.vertical.embedding")
ALLOWED_ROLES = {OPERATOR}  # the bank's operators score merchants


class EmbeddingRefused(YinqiError):
    def __init__(self, message: str, code: grpc.StatusCode = grpc.StatusCode.FAILED_PRECONDITION) -> None:
        super().__init__(message)
        self.code = code


class EmbeddingService(vertical_pb2_grpc.EmbeddingServiceServicer):
    def __init__(
        self,
        model_dir: Path,
        data: Path,
        consent_db: str | None,
        *,
        mapping: Path | None = None,
        platform: str = "platform",
        insecure: bool = False,
    ) -> None:
        self.half = load_half(model_dir, bottom=True)
        self.table = load_party(data, load_mapping(mapping), labelled=False)
        self.rows = self.table.index()
        self.consent = ConsentBook(consent_db)
        self.platform = platform
        self.insecure = insecure
        self.clip = float(self.half.meta.get("embedding_clip", 1.0))

    def caller(self, context: grpc.ServicerContext) -> Identity:
        if self.insecure and not context.auth_context().get("x509_pem_cert"):
            return Identity("loopback caller", OPERATOR)
        return peer_identity(context.auth_context())

    def Embed(self, request: vertical_pb2.EmbedRequest, context: grpc.ServicerContext) -> vertical_pb2.EmbedReply:
        who = "?"
        try:
            caller = self.caller(context)
            who = caller.name
            caller.require(ALLOWED_ROLES, "ask for a merchant's embedding")
            reply = self.answer(request)
        except IdentityError as exc:
            log.warning("embed %r for %s refused: %s", request.merchant_id, who, exc)
            context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))
        except EmbeddingRefused as exc:
            log.warning("embed %r for %s refused: %s", request.merchant_id, who, exc)
            context.abort(exc.code, str(exc))
        log.info("embed %r for %s: answered with bottom model %s", request.merchant_id, who, self.half.sha256[:12])
        return reply

    def answer(self, request: vertical_pb2.EmbedRequest) -> vertical_pb2.EmbedReply:
        merchant = request.merchant_id.strip()
        if not merchant or len(merchant) > 128:
            raise EmbeddingRefused("merchant_id must be 1-128 characters", grpc.StatusCode.INVALID_ARGUMENT)
        if request.bottom_sha256 != self.half.sha256:
            raise EmbeddingRefused(
                f"the bank asks for bottom model {request.bottom_sha256[:12] or '(none)'}…, this platform serves "
                f"{self.half.sha256[:12]}…; register the matching model version"
            )
        if not bool(self.consent.consented([merchant])[0]):
            raise EmbeddingRefused(
                f"merchant '{merchant}' has no consent in force at platform {self.platform}; not scored"
            )
        row = self.rows.get(merchant)
        if row is None:
            raise EmbeddingRefused(
                f"merchant '{merchant}' is not in platform {self.platform}'s data", grpc.StatusCode.NOT_FOUND
            )
        x = self.half.encoder.transform(self.table.frame.iloc[[row]].reset_index(drop=True), file=self.table.source)
        e = embed(self.half.model, x, self.clip)[0]
        return vertical_pb2.EmbedReply(
            merchant_id=merchant,
            embedding=[float(v) for v in np.asarray(e, dtype=np.float64)],
            bottom_sha256=self.half.sha256,
            platform=self.platform,
        )


def build_embedding_server(
    address: str, service: EmbeddingService, tls: ServerTls | None, *, max_workers: int = 4
) -> grpc.Server:
    """A bound, not yet started server; `server.bound_port` holds the port (0 = any).

    `tls` is the platform's service certificate from the bank's CA (`yinqi bank certs issue NAME
    --role platform --server-host HOST`) and that CA; plaintext only for an insecure service.
    """
    server = new_server(max_workers)
    vertical_pb2_grpc.add_EmbeddingServiceServicer_to_server(service, server)
    server.bound_port = listen(server, address, tls, insecure=service.insecure)
    return server
