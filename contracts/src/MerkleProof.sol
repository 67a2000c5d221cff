// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// @title MerkleProof
/// @notice Verifies proofs of the OpenZeppelin @openzeppelin/merkle-tree layout:
///         sorted-pair keccak256, leaves double-hashed off chain. `contracts/merkle.py` mirrors
///         `processProof` exactly, so a proof built in Python verifies here and vice versa.
library MerkleProof {
    /// @dev The root obtained by folding `proof` into `leaf`; equals the tree's root iff valid.
    function processProof(bytes32[] calldata proof, bytes32 leaf) internal pure returns (bytes32 computed) {
        computed = leaf;
        for (uint256 i = 0; i < proof.length; ) {
            computed = _hashPair(computed, proof[i]);
            unchecked {
                ++i;
            }
        }
    }

    /// @dev True when `proof` shows that `leaf` is part of the tree with `root`.
    function verify(bytes32[] calldata proof, bytes32 root, bytes32 leaf) internal pure returns (bool) {
        return processProof(proof, leaf) == root;
    }

    /// @dev keccak256 of the two nodes in ascending order (commutative), via scratch space.
    function _hashPair(bytes32 a, bytes32 b) private pure returns (bytes32 value) {
        (bytes32 lo, bytes32 hi) = a < b ? (a, b) : (b, a);
        assembly ("memory-safe") {
            mstore(0x00, lo)
            mstore(0x20, hi)
            value := keccak256(0x00, 0x40)
        }
    }
}
