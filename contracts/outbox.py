"""The durable anchoring outbox: leaves stored before they are acknowledged, anchored in
batches (one `anchor` transaction per batch), retried while the node is down, and a proof file
written for each leaf once its batch is mined. Nothing queued is ever lost.

Life of a leaf: `enqueue` commits it (pending) → `flush` claims pending leaves into a batch and
commits the batch's Merkle root *before* sending → sends `anchor(root)` and records the tx hash →
once mined, writes every leaf's proof. A crash or an outage at any step leaves a batch that the
next `flush` completes: a root already anchored on chain is found through its `Anchored` event
instead of being sent twice.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from eth_utils import keccak
from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from contracts.errors import ChainError
from contracts.merkle import MerkleTree, record_leaf
from contracts.proofs import make_proof, write_proof
from federation.clock import utcnow
from federation.storage import UtcDateTime, engine_for, session_scope

MAX_KIND = 31  # the on-chain kind label is a bytes32


class AnchorBase(DeclarativeBase):
    """The anchoring outbox's tables (kept in the database of whoever anchors: the bank)."""


def default_db_url() -> str:
    """The anchoring store: the bank's database, which every producer of leaves writes to."""
    from federation.config import db_url

    return db_url("bank")


class AnchorBatch(AnchorBase):
    """One Merkle tree of leaves, anchored by one transaction."""

    __tablename__ = "chain_anchor_batches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    root: Mapped[str] = mapped_column(String(66), default="")
    leaf_count: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="prepared")  # prepared | sent | mined
    tx_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    block: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    block_time: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    contract: Mapped[str | None] = mapped_column(String(42), nullable=True)
    chain_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class AnchorLeaf(AnchorBase):
    """One record to anchor: (kind, ref, keccak256(data)) and, once mined, its proof."""

    __tablename__ = "chain_anchor_leaves"
    __table_args__ = (UniqueConstraint("leaf", name="uq_chain_anchor_leaf"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    leaf: Mapped[str] = mapped_column(String(66))
    kind: Mapped[str] = mapped_column(String(32), index=True)
    ref: Mapped[str] = mapped_column(String(256), index=True)
    data_hash: Mapped[str] = mapped_column(String(66))
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("chain_anchor_batches.id"), nullable=True, index=True)
    proof_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    proof_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class AnchorOutbox:
    """Queue records for anchoring and turn them into proofs.

    Parameters
    ----------
    db_url
        SQLAlchemy URL; default: the bank's database (`federation.config.db_url("bank")`),
        where the bank's services queue their leaves.
    max_batch
        Most leaves per Merkle tree / transaction.
    """

    def __init__(self, db_url: str | None = None, *, max_batch: int = 10_000) -> None:
        self.engine = engine_for(db_url or default_db_url(), AnchorBase.metadata)
        self.max_batch = max_batch

    # -- queueing --------------------------------------------------------------------------

    def enqueue(self, data: bytes, kind: str, ref: str, *, session: Session | None = None) -> str:
        """Store a record durably and return its leaf (0x hex). Idempotent for (kind, ref, data).

        With `session` (a transaction on the same database), the leaf is added inside the
        caller's transaction: the caller's record and its leaf commit together or not at all.
        """
        return self.enqueue_hash(keccak(bytes(data)), kind, ref, session=session)

    def enqueue_hash(self, data_hash: bytes, kind: str, ref: str, *, session: Session | None = None) -> str:
        """Like `enqueue` for a record known only by its keccak256 (e.g. `anchor add --hash`)."""
        if len(data_hash) != 32:
            raise ChainError(f"anchor hash: expected 32 bytes (keccak256), got {len(data_hash)}")
        if not kind or len(kind.encode()) > MAX_KIND:
            raise ChainError(f"anchor kind {kind!r}: expected 1..{MAX_KIND} bytes (stored on chain as bytes32)")
        if not ref or len(ref) > 256:
            raise ChainError(f"anchor ref {ref!r}: expected 1..256 characters")
        leaf = "0x" + record_leaf(kind, ref, data_hash).hex()
        row = AnchorLeaf(leaf=leaf, kind=kind, ref=ref, data_hash="0x" + data_hash.hex())
        if session is not None:
            if session.scalar(select(AnchorLeaf.id).where(AnchorLeaf.leaf == leaf)) is None:
                session.add(row)
                session.flush()  # a duplicate from a concurrent writer fails the caller's transaction
            return leaf
        try:
            with session_scope(self.engine) as s:
                if s.scalar(select(AnchorLeaf.id).where(AnchorLeaf.leaf == leaf)) is None:
                    s.add(row)
        except IntegrityError:  # a concurrent enqueue of the same record won the race
            pass
        return leaf

    def pending(self) -> int:
        """Leaves not yet anchored (queued or in a batch not mined yet)."""
        with session_scope(self.engine) as s:
            return len(s.scalars(select(AnchorLeaf.id).where(AnchorLeaf.proof_json.is_(None))).all())

    def proof_for(self, kind: str, ref: str) -> dict[str, Any] | None:
        """The proof of the latest anchored record with this kind and ref, or None."""
        with session_scope(self.engine) as s:
            row = s.scalars(
                select(AnchorLeaf)
                .where(AnchorLeaf.kind == kind, AnchorLeaf.ref == ref, AnchorLeaf.proof_json.is_not(None))
                .order_by(AnchorLeaf.id.desc())
            ).first()
            return json.loads(row.proof_json) if row else None

    # -- anchoring --------------------------------------------------------------------------

    def flush(
        self, chain: Any = None, proof_dir: Path | None = None, *, attempts: int = 1, retry_delay: float = 1.0
    ) -> list[Path]:
        """Anchor every pending leaf (one transaction per batch) and write their proofs.

        With `attempts > 1` an unreachable node is retried with growing delays; the last
        failure raises ChainError, and the leaves stay queued for the next flush.
        """
        from federation.config import data_dir

        proof_dir = Path(proof_dir) if proof_dir is not None else data_dir() / "proofs"
        delay = retry_delay
        for attempt in range(1, attempts + 1):
            try:
                if chain is None:
                    from contracts.client import open_chain

                    chain = open_chain()
                return self._flush_once(chain, proof_dir)
            except ChainError:
                if attempt == attempts:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 30.0)
        return []

    def _flush_once(self, chain: Any, proof_dir: Path) -> list[Path]:
        self._claim_batches()
        written: list[Path] = []
        with session_scope(self.engine) as s:
            open_ids = s.scalars(
                select(AnchorBatch.id).where(AnchorBatch.status != "mined").order_by(AnchorBatch.id)
            ).all()
        for batch_id in open_ids:
            written.extend(self._complete(batch_id, chain, proof_dir))
        return written

    def _claim_batches(self) -> None:
        """Move pending leaves into batches (root committed before anything is sent)."""
        while True:
            with session_scope(self.engine) as s:
                first = s.scalars(
                    select(AnchorLeaf).where(AnchorLeaf.batch_id.is_(None)).order_by(AnchorLeaf.id)
                ).first()
                if first is None:
                    return
                batch = AnchorBatch(kind=first.kind)
                s.add(batch)
                s.flush()
                ids = s.scalars(
                    select(AnchorLeaf.id)
                    .where(AnchorLeaf.batch_id.is_(None), AnchorLeaf.kind == first.kind)
                    .order_by(AnchorLeaf.id)
                    .limit(self.max_batch)
                ).all()
                s.execute(
                    update(AnchorLeaf)
                    .where(AnchorLeaf.id.in_(ids), AnchorLeaf.batch_id.is_(None))
                    .values(batch_id=batch.id)
                )
                leaves = s.scalars(select(AnchorLeaf.leaf).where(AnchorLeaf.batch_id == batch.id)).all()
                if not leaves:
                    s.delete(batch)
                    continue
                tree = MerkleTree.build([bytes.fromhex(x[2:]) for x in leaves])
                batch.root = "0x" + tree.root.hex()
                batch.leaf_count = len(leaves)

    def _complete(self, batch_id: int, chain: Any, proof_dir: Path) -> list[Path]:
        with session_scope(self.engine) as s:
            batch = s.get(AnchorBatch, batch_id)
            assert batch is not None
            root, kind, leaf_count, tx_hash = batch.root, batch.kind, batch.leaf_count, batch.tx_hash
        root_bytes = bytes.fromhex(root[2:])
        registry = chain.registry
        try:
            chain.sync()
            anchored_at, anchored_block, _ = registry.functions.anchors(root_bytes).call()
        except Exception as exc:
            raise ChainError(f"anchor flush: cannot read {chain.endpoint}: {str(exc).splitlines()[0]}") from None
        if anchored_at:
            tx_hash = self._find_anchor_tx(chain, root_bytes, anchored_block) or tx_hash
        else:
            tx_hash = self._send(batch_id, chain, root_bytes, leaf_count, kind)
        receipt = chain.w3.eth.get_transaction_receipt(tx_hash)
        block = chain.w3.eth.get_block(receipt["blockNumber"])
        with session_scope(self.engine) as s:
            leaves = s.scalars(select(AnchorLeaf).where(AnchorLeaf.batch_id == batch_id)).all()
            tree = MerkleTree.build([bytes.fromhex(x.leaf[2:]) for x in leaves])
            if tree.root != root_bytes:
                raise ChainError(f"anchor batch {batch_id}: stored leaves no longer give root {root}")
            proofs = tree.all_proofs()
            paths = []
            for row in leaves:
                leaf = bytes.fromhex(row.leaf[2:])
                proof = make_proof(
                    leaf=leaf,
                    proof=proofs[leaf],
                    root=root_bytes,
                    contract=registry.address,
                    chain_id=chain.chain_id,
                    tx_hash=_hex(tx_hash),
                    block=int(receipt["blockNumber"]),
                    block_time=int(block["timestamp"]),
                    kind=row.kind,
                    ref=row.ref,
                    data_hash=bytes.fromhex(row.data_hash[2:]),
                    leaf_count=len(leaves),
                )
                path = write_proof(proof, proof_dir)
                row.proof_json = json.dumps(proof)
                row.proof_path = str(path)
                paths.append(path)
            batch = s.get(AnchorBatch, batch_id)
            assert batch is not None
            batch.status, batch.tx_hash = "mined", _hex(tx_hash)
            batch.block, batch.block_time = int(receipt["blockNumber"]), int(block["timestamp"])
            batch.contract, batch.chain_id = registry.address, chain.chain_id
        return paths

    def _send(self, batch_id: int, chain: Any, root: bytes, leaf_count: int, kind: str) -> Any:
        label = kind.encode().ljust(32, b"\0")
        try:
            receipt = chain.transact(
                chain.registry.functions.anchor(root, leaf_count, label), "bank", action=f"anchor batch {batch_id}"
            )
        except ChainError as exc:
            if exc.error_name == "RootAlreadyAnchored":  # a concurrent flush anchored this batch first
                _, block, _ = chain.registry.functions.anchors(root).call()
                found = self._find_anchor_tx(chain, root, block)
                if found is not None:
                    return found
            with session_scope(self.engine) as s:
                batch = s.get(AnchorBatch, batch_id)
                assert batch is not None
                batch.attempts += 1
                batch.last_error = str(exc)
            raise
        with session_scope(self.engine) as s:
            batch = s.get(AnchorBatch, batch_id)
            assert batch is not None
            batch.attempts += 1
            batch.status, batch.tx_hash = "sent", _hex(receipt["transactionHash"])
        return receipt["transactionHash"]

    @staticmethod
    def _find_anchor_tx(chain: Any, root: bytes, block: int) -> Any:
        logs = chain.registry.events.Anchored().get_logs(
            from_block=block, to_block=block, argument_filters={"root": root}
        )
        return logs[0]["transactionHash"] if logs else None


def _hex(value: Any) -> str:
    text = value.hex() if isinstance(value, (bytes, bytearray)) else str(value)
    return text if text.startswith("0x") else "0x" + text
