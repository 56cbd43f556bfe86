// A Node.js client of Switchboard (@grpc/grpc-js + @grpc/proto-loader, loading protos/
// from this repository), run by tests/e2e/test_node_client.py against a real server.
//
//   node tests/node/client.mjs HOST:PORT
//
// Runs Execute; SubmitTask, WatchTask to the end and GetTask of that task; then GetTask of
// an unknown id (which must fail); and prints one JSON document with what it saw. Any other error, or
// GetTask succeeding, prints the error to stderr and exits 1. Usage errors exit 2.
import path from "node:path";
import { fileURLToPath } from "node:url";

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

const PROTOS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../protos");
const DEADLINE_MS = 30_000;

function loadTaskService(address) {
  const definition = protoLoader.loadSync("switchboard/v1/tasks.proto", {
    includeDirs: [PROTOS],
    keepCase: true, // proto field names, as the Python side and grpcurl print them
    longs: Number,
    enums: String,
    defaults: true,
    oneofs: true, // names the payload member that is set: event.payload === "output_delta"
  });
  const { switchboard } = grpc.loadPackageDefinition(definition);
  return new switchboard.v1.TaskService(address, grpc.credentials.createInsecure());
}

function deadline() {
  return new Date(Date.now() + DEADLINE_MS);
}

function unary(client, method, request) {
  return new Promise((resolve, reject) => {
    client[method](request, { deadline: deadline() }, (error, response) =>
      error ? reject(error) : resolve(response),
    );
  });
}

function watch(client, request) {
  return new Promise((resolve, reject) => {
    const events = [];
    const call = client.WatchTask(request, { deadline: deadline() });
    call.on("data", (response) => events.push(response.event));
    call.on("error", reject);
    call.on("end", () => resolve(events));
  });
}

// A minimal protobuf wire-format reader: enough to decode google.rpc.Status and the
// ErrorInfo inside it, whose .proto files are not among those this client loads.
// Returns {fieldNumber: [values]}; varints as Numbers, length-delimited fields as Buffers.
function decodeFields(buffer) {
  const fields = {};
  let offset = 0;
  const varint = () => {
    let value = 0;
    let shift = 0;
    for (;;) {
      const byte = buffer[offset++];
      value += (byte & 0x7f) * 2 ** shift;
      shift += 7;
      if (byte < 0x80) return value;
    }
  };
  while (offset < buffer.length) {
    const key = varint();
    const [number, wireType] = [Math.floor(key / 8), key % 8];
    let value;
    if (wireType === 0) value = varint();
    else if (wireType === 2) {
      const length = varint();
      value = buffer.subarray(offset, offset + length);
      offset += length;
    } else throw new Error(`unexpected wire type ${wireType} in status details`);
    (fields[number] ??= []).push(value);
  }
  return fields;
}

function decodeStatusDetails(error) {
  const [raw] = error.metadata?.get("grpc-status-details-bin") ?? [];
  if (!raw) return [];
  return (decodeFields(raw)[3] ?? []).map((any) => {
    const { 1: [typeUrl] = [], 2: [value] = [] } = decodeFields(any);
    const detail = { type_url: typeUrl.toString() };
    if (detail.type_url.endsWith("/google.rpc.ErrorInfo")) {
      const info = decodeFields(value ?? Buffer.alloc(0));
      detail.reason = info[1]?.[0]?.toString() ?? "";
      detail.domain = info[2]?.[0]?.toString() ?? "";
    }
    return detail;
  });
}

async function expectError(promise) {
  try {
    await promise;
  } catch (error) {
    if (error.code === undefined) throw error;
    return { code: error.code, details: error.details, status_details: decodeStatusDetails(error) };
  }
  throw new Error("the call succeeded but was expected to fail");
}

async function main() {
  const address = process.argv[2];
  if (!address || process.argv.length > 3) {
    console.error("usage: node tests/node/client.mjs HOST:PORT");
    process.exit(2);
  }
  const client = loadTaskService(address);
  try {
    const executed = await unary(client, "Execute", { task: { input: "hello from Node.js" } });
    const submitted = await unary(client, "SubmitTask", {
      task: { input: "a longer input, so that the agent streams its answer in several deltas" },
    });
    const events = await watch(client, { task_id: submitted.task.id, after_sequence: 0 });
    const watched = await unary(client, "GetTask", { task_id: submitted.task.id });
    const notFound = await expectError(unary(client, "GetTask", { task_id: "no-such-task" }));
    const result = {
      execute: executed.task,
      watch: { submitted: submitted.task, events, final: watched.task },
      get_unknown: notFound,
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    client.close();
  }
}

main().catch((error) => {
  console.error(`node client failed: ${error.stack ?? error}`);
  process.exit(1);
});
