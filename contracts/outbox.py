"""The durable anchoring outbox: leaves stored before they are acknowledged, anchored in
batches (one `anchor` transaction per batch), retried while the node is down, and a proof file
written for each leaf once its batch is mined. Nothing queued is ever lost.

Life of a leaf: `enqueue` commits it (pending; inside the caller's transaction when given one,
so a record and its leaf commit together) → `flush` claims pending leaves into a batch and
commits the batch's Merkle root *before* sending → sends `anchor(root)` and records the tx hash →
once mined, writes every leaf's proof. A crash or an outage at any step leaves a batch that the
next `flush` completes: a root already anchored on chain is found through its `Anchored` event
instead of being sent twice.

One store, one flusher at a time: `anchor flush` and the bank's periodic flusher (`run_flusher`)
drain the same database, and a flush first takes the store's lease (a row, so it works across
processes and on PostgreSQL); a second flush waits for the first, then finds nothing left. Each
flush reports only the proofs it wrote itself, so counts printed are true.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from eth_utils import keccak
from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint, func, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from contracts.errors import ChainError
from contracts.merkle import MerkleTree, record_leaf
from contracts.proofs import make_proof, write_proof
from federation.clock import utcnow
from federation.storage import UtcDateTime, engine_for, session_scope

log = logging.getLogger(__name__)

LEASE_TTL = timedelta(minutes=5)  # renewed per batch; a crashed flusher's lease lapses after this

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


class AnchorFlushLease(AnchorBase):
    """Who is flushing the store now (one row): flushes take turns, across processes."""

    __tablename__ = "chain_anchor_flush_lease"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(128), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


@dataclass
class FlusherStats:
    """What a periodic flusher did until it was stopped."""

    flushes: int = 0
    anchored: int = 0
    errors: int = 0
    last_error: str | None = None


def _same_database(a: Engine, b: Engine) -> bool:
    if a.dialect.name != b.dialect.name:
        return False
    if a.dialect.name == "sqlite":
        da, db = a.url.database or "", b.url.database or ""
        return da == db or (da not in ("", ":memory:") and Path(da).resolve() == Path(db).resolve())
    return a.url.render_as_string(hide_password=False) == b.url.render_as_string(hide_password=False)


def _holder_dead(holder: str) -> bool:
    """True when `holder` (host:pid:nonce) is a process on this host that no longer runs."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


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
        self._holder: str | None = None

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
            bind = session.get_bind()
            if isinstance(bind, Engine) and not _same_database(bind, self.engine):
                raise ChainError(
                    f"anchor enqueue: the caller's transaction is on {bind.url!r}, but this outbox is drained "
                    f"from {self.engine.url!r}; the leaf must go into the anchoring store"
                )
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
            return int(s.scalar(select(func.count(AnchorLeaf.id)).where(AnchorLeaf.proof_json.is_(None))) or 0)

    def proof_for(self, kind: str, ref: str) -> dict[str, Any] | None:
        """The proof of the latest anchored record with this kind and ref, or None."""
        with session_scope(self.engine) as s:
            row = s.scalars(
                select(AnchorLeaf)
                .where(AnchorLeaf.kind == kind, AnchorLeaf.ref == ref, AnchorLeaf.proof_json.is_not(None))
                .order_by(AnchorLeaf.id.desc())
            ).first()
            if row is None or row.proof_json is None:
                return None
            proof: dict[str, Any] = json.loads(row.proof_json)
            return proof

    # -- anchoring --------------------------------------------------------------------------

    def flush(
        self,
        chain: Any = None,
        proof_dir: Path | None = None,
        *,
        attempts: int = 1,
        retry_delay: float = 1.0,
        wait: float = 120.0,
    ) -> list[Path]:
        """Anchor every pending leaf (one transaction per batch) and write their proofs.

        Returns the proofs this call wrote. Another flush of the same store (another process,
        the bank's flusher) is waited for up to `wait` seconds. With `attempts > 1` an
        unreachable node is retried with growing delays; the last failure raises ChainError,
        and the leaves stay queued for the next flush.
        """
        from federation.config import data_dir

        proof_dir = Path(proof_dir) if proof_dir is not None else data_dir() / "proofs"
        with self._lease(wait):
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

    # -- the store's lease: one flusher at a time -------------------------------------------

    @contextmanager
    def _lease(self, wait: float) -> Iterator[None]:
        me = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        deadline = time.monotonic() + wait
        while True:
            holder = self._try_lease(me)
            if holder is None:
                break
            if time.monotonic() >= deadline:
                raise ChainError(f"anchor flush: another flush ({holder}) holds the anchoring store; try again later")
            time.sleep(0.05)
        self._holder = me
        try:
            yield
        finally:
            self._holder = None
            with session_scope(self.engine) as s:
                s.execute(
                    update(AnchorFlushLease)
                    .where(AnchorFlushLease.name == "flush", AnchorFlushLease.holder == me)
                    .values(holder=None, expires_at=None)
                )

    def _try_lease(self, me: str) -> str | None:
        """Take the lease for `me`; None when taken, else who holds it."""
        now = utcnow()
        try:
            with session_scope(self.engine) as s:
                taken = s.execute(
                    update(AnchorFlushLease)
                    .where(
                        AnchorFlushLease.name == "flush",
                        or_(
                            AnchorFlushLease.holder.is_(None),
                            AnchorFlushLease.expires_at < now,
                            AnchorFlushLease.holder == me,
                        ),
                    )
                    .values(holder=me, expires_at=now + LEASE_TTL)
                )
                if getattr(taken, "rowcount", 0) == 1:
                    return None
                row = s.get(AnchorFlushLease, "flush")
                if row is None:
                    s.add(AnchorFlushLease(name="flush", holder=me, expires_at=now + LEASE_TTL))
                    return None
                holder = row.holder or "?"
                if _holder_dead(holder):
                    stolen = s.execute(
                        update(AnchorFlushLease)
                        .where(AnchorFlushLease.name == "flush", AnchorFlushLease.holder == holder)
                        .values(holder=me, expires_at=now + LEASE_TTL)
                    )
                    if getattr(stolen, "rowcount", 0) == 1:
                        log.warning("anchor flush: took over the lease of %s, which no longer runs", holder)
                        return None
                return holder
        except (IntegrityError, OperationalError) as exc:  # a concurrent first lease, a busy database
            return f"another flush ({type(exc).__name__})"

    def _renew(self) -> None:
        me = getattr(self, "_holder", None)
        if me is None:
            return
        with session_scope(self.engine) as s:
            s.execute(
                update(AnchorFlushLease)
                .where(AnchorFlushLease.name == "flush", AnchorFlushLease.holder == me)
                .values(expires_at=utcnow() + LEASE_TTL)
            )

    # -- the bank's periodic flusher ----------------------------------------------------------

    def run_flusher(
        self,
        stop: threading.Event,
        interval: float = 30.0,
        *,
        rpc: str | None = None,
        chain: Any = None,
        proof_dir: Path | None = None,
        on_flush: Callable[[list[Path]], None] | None = None,
        on_error: Callable[[str], None] | None = None,
    ) -> FlusherStats:
        """Drain the store every `interval` seconds until `stop` is set; returns what it did.

        Meant for a thread in the bank's process (see `start_flusher`). A node outage or any
        other failure is logged and retried at the next tick; leaves stay queued meanwhile.
        """
        if not interval > 0:
            raise ChainError(f"anchor flusher: interval must be > 0 seconds, got {interval!r}")
        stats = FlusherStats()
        given = chain  # a chain the caller handed in stays the one to anchor on, after a failure too
        while not stop.is_set():
            try:
                if self.pending():
                    if chain is None:
                        from contracts.client import open_chain

                        chain = open_chain(rpc)
                    paths = self.flush(chain, proof_dir, wait=interval)
                    stats.flushes += 1
                    stats.anchored += len(paths)
                    if on_flush is not None:
                        on_flush(paths)
            except ChainError as exc:
                stats.errors += 1
                stats.last_error = str(exc)
                chain = given  # reconnect at the next tick (to the configured chain, unless one was given)
                log.warning("anchor flusher: %s (retrying in %g s)", exc, interval)
                if on_error is not None:
                    on_error(str(exc))
            except Exception as exc:  # a bug must not stop anchoring for good: log it, keep going
                stats.errors += 1
                stats.last_error = f"{type(exc).__name__}: {exc}"
                chain = None
                log.exception("anchor flusher: unexpected failure (retrying in %g s)", interval)
                if on_error is not None:
                    on_error(stats.last_error)
            stop.wait(interval)
        return stats

    def start_flusher(self, interval: float = 30.0, **kwargs: Any) -> tuple[threading.Thread, threading.Event]:
        """Run `run_flusher` in a daemon thread; set the returned event (then join) to stop it."""
        stop = threading.Event()
        thread = threading.Thread(
            target=self.run_flusher, args=(stop, interval), kwargs=kwargs, name="anchor-flusher", daemon=True
        )
        thread.start()
        return thread, stop

    def _flush_once(self, chain: Any, proof_dir: Path) -> list[Path]:
        self._claim_batches()
        written: list[Path] = []
        with session_scope(self.engine) as s:
            open_ids = s.scalars(
                select(AnchorBatch.id).where(AnchorBatch.status != "mined").order_by(AnchorBatch.id)
            ).all()
        for batch_id in open_ids:
            self._renew()
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
                chain.fn(chain.registry, "anchor", root, leaf_count, label), "bank", action=f"anchor batch {batch_id}"
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
