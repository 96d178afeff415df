// Print emotiond results as JSON lines from Node.js (the format is in docs/protocol.md).
// Usage: npm ci && node subscriber.js [ENDPOINT]   e.g. ipc:///tmp/emotiond-1000/results.sock
// Stops when a file source reaches its end (a status message with state "eos").
"use strict";
const path = require("node:path");
const zmq = require("zeromq");
const { decode } = require("@msgpack/msgpack");

function defaultEndpoint() {
  const runtime = process.env.EMOTIOND_BUS__RUNTIME_DIR ||
    (process.env.XDG_RUNTIME_DIR ? path.join(process.env.XDG_RUNTIME_DIR, "emotiond")
                                 : `/tmp/emotiond-${process.getuid()}`);
  return `ipc://${runtime}/results.sock`;
}

async function main() {
  const sock = new zmq.Subscriber();
  sock.subscribe("result.", "status.");
  sock.connect(process.argv[2] || defaultEndpoint());
  for await (const [, header] of sock) {
    const message = decode(header);
    if (message.v !== 1) continue; // a protocol version this program does not know
    if (message.kind === "status" && message.state === "eos") break;
    if (message.kind === "result") {
      delete message.kind;
      process.stdout.write(JSON.stringify(message) + "\n");
    }
  }
  sock.close();
}

main().catch((error) => {
  console.error(`subscriber: ${error.message}`);
  process.exit(1);
});
