// A Node client reads the aliasd.v1.ErrorReason of failed calls: grpc-js
// with proto/ loaded at run time, the reason decoded from the
// grpc-status-details-bin trailer (a google.rpc.Status holding a
// google.rpc.ErrorInfo) as docs/grpc-and-cli.md shows it.
//
// Usage: node error_reason.js HOST:PORT PROTO_DIR (with NODE_PATH at the
// node_modules of tests/node/package.json). Prints one line
// `<what> <reason name> <reason number>` per failed call, then
// "node client: all checks passed"; exits non-zero on the first surprise.

"use strict";

const path = require("path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");
const protobuf = require("protobufjs");
const googleProtos = require("google-proto-files");

const [address, protoDir] = process.argv.slice(2);

// The directory holding google/rpc/*.proto.
const googleDir = path.dirname(googleProtos.getProtoPath());

// The services, for the calls.
const services = grpc.loadPackageDefinition(
  protoLoader.loadSync(["aliasd/v1/keys.proto", "aliasd/v1/aliases.proto"], {
    includeDirs: [protoDir],
    keepCase: true,
  }),
).aliasd.v1;

// The error-detail types and the reasons enum, for decoding.
const root = new protobuf.Root();
root.resolvePath = (_origin, target) =>
  path.join(target.startsWith("google/rpc/") ? googleDir : protoDir, target);
root.loadSync(
  ["google/rpc/status.proto", "google/rpc/error_details.proto", "aliasd/v1/errors.proto"],
  { keepCase: true },
);
const Status = root.lookupType("google.rpc.Status");
const ErrorInfo = root.lookupType("google.rpc.ErrorInfo");
const ErrorReason = root.lookupEnum("aliasd.v1.ErrorReason");

// The aliasd.v1.ErrorReason of a failed call; ERROR_REASON_UNSPECIFIED (0)
// for a reason this client's protos do not know.
function errorReason(err) {
  const [bin] = err.metadata.get("grpc-status-details-bin");
  if (!bin) return ErrorReason.values.ERROR_REASON_UNSPECIFIED;
  for (const any of Status.decode(bin).details) {
    if (any.type_url !== "type.googleapis.com/google.rpc.ErrorInfo") continue;
    const info = ErrorInfo.decode(any.value);
    if (info.domain === "aliasd" && info.reason in ErrorReason.values) {
      return ErrorReason.values[info.reason];
    }
  }
  return ErrorReason.values.ERROR_REASON_UNSPECIFIED;
}

function call(client, method, request) {
  return new Promise((resolve, reject) =>
    client[method](request, (err, response) => (err ? reject(err) : resolve(response))),
  );
}

// Runs a call that must fail with `code` and `reason` (an ErrorReason name),
// and prints what it read.
async function expectError(what, promise, code, reason) {
  try {
    await promise;
  } catch (err) {
    const got = errorReason(err);
    if (err.code !== code || got !== ErrorReason.values[reason]) {
      throw new Error(
        `${what}: expected ${code} ${reason}, got ${err.code} ${ErrorReason.valuesById[got]} (${err.details})`,
      );
    }
    console.log(`${what} ${ErrorReason.valuesById[got]} ${got}`);
    return;
  }
  throw new Error(`${what}: expected ${reason}, the call succeeded`);
}

async function main() {
  const credentials = grpc.credentials.createInsecure();
  const keys = new services.KeyService(address, credentials);
  const aliases = new services.AliasService(address, credentials);

  const { key } = await call(keys, "CreateKey", { description: "node" });
  await call(aliases, "CreateAlias", { alias_name: "alias/node", target_key_id: key.key_id });
  await expectError(
    "create-twice",
    call(aliases, "CreateAlias", { alias_name: "alias/node", target_key_id: key.key_id }),
    grpc.status.ALREADY_EXISTS,
    "ALIAS_ALREADY_EXISTS",
  );
  await expectError(
    "get-missing",
    call(aliases, "GetAlias", { alias_name: "alias/node-missing" }),
    grpc.status.NOT_FOUND,
    "ALIAS_NOT_FOUND",
  );
  keys.close();
  aliases.close();
  console.log("node client: all checks passed");
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
