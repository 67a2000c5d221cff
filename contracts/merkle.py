"""Merkle trees compatible with OpenZeppelin's `@openzeppelin/merkle-tree` (StandardMerkleTree).

Layout: leaves are double-hashed (`keccak256(keccak256(abi.encode(values)))`), sorted, and put
at the end of an array of 2n-1 nodes in reverse order; each inner node is the keccak256 of its
two children sorted ascending. A proof is the list of siblings from the leaf up, which
`MerkleProof.processProof` in Solidity folds back into the root. Pure functions, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_abi import encode
from eth_utils import keccak

# The record a leaf commits to: what kind of thing, which one, and the hash of its bytes.
LEAF_TYPES = ("string", "string", "bytes32")


def hash_pair(a: bytes, b: bytes) -> bytes:
    """keccak256 of the two nodes in ascending order (commutative)."""
    return keccak(a + b) if a < b else keccak(b + a)


def leaf_hash(types: tuple[str, ...] | list[str], values: tuple[Any, ...] | list[Any]) -> bytes:
    """OpenZeppelin's standard leaf: keccak256(keccak256(abi.encode(values)))."""
    return keccak(keccak(encode(list(types), list(values))))


def record_leaf(kind: str, ref: str, data_hash: bytes) -> bytes:
    """The leaf for one anchored record: (kind, ref, keccak256(data))."""
    if len(data_hash) != 32:
        raise ValueError(f"data hash must be 32 bytes, got {len(data_hash)}")
    return leaf_hash(LEAF_TYPES, (kind, ref, data_hash))


def process_proof(leaf: bytes, proof: list[bytes]) -> bytes:
    """The root that `proof` folds `leaf` into (mirror of MerkleProof.processProof)."""
    node = leaf
    for sibling in proof:
        node = hash_pair(node, sibling)
    return node


def verify(root: bytes, leaf: bytes, proof: list[bytes]) -> bool:
    return process_proof(leaf, proof) == root


@dataclass(frozen=True)
class MerkleTree:
    """A built tree: `nodes[0]` is the root; `index_of[leaf]` finds a leaf's position."""

    nodes: tuple[bytes, ...]
    leaves: tuple[bytes, ...]  # in the caller's order

    @classmethod
    def build(cls, leaves: list[bytes], *, sort_leaves: bool = True) -> MerkleTree:
        """Build from already-hashed 32-byte leaves (OpenZeppelin sorts them by default)."""
        if not leaves:
            raise ValueError("a Merkle tree needs at least one leaf")
        if any(len(leaf) != 32 for leaf in leaves):
            raise ValueError("every leaf must be 32 bytes")
        ordered = sorted(leaves) if sort_leaves else list(leaves)
        size = 2 * len(ordered) - 1
        nodes: list[bytes] = [b""] * size
        for i, leaf in enumerate(ordered):
            nodes[size - 1 - i] = leaf
        for i in range(size - 1 - len(ordered), -1, -1):
            nodes[i] = hash_pair(nodes[2 * i + 1], nodes[2 * i + 2])
        return cls(nodes=tuple(nodes), leaves=tuple(leaves))

    @property
    def root(self) -> bytes:
        return self.nodes[0]

    def _position(self, leaf: bytes) -> int:
        size = len(self.nodes)
        n = (size + 1) // 2
        for i in range(size - n, size):
            if self.nodes[i] == leaf:
                return i
        raise KeyError(f"leaf 0x{leaf.hex()} is not in this tree")

    def proof(self, leaf: bytes) -> list[bytes]:
        """Siblings from `leaf` up to (not including) the root."""
        return self.proof_at(self._position(leaf))

    def proof_at(self, index: int) -> list[bytes]:
        """Proof of the node at array position `index` (a leaf position)."""
        proof = []
        while index > 0:
            sibling = index + 1 if index % 2 == 1 else index - 1
            proof.append(self.nodes[sibling])
            index = (index - 1) // 2
        return proof

    def all_proofs(self) -> dict[bytes, list[bytes]]:
        """Every leaf's proof, in one pass over the leaf positions."""
        size = len(self.nodes)
        n = (size + 1) // 2
        return {self.nodes[i]: self.proof_at(i) for i in range(size - n, size)}
