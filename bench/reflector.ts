/**
 * How fast the kubernetes source takes a cluster's initial state: the test API server
 * runs as its own process (simulator/cli.ts), the source reads it over TLS into a
 * ChangeSink that only counts, so the figures are the source's own (fetch, TLS, line
 * splitting, JSON.parse) plus the server's share of the 2 cores.
 *
 * Run: bun run bench/reflector.ts [--nodes 5000] [--pods-per-node 30] [--mode streaming|paginated|both]
 */
import { parseArgs } from "node:util";
import { availableParallelism, cpus } from "node:os";
import * as v from "valibot";
import type { ChangeSink } from "../sdk/contract.ts";
import { silentLogger } from "../host/logger.ts";
import { createMetrics } from "../host/metrics.ts";
import kubernetes from "../plugins/sources/kubernetes.ts";

const { values } = parseArgs({
  options: {
    nodes: { type: "string", default: "5000" },
    "pods-per-node": { type: "string", default: "30" },
    mode: { type: "string", default: "both" },
  },
});

const server = Bun.spawn(
  [process.execPath, "simulator/cli.ts", "--nodes", values.nodes, "--pods-per-node", values["pods-per-node"]],
  {
    cwd: `${import.meta.dir}/..`,
    stdout: "pipe",
    stderr: "inherit",
  },
);
const reader = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
let firstLine = "";
while (!firstLine.includes("\n")) {
  const { value, done } = await reader.read();
  if (done) throw new Error("the test API server exited before it was ready");
  firstLine += value;
}
const cluster = JSON.parse(firstLine.slice(0, firstLine.indexOf("\n"))) as {
  kubeconfig: string;
  objects: number;
  populateMs: number;
};
console.log(`machine: ${availableParallelism()} CPUs, ${cpus()[0]?.model ?? "unknown CPU"}; Bun ${Bun.version}`);
console.log(
  `cluster: ${cluster.objects.toLocaleString("en-US")} objects ` +
    `(populated in ${cluster.populateMs} ms, server in its own process)`,
);

async function initialSync(streamingList: "always" | "never"): Promise<void> {
  let events = 0;
  let peakRss = 0;
  const sink: ChangeSink = {
    resumePoint: () => undefined,
    apply: () => void events++,
    bookmark: () => {},
    relist: () => ({ end: async () => {}, abort() {} }),
    flush: async () => {},
  };
  const config = v.parse(kubernetes.schema, { kubeconfig: cluster.kubeconfig, streamingList });
  let synced = () => {};
  const done = new Promise<void>((resolve) => (synced = resolve));
  const source = kubernetes.create(config, {
    name: "bench",
    cluster: "bench",
    logger: silentLogger,
    metrics: createMetrics(),
    changes: sink,
    synced: () => synced(),
    waiting() {},
  });
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), 50);
  const started = performance.now();
  await source.start();
  await done;
  const seconds = (performance.now() - started) / 1000;
  clearInterval(sampler);
  await source.stop();
  const label = streamingList === "always" ? "streaming list" : "paginated LIST (500/page)";
  console.log(
    `${label.padEnd(26)} ${events.toLocaleString("en-US")} objects in ${seconds.toFixed(2)} s = ` +
      `${Math.round(events / seconds).toLocaleString("en-US")} events/s, peak RSS ${Math.round(peakRss / 2 ** 20)} MiB`,
  );
}

try {
  if (values.mode !== "paginated") await initialSync("always");
  if (values.mode !== "streaming") await initialSync("never");
} finally {
  server.kill("SIGTERM");
  await server.exited;
}
