/**
 * How fast the kubernetes source takes a cluster's initial state: the test API server
 * runs as its own process (simulator/cli.ts), the source reads it over TLS into a
 * ChangeSink that only counts, so the figures are the source's own (fetch, TLS, line
 * splitting, JSON.parse on the main thread: the ChangeSink takes no prepared changes) plus
 * the server's share of the 2 cores.
 *
 * Run: bun run bench/reflector.ts [--nodes 5000] [--pods-per-node 30] [--mode streaming|paginated|both]
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import * as v from "valibot";
import type { ChangeSink } from "../sdk/contract.ts";
import { silentLogger } from "../host/logger.ts";
import { createMetrics } from "../host/metrics.ts";
import kubernetes from "../plugins/sources/kubernetes.ts";
import { fmt, machine, mib, seconds, Simulator } from "./processes.ts";

const { values } = parseArgs({
  options: {
    nodes: { type: "string", default: "5000" },
    "pods-per-node": { type: "string", default: "30" },
    mode: { type: "string", default: "both" },
  },
});

const dir = await mkdtemp(join(tmpdir(), "kubemeta-bench-reflector-"));
const simulator = await Simulator.start(dir, ["--nodes", values.nodes, "--pods-per-node", values["pods-per-node"]]);
const kubeconfig = simulator.kubeconfig;
console.log(machine());
console.log(
  `cluster: ${fmt(simulator.info.objects)} objects (populated in ${seconds(simulator.info.populateMs)}, ` +
    "server in its own process)",
);

async function initialSync(streamingList: "always" | "never"): Promise<void> {
  let events = 0;
  let peakRss = 0;
  const sink: ChangeSink = {
    resumePoint: () => undefined,
    apply: () => void events++,
    bookmark: () => {},
    relist: () => ({ end: async () => {}, abort() {} }),
    claimKind: () => undefined,
    retract: async () => {},
    flush: async () => {},
  };
  const config = v.parse(kubernetes.schema, { kubeconfig, streamingList });
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
  const before = await simulator.stats();
  const started = performance.now();
  await source.start();
  await done;
  const elapsed = (performance.now() - started) / 1000;
  clearInterval(sampler);
  await source.stop();
  const bytes = (await simulator.stats()).bytesSent - before.bytesSent;
  const label = streamingList === "always" ? "streaming list" : "paginated LIST (500/page)";
  console.log(
    `${label.padEnd(26)} ${fmt(events)} objects in ${elapsed.toFixed(2)} s = ${fmt(events / elapsed)} events/s, ` +
      `${fmt(bytes / 1e6)} MB received (${fmt(bytes / 1e6 / elapsed)} MB/s), peak RSS ${mib(peakRss)}`,
  );
}

try {
  if (values.mode !== "paginated") await initialSync("always");
  if (values.mode !== "streaming") await initialSync("never");
} finally {
  await simulator.stop();
  await rm(dir, { recursive: true, force: true });
}
