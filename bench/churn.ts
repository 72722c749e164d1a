/**
 * Sustained churn, end to end: API event → slimmed, diffed, committed → published to NATS.
 * The simulated API server runs in its own process with a steady churn of pod changes
 * (a third of them touch only managedFields: suppressed as no-ops); kubemeta runs here
 * with the kubernetes source, a libSQL file and the NATS sink on a real nats-server.
 * Prints, over the measured window: watch events received/s, updates committed/s, NATS
 * messages published/s, and the sink's lag at the end.
 *
 *   bun bench/churn.ts [--rate 5000] [--seconds 10] [--nodes 100] [--pods-per-node 50]
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { cpus, loadavg, tmpdir } from "node:os";
import { mkdtemp, rm } from "node:fs/promises";
import { resolveConfig } from "../host/config.ts";
import { startHost } from "../host/host.ts";
import { silentLogger } from "../host/logger.ts";
import { startNatsServer } from "../tests/nats-server.ts";
import { builtins } from "../plugins/index.ts";

const { values } = parseArgs({
  options: {
    rate: { type: "string", default: "5000" },
    seconds: { type: "string", default: "10" },
    nodes: { type: "string", default: "100" },
    "pods-per-node": { type: "string", default: "50" },
  },
});
const seconds = Number(values.seconds);
const dir = await mkdtemp(join(tmpdir(), "kubemeta-bench-churn-"));
const nats = await startNatsServer();

const cluster = Bun.spawn(
  [
    process.execPath,
    join(import.meta.dir, "../simulator/cli.ts"),
    "--nodes",
    values.nodes!,
    "--pods-per-node",
    values["pods-per-node"]!,
    "--churn",
    values.rate!,
    "--kubeconfig",
    join(dir, "kubeconfig"),
  ],
  { stdout: "pipe", stderr: "inherit" },
);
await new Response(cluster.stdout).body!.getReader().read();

const config = await resolveConfig(
  {
    cluster: { name: "bench" },
    store: { type: "libsql", url: `file:${join(dir, "kubemeta.db")}` },
    sources: [{ type: "kubernetes", kubeconfig: join(dir, "kubeconfig"), resources: ["pods"] }],
    sinks: [{ type: "nats", servers: [nats.url] }],
    http: { address: "127.0.0.1", port: 0 },
  },
  { baseDir: dir, registry: builtins },
);
const host = await startHost(config, { logger: silentLogger });
while (!(await host.readiness()).ready) await Bun.sleep(20);

/** Sums every series of a metric in the Prometheus text. */
function total(metric: string): number {
  let sum = 0;
  for (const line of host.metrics.render().split("\n")) {
    if (line.startsWith(`${metric}{`) || line.startsWith(`${metric} `))
      sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}
const sample = () => ({
  events: total("kubemeta_source_events_total"),
  committed: host.log.head(),
  published: total("kubemeta_nats_published_total"),
});

await Bun.sleep(2000);
const before = sample();
const started = performance.now();
await Bun.sleep(seconds * 1000);
const after = sample();
const elapsed = (performance.now() - started) / 1000;
const rate = (a: number, b: number) => Math.round((b - a) / elapsed).toLocaleString("en-US");

console.log(
  `machine: ${cpus().length} cores, ${cpus()[0]?.model}, Bun ${Bun.version}, load average ${loadavg()[0]!.toFixed(2)}`,
);
console.log(
  `churn asked of the simulated API server: ${Number(values.rate).toLocaleString("en-US")} pod changes/s, ` +
    `over ${elapsed.toFixed(1)} s`,
);
console.log(`watch events received:  ${rate(before.events, after.events)} /s`);
console.log(`updates committed:      ${rate(before.committed, after.committed)} /s (no-op changes suppressed)`);
console.log(`NATS messages published: ${rate(before.published, after.published)} /s (two per update: all + node)`);
console.log(`NATS sink lag at the end: ${total("kubemeta_sink_lag_versions")} versions`);

await host.stop();
cluster.kill("SIGTERM");
await cluster.exited;
await nats.destroy();
await rm(dir, { recursive: true, force: true });
