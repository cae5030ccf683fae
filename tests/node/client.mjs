// A Node.js client of tee-agent's public API, built from proto/tee_agent_rpc/agent.proto
// alone (no generated code): proof that any gRPC client can talk to the agent.
//
//   node tests/node/client.mjs HOST:PORT [NONCE_HEX]
//
// Calls GetStatus, then GetAttestation over the nonce (32 bytes; random when not given), and
// prints one JSON object: the status fields (bytes as hex, 64-bit integers as numbers when
// they fit, else strings), and the attestation's identity address, quote (hex and length),
// report_data and echoed nonce. Exit 2 with a message on stderr when the call fails.
import { randomBytes } from "node:crypto";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

const HERE = dirname(fileURLToPath(import.meta.url));
const PROTO_DIR = join(HERE, "..", "..", "proto");
const DEADLINE_MS = 30_000;

function usage(message) {
  process.stderr.write(`error: ${message}\nusage: node client.mjs HOST:PORT [NONCE_HEX]\n`);
  process.exit(2);
}

function parseNonce(text) {
  if (text === undefined) return randomBytes(32);
  if (!/^([0-9a-fA-F]{2}){32}$/.test(text)) usage(`the nonce must be 64 hex digits, got ${text}`);
  return Buffer.from(text, "hex");
}

// JSON-ready values: Buffers as hex, 64-bit integers (strings from the loader) as numbers
// when exact, maps and nested messages recursively.
function plain(value) {
  if (Buffer.isBuffer(value)) return value.toString("hex");
  if (Array.isArray(value)) return value.map(plain);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, plain(item)]));
  }
  return value;
}

function int64Fields(type) {
  const wide = new Set(["int64", "uint64", "sint64", "fixed64", "sfixed64"]);
  const isWide = (field) => wide.has(field.type.toLowerCase().replace("type_", ""));
  return type.field.filter(isWide).map((field) => field.name);
}

function numbers(object, names) {
  for (const name of names) {
    const number = Number(object[name]);
    if (Number.isSafeInteger(number)) object[name] = number;
  }
  return object;
}

function unary(client, method, request) {
  return new Promise((resolve, reject) => {
    const deadline = new Date(Date.now() + DEADLINE_MS);
    client[method](request, { deadline }, (error, response) =>
      error ? reject(error) : resolve(response),
    );
  });
}

async function main() {
  const [address, nonceHex] = process.argv.slice(2);
  if (!address) usage("pass the agent's address HOST:PORT");
  const nonce = parseNonce(nonceHex);
  const definition = protoLoader.loadSync("tee_agent_rpc/agent.proto", {
    includeDirs: [PROTO_DIR],
    keepCase: true,
    longs: String,
    bytes: Buffer,
    defaults: true,
    oneofs: true,
  });
  const Agent = grpc.loadPackageDefinition(definition).tee_agent.v1.Agent;
  const client = new Agent(address, grpc.credentials.createInsecure());
  try {
    const status = await unary(client, "GetStatus", {});
    const attestation = await unary(client, "GetAttestation", { nonce });
    const statusType = definition["tee_agent.v1.Status"].type;
    console.log(
      JSON.stringify({
        status: numbers(plain(status), int64Fields(statusType)),
        attestation: {
          address: attestation.identity.address,
          quote_length: attestation.quote.length,
          quote: attestation.quote.toString("hex"),
          report_data: attestation.report_data.toString("hex"),
          nonce: attestation.nonce.toString("hex"),
        },
      }),
    );
  } catch (error) {
    const code = grpc.status[error.code] ?? error.code;
    process.stderr.write(`error: ${address}: ${code}: ${error.details ?? error.message}\n`);
    process.exitCode = 2;
  } finally {
    client.close();
  }
}

await main();
