/**
 * Runs the test API server as its own process, so a benchmark measures kubemeta's
 * memory and CPU without the simulated cluster's (~6 KB per pod held as JSON):
 *
 *   bun simulator/cli.ts --nodes 5000 --pods-per-node 30 [--churn 100] [--kubeconfig path] [--no-tls]
 *
 * Prints one JSON line `{"url","token","kubeconfig","objects","populateMs"}` on stdout once
 * the cluster is populated, then serves until SIGTERM/SIGINT.
 */
import { rm } from "node:fs/promises";
import { parseArgs } from "node:util";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { startTestApiServer } from "./index.ts";
import { populate, startChurn } from "./population.ts";

const { values } = parseArgs({
  options: {
    nodes: { type: "string", default: "10" },
    "pods-per-node": { type: "string", default: "10" },
    namespaces: { type: "string" },
    churn: { type: "string", default: "0" },
    kubeconfig: { type: "string" },
    "no-tls": { type: "boolean", default: false },
    anonymous: { type: "boolean", default: false },
    port: { type: "string", default: "0" },
    "bookmark-interval-ms": { type: "string", default: "60000" },
  },
});

const server = await startTestApiServer({
  tls: !values["no-tls"],
  anonymous: values.anonymous,
  port: Number(values.port),
  bookmarkIntervalMs: Number(values["bookmark-interval-ms"]),
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

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => {
    churn?.stop();
    const ownKubeconfig = values.kubeconfig === undefined ? rm(kubeconfig, { force: true }) : Promise.resolve();
    void Promise.all([server.stop(), ownKubeconfig]).then(() => process.exit(0));
  });
}
