// Hardhat 2 is used only as an external JSON-RPC node in tests (`hardhat node`); the contracts
// are compiled by compile.js with npm's solc, not by Hardhat.
module.exports = {
  networks: { hardhat: { hardfork: "prague", chainId: 31337 } },
};
