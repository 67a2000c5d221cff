// Compile contracts/src/*.sol with npm's solc (pinned in package.json) and print one JSON
// document {contractName: {abi, bytecode, deployedBytecode}} on stdout.
// Standard JSON input, optimizer on, evmVersion set explicitly: solc 0.8.37 defaults to
// "osaka", newer than py-evm's Prague, so the target is always named here.
// Imports of "@openzeppelin/contracts/..." resolve to the npm package (pinned exactly in
// package.json), read from node_modules by the import callback: no copies in src/.
"use strict";
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const EVM_VERSION = process.env.YINQI_EVM_VERSION || "prague";
const srcDir = path.join(__dirname, "src");
const modulesDir = path.join(__dirname, "node_modules");
const REMAPPED = ["@openzeppelin/contracts/"]; // npm packages sources may import from

const sources = {};
for (const name of fs.readdirSync(srcDir).filter((f) => f.endsWith(".sol")).sort()) {
  sources[name] = { content: fs.readFileSync(path.join(srcDir, name), "utf8") };
}

// Resolve an import to a file inside one of the allowed npm packages, never elsewhere.
function findImports(importPath) {
  if (!REMAPPED.some((prefix) => importPath.startsWith(prefix))) {
    return { error: `import ${importPath}: only ${REMAPPED.join(", ")} (npm) may be imported` };
  }
  const file = path.resolve(modulesDir, importPath);
  if (!file.startsWith(modulesDir + path.sep)) return { error: `import ${importPath}: outside node_modules` };
  try {
    return { contents: fs.readFileSync(file, "utf8") };
  } catch (e) {
    return { error: `import ${importPath}: ${e.message} (run \`cd contracts && npm ci\`)` };
  }
}

const input = {
  language: "Solidity",
  sources,
  settings: {
    evmVersion: EVM_VERSION,
    optimizer: { enabled: true, runs: 200 },
    metadata: { bytecodeHash: "none" },
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
const errors = (output.errors || []).filter((e) => e.severity === "error");
for (const e of output.errors || []) process.stderr.write(e.formattedMessage + "\n");
if (errors.length) process.exit(1);
const result = {};
for (const file of Object.keys(sources)) {
  // Only our own contracts become artifacts; imported OpenZeppelin code is compiled into them.
  for (const [name, c] of Object.entries(output.contracts[file] || {})) {
    if (!c.evm.bytecode.object || c.abi.length === 0) continue; // internal libraries, interfaces
    result[name] = {
      contractName: name,
      sourceName: file,
      compiler: "solc-js " + solc.version(),
      evmVersion: EVM_VERSION,
      abi: c.abi,
      bytecode: "0x" + c.evm.bytecode.object,
      deployedBytecode: "0x" + c.evm.deployedBytecode.object,
    };
  }
}
process.stdout.write(JSON.stringify(result));
