"""Scoring a merchant with a vertical model: the bank's own features + the platform's embedding.

The bank reads the merchant's row from its own file, asks the platform's embedding service for
the merchant's embedding over mutual TLS (the platform checks its consent book), checks that
the embedding came from the bottom model registered with this version, and combines the two
in its top half. A refusal from the platform (no consent, unknown merchant, other model) is a
one-line `RemoteError` and nothing is scored.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import grpc
import numpy as np

from federation.errors import YinqiError
from federation.vertical.data import load_mapping, load_party
from federation.vertical.model import combined_digest, load_half, top_logits
from proto import vertical_pb2, vertical_pb2_grpc
from proto.channel import call
from server.registry import Registry


class VerticalScoringError(YinqiError):
    """A vertical score that cannot be computed (not a vertical version, wrong embedding, ...)."""


@dataclass(frozen=True)
class VerticalScore:
    merchant_id: str
    default_probability: float
    model_version: str
    model_sha256: str
    top_sha256: str
    bottom_sha256: str
    platform: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class VerticalScorer:
    def __init__(
        self, registry: Registry, version: str | None, bank_data: Path, *, mapping: Path | None = None
    ) -> None:
        row = registry.resolve(version) if version else registry.list()[-1]
        if (row.summary or {}).get("mode") != "vertical":
            raise VerticalScoringError(f"model version {row.version} is not a vertical model")
        self.version = row
        self.half = load_half(row.path, bottom=False)
        self.bottom_sha = str(self.half.meta["bottom_sha256"])
        if combined_digest(self.half.sha256, self.bottom_sha) != row.sha256:
            raise VerticalScoringError(
                f"model {row.version}: stored files do not hash to the registered {row.sha256[:12]}…"
            )
        self.bank = load_party(bank_data, load_mapping(mapping), labelled=False, ignore_label=True)
        self.rows = self.bank.index()

    def score(self, merchant_id: str, channel: grpc.Channel, *, timeout: float = 10.0) -> VerticalScore:
        merchant = merchant_id.strip()
        row = self.rows.get(merchant)
        if row is None:
            raise VerticalScoringError(f"merchant '{merchant}' is not in the bank's data {self.bank.source}")
        stub = vertical_pb2_grpc.EmbeddingServiceStub(channel)
        reply = call(
            stub.Embed, vertical_pb2.EmbedRequest(merchant_id=merchant, bottom_sha256=self.bottom_sha), timeout=timeout
        )
        if reply.bottom_sha256 != self.bottom_sha:
            raise VerticalScoringError(
                f"the platform answered with bottom model {reply.bottom_sha256[:12]}…, not {self.bottom_sha[:12]}…"
            )
        e = np.asarray(reply.embedding, dtype=np.float32)
        k = int(self.half.meta["embedding_dim"])
        clip = float(self.half.meta.get("embedding_clip", 1.0))
        if e.shape != (k,) or not np.isfinite(e).all() or float(np.linalg.norm(e)) > clip * (1 + 1e-4):
            raise VerticalScoringError(
                f"the platform's embedding is not {k} finite numbers within norm {clip}; refused"
            )
        x = self.half.encoder.transform(self.bank.frame.iloc[[row]].reset_index(drop=True), file=self.bank.source)
        z = float(top_logits(self.half.model, x, e[None, :])[0])
        pd = 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))
        return VerticalScore(
            merchant, pd, self.version.version, self.version.sha256, self.half.sha256, self.bottom_sha, reply.platform
        )
