// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

/// @title AnchorRegistry
/// @notice The bank's anchoring accounts record Merkle roots of batches of off-chain records
///         (receivable documents, device alert hashes, model versions). An auditor holding a
///         proof file checks it against THIS contract, at an address the auditor trusts, and
///         against the anchoring account the auditor trusts: the root is anchored (`anchors`),
///         the `Anchored` event names who anchored it, and the proof folds the leaf into it.
/// @dev Roles: DEFAULT_ADMIN_ROLE (the bank, deployer) grants and revokes ANCHORER_ROLE.
///      Proofs follow the OpenZeppelin merkle-tree layout (sorted pairs, keccak256, double-hashed leaves),
///      verified by OpenZeppelin's MerkleProof; `contracts/merkle.py` mirrors it off chain.
contract AnchorRegistry is AccessControl {
    /// @notice Role of the accounts allowed to anchor roots (the bank's anchoring key).
    bytes32 public constant ANCHORER_ROLE = keccak256("ANCHORER_ROLE");

    /// @dev One storage slot per root: when and how big the anchored batch was.
    struct Anchor {
        uint64 timestamp;
        uint64 blockNumber;
        uint32 leafCount;
    }

    mapping(bytes32 root => Anchor) private _anchors;

    /// @notice A root was anchored.
    /// @param root The Merkle root of the batch.
    /// @param kind A short label (≤ 32 bytes) of what the leaves are, such as "alert".
    /// @param anchorer The account that anchored it (an auditor checks it is the trusted one).
    /// @param leafCount How many records the tree holds.
    event Anchored(bytes32 indexed root, bytes32 indexed kind, address indexed anchorer, uint32 leafCount);

    /// @notice A zero root was given.
    error EmptyRoot();
    /// @notice A batch of zero leaves was given.
    /// @param root The root that was offered.
    error EmptyBatch(bytes32 root);
    /// @notice The root was anchored before; roots are anchored once.
    /// @param root The root.
    /// @param timestamp When it was anchored (block time, unix seconds).
    error RootAlreadyAnchored(bytes32 root, uint64 timestamp);

    /// @notice The deployer becomes the admin and the first anchorer.
    constructor() {
        _grantRole(DEFAULT_ADMIN_ROLE, msg.sender);
        _grantRole(ANCHORER_ROLE, msg.sender);
    }

    /// @notice Record the Merkle root of a batch of `leafCount` leaves of one `kind`.
    /// @dev Only ANCHORER_ROLE; reverts `AccessControlUnauthorizedAccount(account, ANCHORER_ROLE)`.
    /// @param root The tree's root (non-zero, never anchored before).
    /// @param leafCount Number of leaves in the tree (> 0).
    /// @param kind A short label of what the leaves are.
    function anchor(bytes32 root, uint32 leafCount, bytes32 kind) external onlyRole(ANCHORER_ROLE) {
        if (root == bytes32(0)) revert EmptyRoot();
        if (leafCount == 0) revert EmptyBatch(root);
        Anchor storage existing = _anchors[root];
        if (existing.timestamp != 0) revert RootAlreadyAnchored(root, existing.timestamp);
        _anchors[root] = Anchor(uint64(block.timestamp), uint64(block.number), leafCount);
        emit Anchored(root, kind, msg.sender, leafCount);
    }

    /// @notice When `root` was anchored (all zero if never).
    /// @param root The tree's root.
    /// @return timestamp Block time of the anchoring, unix seconds.
    /// @return blockNumber Block of the anchoring transaction.
    /// @return leafCount Records in the tree.
    function anchors(bytes32 root) external view returns (uint64 timestamp, uint64 blockNumber, uint32 leafCount) {
        Anchor memory a = _anchors[root];
        return (a.timestamp, a.blockNumber, a.leafCount);
    }

    /// @notice True when `proof` shows `leaf` belongs to the tree with `root` (sorted-pair keccak256).
    /// @dev Checks the proof only; combine with `anchors(root)` to know the root was recorded.
    /// @param root The tree's root.
    /// @param leaf The double-hashed leaf.
    /// @param proof Siblings from the leaf up to the root.
    function verify(bytes32 root, bytes32 leaf, bytes32[] calldata proof) external pure returns (bool) {
        return MerkleProof.verifyCalldata(proof, root, leaf);
    }

    /// @notice True when the proof is valid and its root was anchored here.
    /// @param root The tree's root.
    /// @param leaf The double-hashed leaf.
    /// @param proof Siblings from the leaf up to the root.
    function verifyAnchored(bytes32 root, bytes32 leaf, bytes32[] calldata proof) external view returns (bool) {
        return _anchors[root].timestamp != 0 && MerkleProof.verifyCalldata(proof, root, leaf);
    }
}
