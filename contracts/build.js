#!/usr/bin/env node
// Compile contracts/GuardedVault.sol with the pinned solc-js (tools/chain/package.json) and
// OpenZeppelin Contracts, and write the artifact: ABI, creation and runtime bytecode, the
// compiler version, the settings, and the SHA-256 of every source compiled.
//
//   node contracts/build.js            writes host/chain/GuardedVault.json (the committed artifact,
//                                      shipped with the host, which deploys and reads the vault)
//   node contracts/build.js --out F    writes F instead (the reproducibility test compares them)
//
// The same sources, compiler and settings give the same bytes: an auditor reruns this and
// compares the runtime bytecode with what is deployed (`eth_getCode`).
"use strict";

const crypto = require("crypto");
const fs = require("fs");
const path = require("path");

const HERE = __dirname;
const NODE_MODULES = path.join(HERE, "..", "tools", "chain", "node_modules");
const SOURCE = "GuardedVault.sol";
const CONTRACT = "GuardedVault";

function fail(message) {
  process.stderr.write(`contracts/build.js: ${message}\n`);
  process.exit(1);
}

let solc;
try {
  solc = require(path.join(NODE_MODULES, "solc"));
} catch (error) {
  fail(`solc is not installed under ${NODE_MODULES} (${error.code || error}): run ./scripts/bootstrap`);
}

const settings = JSON.parse(fs.readFileSync(path.join(HERE, "solc-settings.json"), "utf8"));
const wanted = require(path.join(HERE, "..", "tools", "chain", "package.json")).dependencies.solc;
const version = solc.version();
if (!version.startsWith(`${wanted}+`)) {
  fail(`solc ${version} is installed but tools/chain/package.json pins ${wanted}: run ./scripts/bootstrap`);
}

const read = {};
function findImports(name) {
  const file = path.join(NODE_MODULES, name);
  if (!name.startsWith("@openzeppelin/contracts/") || !fs.existsSync(file)) {
    return { error: `import ${name} not found under ${NODE_MODULES} (run ./scripts/bootstrap)` };
  }
  read[name] = fs.readFileSync(file, "utf8");
  return { contents: read[name] };
}

const source = fs.readFileSync(path.join(HERE, SOURCE), "utf8");
read[SOURCE] = source;
const input = {
  language: "Solidity",
  sources: { [SOURCE]: { content: source } },
  settings: {
    ...settings,
    outputSelection: { [SOURCE]: { [CONTRACT]: ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "evm.deployedBytecode.immutableReferences"] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
const errors = (output.errors || []).filter((e) => e.severity === "error");
// Our own source's warnings and every error; OpenZeppelin's own notes (its transient-storage
// reentrancy guard) are known and not ours to fix.
for (const message of output.errors || []) {
  const file = message.sourceLocation && message.sourceLocation.file;
  if (message.severity === "error" || file === SOURCE) process.stderr.write(`${message.formattedMessage}\n`);
}
if (errors.length) fail(`${errors.length} compile error(s)`);

const compiled = output.contracts[SOURCE][CONTRACT];
const sha256 = (text) => crypto.createHash("sha256").update(text, "utf8").digest("hex");
const artifact = {
  contractName: CONTRACT,
  source: `contracts/${SOURCE}`,
  compiler: { name: "solc-js", version },
  settings,
  sources: Object.fromEntries(Object.keys(read).sort().map((name) => [name, { sha256: sha256(read[name]) }])),
  abi: compiled.abi,
  bytecode: `0x${compiled.evm.bytecode.object}`,
  deployedBytecode: `0x${compiled.evm.deployedBytecode.object}`,
  // Where the constructor writes immutables (the quote token) into the runtime code: the
  // only bytes of a deployed vault that differ from deployedBytecode.
  immutableReferences: compiled.evm.deployedBytecode.immutableReferences,
};
const outIndex = process.argv.indexOf("--out");
const out = outIndex > 0 ? process.argv[outIndex + 1] : path.join(HERE, "..", "host", "chain", `${CONTRACT}.json`);
if (!out) fail("--out needs a file name");
fs.writeFileSync(out, `${JSON.stringify(artifact, null, 2)}\n`);
process.stdout.write(`wrote ${out} (${compiled.evm.deployedBytecode.object.length / 2} bytes of runtime code, solc ${version})\n`);
