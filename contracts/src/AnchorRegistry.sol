// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {MerkleProof} from "./MerkleProof.sol";

/// @title AnchorRegistry
/// @notice Authorised anchorers record Merkle roots of batches of off-chain records (receivable
///         documents, device alert hashes, model versions). An auditor holding a proof file checks
///         it against this contract alone: the root is anchored (`anchors`) and the proof folds the
///         leaf into that root (`verify`).
contract AnchorRegistry {
    /// @dev One storage slot per root: when and how big the anchored batch was.
    struct Anchor {
        uint64 timestamp;
        uint64 blockNumber;
        uint32 leafCount;
    }

    address public owner;
    mapping(address account => bool) public isAnchorer;
    mapping(bytes32 root => Anchor) private _anchors;

    /// @notice A root was anchored; `kind` is a short label (≤ 32 bytes) such as "alert".
    event Anchored(bytes32 indexed root, bytes32 indexed kind, address indexed anchorer, uint32 leafCount);
    /// @notice An account gained or lost the right to anchor.
    event AnchorerSet(address indexed account, bool allowed);

    error NotOwner(address account);
    error NotAnchorer(address account);
    error EmptyRoot();
    error EmptyBatch(bytes32 root);
    error RootAlreadyAnchored(bytes32 root, uint64 timestamp);
    error ZeroAddress();

    constructor() {
        owner = msg.sender;
        isAnchorer[msg.sender] = true;
        emit AnchorerSet(msg.sender, true);
    }

    /// @notice Grant or revoke anchoring rights.
    /// @param account The anchorer.
    /// @param allowed True to grant, false to revoke.
    function setAnchorer(address account, bool allowed) external {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        if (account == address(0)) revert ZeroAddress();
        isAnchorer[account] = allowed;
        emit AnchorerSet(account, allowed);
    }

    /// @notice Record the Merkle root of a batch of `leafCount` leaves of one `kind`.
    /// @param root The tree's root.
    /// @param leafCount Number of leaves in the tree (> 0).
    /// @param kind A short label of what the leaves are.
    function anchor(bytes32 root, uint32 leafCount, bytes32 kind) external {
        if (!isAnchorer[msg.sender]) revert NotAnchorer(msg.sender);
        if (root == bytes32(0)) revert EmptyRoot();
        if (leafCount == 0) revert EmptyBatch(root);
        Anchor storage existing = _anchors[root];
        if (existing.timestamp != 0) revert RootAlreadyAnchored(root, existing.timestamp);
        _anchors[root] = Anchor(uint64(block.timestamp), uint64(block.number), leafCount);
        emit Anchored(root, kind, msg.sender, leafCount);
    }

    /// @notice When `root` was anchored (all zero if never).
    /// @param root The tree's root.
    function anchors(bytes32 root) external view returns (uint64 timestamp, uint64 blockNumber, uint32 leafCount) {
        Anchor memory a = _anchors[root];
        return (a.timestamp, a.blockNumber, a.leafCount);
    }

    /// @notice True when `proof` shows `leaf` belongs to the tree with `root` (sorted-pair keccak256).
    /// @dev Checks the proof only; combine with `anchors(root)` to know the root was recorded.
    function verify(bytes32 root, bytes32 leaf, bytes32[] calldata proof) external pure returns (bool) {
        return MerkleProof.verify(proof, root, leaf);
    }

    /// @notice True when the proof is valid and its root was anchored here.
    function verifyAnchored(bytes32 root, bytes32 leaf, bytes32[] calldata proof) external view returns (bool) {
        return _anchors[root].timestamp != 0 && MerkleProof.verify(proof, root, leaf);
    }
}
