/**
 * The test Hrana server (./hrana-server.ts) as a process, so tests can kill it and start it
 * again on the same port and file:
 *
 *   bun tests/hrana-server-cli.ts --db <path> [--port <n>] [--token <t>]
 *     [--crash-on-commit before|after] [--crash-skip <n>] [--idle-ms <ms>]
 *
 * Prints one JSON line `{"url":…,"port":…,"pid":…}` once listening (Hrana over HTTP at `url`, over WebSocket at
 * the same with `ws://`). With --crash-on-commit
 * it SIGKILLs itself at the first COMMIT after --crash-skip others: `before` running it
 * (the transaction is lost), or `after` (it landed, its answer is lost). SIGTERM stops it.
 */
import { parseArgs } from "node:util";
import { startHranaServer } from "./hrana-server.ts";

const { values } = parseArgs({
  options: {
    db: { type: "string" },
    port: { type: "string", default: "0" },
    token: { type: "string" },
    "crash-on-commit": { type: "string" },
    "crash-skip": { type: "string", default: "0" },
    "idle-ms": { type: "string", default: "10000" },
  },
  strict: true,
});

function fail(message: string): never {
  console.error(`hrana-server-cli: ${message}`);
  process.exit(2);
}

const when = values["crash-on-commit"];
if (when !== undefined && when !== "before" && when !== "after") fail("--crash-on-commit takes before or after");
if (!values.db) fail("--db <path> is required");

const server = startHranaServer({
  path: values.db,
  port: Number(values.port),
  token: values.token,
  streamIdleMs: Number(values["idle-ms"]),
  crashOnCommit: when ? { when, skip: Number(values["crash-skip"]) } : undefined,
  // A real crash: no cleanup, no answer, whatever SQLite had not committed is gone.
  onCrash: () => process.kill(process.pid, "SIGKILL"),
});
console.log(JSON.stringify({ url: server.url, port: server.port, pid: process.pid }));

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => {
    void server.stop().then(() => process.exit(0));
  });
}
