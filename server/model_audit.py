"""Audit a registered model as an auditor would: the stored files re-hashed, the anchor proof
fetched from the outbox and verified on chain against the registry's hash.

Its own module because it covers both kinds of version: a horizontal one (`server.registry`)
and a vertical one (`server.vertical.registry`, which builds on the registry).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from contracts.audit import verify_proof
from contracts.outbox import AnchorOutbox
from federation.model import load_model
from federation.storage import url_of
from server.credit.errors import BankError
from server.registry import Registry, anchor_record
from server.vertical.registry import recheck_vertical


def audit_model(
    version: str, rpc: str | None = None, engine: Engine | str | None = None, *, chain: Any = None
) -> dict[str, Any]:
    """Check a registered model as an auditor would; raise (BankError / ChainError) if it fails.

    1. re-hash the stored model files and compare with the registry's sha256 (a vertical
       version: `recheck_vertical`, the bank's half and the binding);
    2. fetch the anchor proof of (kind="model", ref=version) from the outbox;
    3. verify it on chain (`contracts.audit.verify_proof`), with the anchored record rebuilt
       from the registry's version and hash, so a proof for another hash cannot pass.
    """
    registry = Registry(engine)
    row = registry.get(version)
    checked: dict[str, Any] = {}
    if (row.summary or {}).get("mode") == "vertical":
        checked = recheck_vertical(row)
    else:
        recomputed = load_model(row.path).version_hash
        if recomputed != row.sha256:
            raise BankError(
                f"model {version}: the stored files at {row.path} hash to {recomputed}, the registry holds "
                f"{row.sha256}: the model changed after registration",
                "refused",
            )
    proof = AnchorOutbox(url_of(registry.engine)).proof_for("model", version)
    if proof is None:
        queued = (
            "queued but not anchored yet: run `yinqi anchor flush`" if row.anchor_leaf else "not queued for anchoring"
        )
        raise BankError(f"model {version}: hash {row.sha256[:12]}… is {queued}", "refused")
    verified = verify_proof(proof, rpc, chain=chain, data=anchor_record(row.version, row.sha256))
    return {"version": version, "sha256": row.sha256, "files_match": True, **checked, **verified.as_dict()}
