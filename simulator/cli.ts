/**
 * Runs the test API server as its own process, so a benchmark measures kubemeta's
 * memory and CPU without the simulated cluster's (~6 KB per pod held as JSON):
 *
 *   bun simulator/cli.ts --nodes 5000 --pods-per-node 30 [--churn 100] [--kubeconfig path] [--no-tls]
 *     [--no-compression] [--namespaces 10] [--watch-history 10000]
 *
 * Prints one JSON line `{"url","token","kubeconfig","objects","populateMs"}` on stdout once
 * the cluster is populated, then serves until SIGTERM/SIGINT. A benchmark driving it sends
 * commands on stdin, one a line, each answered with one JSON line on stdout:
 *
 *   stats          {"requests":{"list pods":1,…},"bytesSent":…,"resourceVersion":"…"}
 *   churn <count>  makes <count> pod changes (startChurn's mix) as fast as it can, then
 *                  answers {"changes","ms","resourceVersion"}
 */
import { rm } from "node:fs/promises";
import { ServerResponse } from "node:http";
import { parseArgs } from "node:util";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { startTestApiServer } from "./index.ts";
import { populate, startChurn } from "./population.ts";

const USAGE = `Usage: bun simulator/cli.ts [--nodes 10] [--pods-per-node 10] [--namespaces n] [--churn 0]
         [--kubeconfig path] [--no-tls] [--no-compression] [--anonymous] [--port 0]
         [--bookmark-interval-ms 60000] [--watch-history 10000]

A simulated Kubernetes API server. Prints one JSON line {"url","token","kubeconfig","objects","populateMs"}
once the cluster is populated, then serves until SIGTERM/SIGINT; stdin takes "stats" and "churn <count>".
--no-compression: never gzip LIST responses (kube-apiserver gzips those past 128 KiB for clients that accept it).
`;

const OPTIONS = {
  nodes: { type: "string", default: "10" },
  "pods-per-node": { type: "string", default: "10" },
  namespaces: { type: "string" },
  churn: { type: "string", default: "0" },
  kubeconfig: { type: "string" },
  "no-tls": { type: "boolean", default: false },
  "no-compression": { type: "boolean", default: false },
  anonymous: { type: "boolean", default: false },
  port: { type: "string", default: "0" },
  "bookmark-interval-ms": { type: "string", default: "60000" },
  "watch-history": { type: "string", default: "10000" },
  help: { type: "boolean", default: false },
} as const;

const values = parseOptions();
if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}

/** Bad arguments: one line and exit 2, as kubemeta's own CLI says them. */
function parseOptions() {
  try {
    return parseArgs({ options: OPTIONS }).values;
  } catch (error) {
    process.stderr.write(`simulator: ${(error as Error).message} (see --help)\n`);
    process.exit(2);
  }
}

/**
 * Response body bytes sent, all requests together: what clients received. Counted by wrapping
 * ServerResponse's write and end in this process only, since the server's internals are not a
 * benchmark's business and the kernel does not count a process's socket send()s
 * (/proc/<pid>/io wchar misses them).
 */
let bytesSent = 0;
const countBody = (chunk: unknown) => {
  if (typeof chunk === "string") bytesSent += Buffer.byteLength(chunk);
  else if (chunk instanceof Uint8Array) bytesSent += chunk.byteLength;
};
const { write, end } = ServerResponse.prototype;
ServerResponse.prototype.write = function (this: ServerResponse, chunk: unknown, ...rest: unknown[]) {
  countBody(chunk);
  return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
} as typeof write;
ServerResponse.prototype.end = function (this: ServerResponse, chunk?: unknown, ...rest: unknown[]) {
  if (typeof chunk !== "function") countBody(chunk);
  return (end as (...args: unknown[]) => ServerResponse).call(this, chunk, ...rest);
} as typeof end;

const server = await startTestApiServer({
  tls: !values["no-tls"],
  compression: !values["no-compression"],
  anonymous: values.anonymous,
  port: Number(values.port),
  bookmarkIntervalMs: Number(values["bookmark-interval-ms"]),
  watchHistory: Number(values["watch-history"]),
});
const started = performance.now();
populate(server, {
  nodes: Number(values.nodes),
  podsPerNode: Number(values["pods-per-node"]),
  namespaces: values.namespaces === undefined ? undefined : Number(values.namespaces),
});
const populateMs = Math.round(performance.now() - started);
// Building 180,000 objects leaves gigabytes of garbage; collect it before anyone measures.
Bun.gc(true);
const kubeconfig = values.kubeconfig ?? join(tmpdir(), `kubemeta-test-apiserver-${process.pid}.kubeconfig`);
await server.writeKubeconfig(kubeconfig, "token");
const churn = Number(values.churn) > 0 ? startChurn(server, { perSecond: Number(values.churn) }) : undefined;
console.log(
  JSON.stringify({
    url: server.url,
    token: server.token,
    kubeconfig,
    objects: Number(server.resourceVersion()),
    populateMs,
  }),
);

/** `churn <count>`: startChurn faster than it can go (about 20,000/s here), stopped once it made `count` changes. */
async function burst(count: number): Promise<object> {
  const started = performance.now();
  const churn = startChurn(server, { perSecond: 50_000, seed: Math.floor(started) });
  while (churn.changes() < count) await Bun.sleep(5);
  churn.stop();
  return {
    changes: churn.changes(),
    ms: Math.round(performance.now() - started),
    resourceVersion: server.resourceVersion(),
  };
}

async function answer(command: string): Promise<object> {
  const [verb, arg] = command.trim().split(/\s+/);
  if (verb === "stats") return { requests: server.requests(), bytesSent, resourceVersion: server.resourceVersion() };
  if (verb === "churn" && Number(arg) > 0) return burst(Number(arg));
  return { error: `unknown command: ${command.trim()}` };
}

// Commands come only from a parent that pipes stdin; with stdin closed or a terminal this loop just ends.
void (async () => {
  let pending = "";
  for await (const chunk of process.stdin) {
    pending += chunk.toString();
    for (let at = pending.indexOf("\n"); at >= 0; at = pending.indexOf("\n")) {
      const command = pending.slice(0, at);
      pending = pending.slice(at + 1);
      if (command.trim()) console.log(JSON.stringify(await answer(command)));
    }
  }
})();

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => {
    churn?.stop();
    const ownKubeconfig = values.kubeconfig === undefined ? rm(kubeconfig, { force: true }) : Promise.resolve();
    void Promise.all([server.stop(), ownKubeconfig]).then(() => process.exit(0));
  });
}
