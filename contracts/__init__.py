"""On-chain receivables financing and Merkle anchoring: Solidity sources, compiled artifacts,
the web3 client (embedded py-evm or any JSON-RPC node), Merkle proofs, the anchoring outbox and
the auditor's checks."""
