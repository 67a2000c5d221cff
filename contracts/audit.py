"""The auditor's check: a proof file against the anchoring contract and account the auditor trusts.

Given a proof, the chain, and the trusted registry + anchorer(s) (`contracts.trust`), confirm
that (1) the record's hash is the original document's, (2) the leaf is the hash of the record
the file describes, (3) the file names the trusted registry, (4) the siblings fold the leaf into
the root (off chain and by the registry's `verify` view), (5) the root was anchored on the
trusted registry, by a trusted anchorer, in the transaction and block the file names. Any
failure raises ChainError with the reason, in one line. Nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eth_utils import keccak

from contracts.errors import ChainError
from contracts.merkle import process_proof, record_leaf
from contracts.proofs import Proof, parse_proof
from contracts.trust import TrustedAnchor, auditor_chain, own_deployment, trusted_anchor


@dataclass(frozen=True)
class VerifiedProof:
    """What an auditor has established about one record."""

    kind: str
    ref: str
    data_hash: str
    leaf: str
    root: str
    leaf_count: int
    contract: str
    chain_id: int
    tx_hash: str
    block: int
    block_time: datetime
    anchorer: str
    trusted_by: str = ""

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["block_time"] = self.block_time.isoformat()
        return d


def max_depth(leaf_count: int) -> int:
    """Most siblings a leaf of an OpenZeppelin-layout tree of `leaf_count` leaves can have."""
    return (2 * leaf_count - 1).bit_length() - 1


def verify_proof(
    proof: dict[str, Any] | Path | str,
    rpc: str | None = None,
    *,
    chain: Any = None,
    data: bytes | None = None,
    registry: str | None = None,
    anchorers: list[str] | None = None,
) -> VerifiedProof:
    """Check `proof` on chain against a trusted registry and anchorer; raise ChainError if not.

    Trust comes from `registry`/`anchorers`, else `YINQI_AUDIT_*` / `[audit]` (see
    `contracts.trust`), else — for the bank checking its own anchors — the registry bound on
    `chain` (or this machine's deployment record) and the bank's account. The address inside
    the proof is never trusted on its own. `data`, when given, is the original record: its
    keccak256 must be the proof's data hash.
    """
    p = parse_proof(proof)
    _check_record(p, data)
    trust = trusted_anchor(registry, anchorers)
    if chain is None:
        if trust is None:
            from contracts.client import open_chain

            chain = open_chain(rpc, deploy=False)  # the bank's own contracts on this machine
        else:
            chain = auditor_chain(rpc)
    if trust is None:
        trust = own_deployment(chain)
    try:
        return _verify_on_chain(p, chain, trust)
    except ChainError:
        raise
    except Exception as exc:  # a node answering nonsense: one line, never a traceback
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise ChainError(f"{p.where}: cannot check on {chain.endpoint}: {first}") from None


def _check_record(p: Proof, data: bytes | None) -> None:
    if data is not None and keccak(data) != p.data_hash:
        raise ChainError(
            f"{p.where}: tampered record: the document given hashes to 0x{keccak(data).hex()}, "
            f"the proof is for 0x{p.data_hash.hex()}"
        )
    expected_leaf = record_leaf(p.kind, p.ref, p.data_hash)
    if expected_leaf != p.leaf:
        raise ChainError(
            f"{p.where}: tampered leaf: the record (kind={p.kind!r}, ref={p.ref!r}, data_hash=0x{p.data_hash.hex()}) "
            f"hashes to 0x{expected_leaf.hex()}, not to the leaf 0x{p.leaf.hex()}"
        )


def _verify_on_chain(p: Proof, chain: Any, trust: TrustedAnchor) -> VerifiedProof:
    w3 = chain.w3
    chain.sync()
    where = p.where
    if p.chain_id != chain.chain_id:
        raise ChainError(
            f"{where}: proof is for chain id {p.chain_id}, but {chain.endpoint} is chain id {chain.chain_id}"
        )
    if p.contract.lower() != trust.registry.lower():
        raise ChainError(
            f"{where}: the proof names contract {p.contract}, not the trusted anchoring contract {trust.registry} "
            f"({trust.source}): a record anchored elsewhere proves nothing"
        )
    if not w3.eth.get_code(trust.registry):
        raise ChainError(f"{where}: no contract at the trusted registry {trust.registry} on {chain.endpoint}")
    registry = chain.bind("AnchorRegistry", trust.registry)
    try:
        anchored_at, anchored_block, leaf_count = registry.functions.anchors(p.root).call()
    except Exception:
        raise ChainError(
            f"{where}: {trust.registry} does not answer as an AnchorRegistry (anchors() failed); "
            "check the --registry address"
        ) from None

    computed = process_proof(p.leaf, list(p.siblings))
    if computed != p.root:
        if registry.functions.anchors(computed).call()[0]:
            raise ChainError(
                f"{where}: wrong root: leaf and proof lead to anchored root 0x{computed.hex()}, "
                f"but the file names root 0x{p.root.hex()}"
            )
        raise ChainError(
            f"{where}: tampered leaf or proof: the siblings fold the leaf into 0x{computed.hex()}, "
            f"not into the root 0x{p.root.hex()}"
        )
    if not anchored_at:
        raise ChainError(
            f"{where}: unknown root: 0x{p.root.hex()} was never anchored on {trust.registry} (chain id {chain.chain_id})"
        )
    if len(p.siblings) > max_depth(int(leaf_count)):
        raise ChainError(
            f"{where}: {len(p.siblings)} siblings, but the anchored tree of {leaf_count} leaves "
            f"has at most {max_depth(int(leaf_count))}"
        )
    if not registry.functions.verify(p.root, p.leaf, list(p.siblings)).call():
        raise ChainError(f"{where}: tampered leaf or proof: verify(root, leaf, proof) on {trust.registry} is false")

    event = _anchoring_event(registry, p.root, int(anchored_block), where)
    anchorer = str(event["args"]["anchorer"])
    if anchorer.lower() not in {a.lower() for a in trust.anchorers}:
        raise ChainError(
            f"{where}: root 0x{p.root.hex()} was anchored by {anchorer}, not by a trusted anchorer "
            f"({', '.join(trust.anchorers)}; {trust.source})"
        )
    tx_hash = "0x" + bytes(event["transactionHash"]).hex()
    if tx_hash != "0x" + p.tx_hash.hex():
        raise ChainError(
            f"{where}: transaction 0x{p.tx_hash.hex()} did not anchor root 0x{p.root.hex()} (it was {tx_hash})"
        )
    if p.block != int(anchored_block):
        raise ChainError(f"{where}: block mismatch: root anchored in block {anchored_block}, the file says {p.block}")
    block_time = int(w3.eth.get_block(int(anchored_block))["timestamp"])
    return VerifiedProof(
        kind=p.kind,
        ref=p.ref,
        data_hash="0x" + p.data_hash.hex(),
        leaf="0x" + p.leaf.hex(),
        root="0x" + p.root.hex(),
        leaf_count=int(leaf_count),
        contract=trust.registry,
        chain_id=chain.chain_id,
        tx_hash=tx_hash,
        block=int(anchored_block),
        block_time=datetime.fromtimestamp(block_time, tz=UTC),
        anchorer=anchorer,
        trusted_by=trust.source,
    )


def _anchoring_event(registry: Any, root: bytes, block: int, where: str) -> Any:
    """The one `Anchored(root, …)` event the trusted registry emitted in `block`."""
    logs = registry.events.Anchored().get_logs(from_block=block, to_block=block, argument_filters={"root": root})
    if len(logs) != 1:
        raise ChainError(f"{where}: expected one Anchored event for the root in block {block}, found {len(logs)}")
    return logs[0]
