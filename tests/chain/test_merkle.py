"""Merkle trees from Python verify on chain (OpenZeppelin layout) and fail for any tampered byte."""

from __future__ import annotations

import os
import random

import pytest

from contracts.merkle import MerkleTree, leaf_hash, process_proof, record_leaf, verify


def test_root_matches_openzeppelin_reference_vector() -> None:
    # The example of @openzeppelin/merkle-tree's README: [[address, uint256], ...].
    leaves = [
        leaf_hash(["address", "uint256"], ["0x1111111111111111111111111111111111111111", 5000000000000000000]),
        leaf_hash(["address", "uint256"], ["0x2222222222222222222222222222222222222222", 2500000000000000000]),
    ]
    assert MerkleTree.build(leaves).root.hex() == "d4dee0beab2d53f2cc83e567171bd2820e49898130a22622b10ead383e90bd77"


def test_single_leaf_tree_has_empty_proof_and_root_equal_to_leaf() -> None:
    leaf = record_leaf("model", "v1", bytes(32))
    tree = MerkleTree.build([leaf])
    assert tree.root == leaf
    assert tree.proof(leaf) == []


def test_empty_tree_is_refused() -> None:
    with pytest.raises(ValueError):
        MerkleTree.build([])


SIZES = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 64, 99, 128, 257, 511, 777, 1000]


@pytest.mark.parametrize("size", SIZES)
def test_python_proofs_verify_on_chain(chain, size: int) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(size)
    leaves = [rng.randbytes(32) for _ in range(size)]
    tree = MerkleTree.build(leaves)
    sample = leaves if size <= 17 else [leaves[0], leaves[-1], *rng.sample(leaves, 12)]
    verify_view = chain.registry.functions.verify
    for leaf in sample:
        proof = tree.proof(leaf)
        assert verify(tree.root, leaf, proof)
        assert verify_view(tree.root, leaf, proof).call() is True


def test_random_sizes_from_1_to_1000_verify_locally() -> None:
    rng = random.Random(7)
    for size in sorted(set(rng.sample(range(1, 1001), 60)) | {1, 2, 3, 999, 1000}):
        leaves = [rng.randbytes(32) for _ in range(size)]
        tree = MerkleTree.build(leaves)
        proofs = tree.all_proofs()
        assert len(proofs) == size
        assert all(process_proof(leaf, proofs[leaf]) == tree.root for leaf in leaves)


@pytest.mark.parametrize("size", [2, 3, 1000])
def test_every_tampered_byte_fails_on_chain(chain, size: int) -> None:  # type: ignore[no-untyped-def]
    leaves = [os.urandom(32) for _ in range(size)]
    tree = MerkleTree.build(leaves)
    leaf = leaves[size // 2]
    proof = tree.proof(leaf)
    verify_view = chain.registry.functions.verify
    assert verify_view(tree.root, leaf, proof).call() is True

    def flipped(value: bytes, i: int) -> bytes:
        return value[:i] + bytes([value[i] ^ 0x01]) + value[i + 1 :]

    for i in range(32):
        assert verify_view(tree.root, flipped(leaf, i), proof).call() is False
        assert verify_view(flipped(tree.root, i), leaf, proof).call() is False
        for j in range(len(proof)):
            bad = list(proof)
            bad[j] = flipped(proof[j], i)
            assert verify_view(tree.root, leaf, bad).call() is False
