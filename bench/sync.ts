/**
 * Initial sync and restart, end to end: the simulated API server runs in its own process
 * (its memory is not ours), kubemeta runs here with the kubernetes source and a libSQL
 * file store. Prints time to synced, updates/s, peak RSS, resident memory per tracked
 * object, and the time to ready after a restart on the same store.
 *
 *   bun bench/sync.ts                                   # 100 nodes x 100 pods = 10,000 pods
 *   bun bench/sync.ts --nodes 5000 --pods-per-node 30   # the 150,000-pod target
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { cpus, tmpdir } from "node:os";
import { mkdtemp, rm } from "node:fs/promises";
import { resolveConfig } from "../host/config.ts";
import { startHost, type Host } from "../host/host.ts";
import { silentLogger } from "../host/logger.ts";
import { builtins } from "../plugins/index.ts";

const { values } = parseArgs({
  options: {
    nodes: { type: "string", default: "100" },
    "pods-per-node": { type: "string", default: "100" },
  },
});

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MiB`;
const dir = await mkdtemp(join(tmpdir(), "kubemeta-bench-sync-"));

const cluster = Bun.spawn(
  [
    process.execPath,
    join(import.meta.dir, "../simulator/cli.ts"),
    "--nodes",
    values.nodes!,
    "--pods-per-node",
    values["pods-per-node"]!,
    "--kubeconfig",
    join(dir, "kubeconfig"),
  ],
  { stdout: "pipe", stderr: "inherit" },
);
const firstLine = (await new Response(cluster.stdout).body!.getReader().read()).value;
const info = JSON.parse(new TextDecoder().decode(firstLine)) as { objects: number; populateMs: number };
console.log(`simulated cluster: ${info.objects} objects, populated in ${info.populateMs} ms (separate process)`);

async function startKubemeta(): Promise<Host> {
  const config = await resolveConfig(
    {
      cluster: { name: "bench" },
      store: { type: "libsql", url: `file:${join(dir, "kubemeta.db")}` },
      sources: [{ type: "kubernetes", kubeconfig: join(dir, "kubeconfig") }],
      http: { address: "127.0.0.1", port: 0 },
    },
    { baseDir: dir, registry: builtins },
  );
  return startHost(config, { logger: silentLogger });
}

async function untilReady(host: Host): Promise<void> {
  while (!(await host.readiness()).ready) await Bun.sleep(20);
}

let peakRss = 0;
const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), 50);

Bun.gc(true);
const rssBefore = process.memoryUsage.rss();
const started = performance.now();
const host = await startKubemeta();
await untilReady(host);
const syncMs = performance.now() - started;
const updates = host.log.head();
Bun.gc(true);
const rssSynced = process.memoryUsage.rss();
const heapSynced = process.memoryUsage().heapUsed;
await host.stop();

const restartStarted = performance.now();
const restarted = await startKubemeta();
await untilReady(restarted);
const restartMs = performance.now() - restartStarted;
const restartUpdates = restarted.log.head() - updates;
await restarted.stop();
clearInterval(sampler);

console.log(`machine: ${cpus().length} cores, ${cpus()[0]?.model}, Bun ${Bun.version}`);
console.log(
  `initial sync: ${updates} updates in ${(syncMs / 1000).toFixed(2)} s ` +
    `(${Math.round(updates / (syncMs / 1000))} updates/s), to SYNCED`,
);
console.log(
  `peak RSS: ${mib(peakRss)}; RSS after sync (GC'd): ${mib(rssSynced)}, ` +
    `of which tracking ${updates} objects: ${mib(rssSynced - rssBefore)}`,
);
console.log(
  `resident memory per tracked object: ${Math.round((rssSynced - rssBefore) / updates)} B ` +
    `(JS heap in use: ${mib(heapSynced)})`,
);
console.log(`restart on the same store: ready in ${(restartMs / 1000).toFixed(2)} s, ${restartUpdates} new updates`);

cluster.kill("SIGTERM");
await cluster.exited;
await rm(dir, { recursive: true, force: true });
