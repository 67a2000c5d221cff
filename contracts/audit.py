"""The auditor's check: a proof file against the chain alone.

Given a proof file and a chain endpoint, confirm that (1) the leaf is the hash of the record the
file describes, (2) the anchor contract's `verify` view folds leaf and proof into the root,
(3) the root was anchored on that contract, and (4) the named transaction is the one that
anchored it, in the block whose time is reported. Any failure raises ChainError with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eth_utils import keccak

from contracts.errors import ChainError
from contracts.merkle import process_proof, record_leaf
from contracts.proofs import hex32, load_proof


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

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["block_time"] = self.block_time.isoformat()
        return d


def verify_proof(
    proof: dict[str, Any] | Path | str, rpc: str | None = None, *, chain: Any = None, data: bytes | None = None
) -> VerifiedProof:
    """Check `proof` on the chain at `rpc` (default: the configured chain); raise ChainError if not.

    `data`, when given, is the original record: its keccak256 must be the proof's data hash.
    """
    where = str(proof) if isinstance(proof, (str, Path)) else "proof"
    p = load_proof(proof)
    leaf = hex32(p["leaf"], "leaf", where)
    root = hex32(p["root"], "root", where)
    data_hash = hex32(p["data_hash"], "data_hash", where)
    siblings = [hex32(x, f"proof[{i}]", where) for i, x in enumerate(p["proof"])]
    kind, ref = str(p["kind"]), str(p["ref"])

    if data is not None and keccak(data) != data_hash:
        raise ChainError(
            f"{where}: tampered record: the data given hashes to 0x{keccak(data).hex()}, "
            f"the proof is for {p['data_hash']}"
        )
    expected_leaf = record_leaf(kind, ref, data_hash)
    if expected_leaf != leaf:
        raise ChainError(
            f"{where}: tampered leaf: the record (kind={kind!r}, ref={ref!r}, data_hash={p['data_hash']}) "
            f"hashes to 0x{expected_leaf.hex()}, not to the leaf {p['leaf']}"
        )

    if chain is None:
        from contracts.client import connect

        chain = connect(rpc)
    w3 = chain.w3
    chain.sync()
    if int(p["chain_id"]) != chain.chain_id:
        raise ChainError(
            f"{where}: proof is for chain id {p['chain_id']}, but {chain.endpoint} is chain id {chain.chain_id}"
        )
    try:
        contract_address = w3.to_checksum_address(p["contract"])
    except ValueError:
        raise ChainError(f"{where}: field 'contract' is not an address: {p['contract']!r}") from None
    if not w3.eth.get_code(contract_address):
        raise ChainError(f"{where}: no contract at {contract_address} on {chain.endpoint} (chain id {chain.chain_id})")
    registry = chain.bind("AnchorRegistry", contract_address)

    on_chain_ok = registry.functions.verify(root, leaf, siblings).call()
    anchored_at, anchored_block, leaf_count = registry.functions.anchors(root).call()
    if not on_chain_ok:
        computed = process_proof(leaf, siblings)
        if registry.functions.anchors(computed).call()[0]:
            raise ChainError(
                f"{where}: wrong root: leaf and proof lead to anchored root 0x{computed.hex()}, "
                f"but the file names root {p['root']}"
            )
        raise ChainError(
            f"{where}: tampered leaf or proof: verify(root, leaf, proof) on {contract_address} is false; "
            f"leaf or proof was altered (they lead to 0x{computed.hex()}, not to {p['root']})"
        )
    if not anchored_at:
        raise ChainError(
            f"{where}: unknown root: {p['root']} was never anchored on {contract_address} (chain id {chain.chain_id})"
        )

    tx_hash = str(p["tx_hash"])
    try:
        receipt = w3.eth.get_transaction_receipt(tx_hash)
    except Exception:
        raise ChainError(f"{where}: transaction {tx_hash} not found on {chain.endpoint}") from None
    events = [
        e
        for e in registry.events.Anchored().process_receipt(receipt, errors=_discard())
        if e["args"]["root"] == root and e["address"] == contract_address
    ]
    if receipt["status"] != 1 or not events:
        raise ChainError(f"{where}: transaction {tx_hash} did not anchor root {p['root']} on {contract_address}")
    if int(receipt["blockNumber"]) != int(anchored_block) or int(p["block"]) != int(anchored_block):
        raise ChainError(
            f"{where}: block mismatch: root anchored in block {anchored_block}, "
            f"transaction in block {receipt['blockNumber']}, file says block {p['block']}"
        )
    block_time = int(w3.eth.get_block(int(anchored_block))["timestamp"])
    return VerifiedProof(
        kind=kind,
        ref=ref,
        data_hash=p["data_hash"],
        leaf=p["leaf"],
        root=p["root"],
        leaf_count=int(leaf_count),
        contract=contract_address,
        chain_id=chain.chain_id,
        tx_hash=tx_hash,
        block=int(anchored_block),
        block_time=datetime.fromtimestamp(block_time, tz=UTC),
        anchorer=events[0]["args"]["anchorer"],
    )


def _discard() -> Any:
    from web3.logs import DISCARD

    return DISCARD
