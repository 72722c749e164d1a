/**
 * Initial sync, restart, and a client-node informer for scale, each a real process against one simulated API server
 * (its own process too, real-size objects over TLS):
 *
 * (a) kubemeta (`bun main.ts --config`, kubernetes source, libSQL file) from start to /readyz 200: time, updates,
 *     peak RSS (VmHWM), /healthz latency probed every 20 ms throughout, how late kubemeta's own event loop ran
 *     (kubemeta_event_loop_lag_seconds: its stalls apart from the machine's), bytes received from the API server;
 * (b) kill -9 of it and a restart on the same store: time to ready, LIST requests, new updates, bytes;
 * (c) @kubernetes/client-node's makeInformer on pods alone, nothing stored: time to its initial list done, peak RSS,
 *     bytes;
 * (d) the floor of (a) on this machine (floor.ts): what skimming, parsing, slimming and digesting the bytes (a)
 *     received and SQLite's own inserts of its objects cost one thread, with the API server's CPU in (a), spread
 *     perfectly over the cores: the least any design keeping kubemeta's data model could take, beside a quarter of
 *     the informer's time. Its parts are measured before (a) and again at the end, and each counts at its faster:
 *     the machine's speed drifts between the minutes of one run.
 *
 *   bun bench/sync.ts                                             # 5,000 nodes, 150,000 pods, ~50,000 others
 *   bun bench/sync.ts --nodes 1000 --pods-per-node 30 --namespaces 1000
 *   bun bench/sync.ts --nodes 100 --pods-per-node 30 --namespaces 100 --no-informer
 *   bun bench/sync.ts --no-informer --parse-threads 2               # the source's parseThreads
 *   bun bench/sync.ts --informer-as-deployed                      # the informer with the image's MIMALLOC_PURGE_DELAY
 *   MIMALLOC_PURGE_DELAY= bun bench/sync.ts                       # every process with Bun's default
 *   bun bench/sync.ts --kubemeta-env BUN_JSC_forceRAMSize=1610612736 # kubemeta alone as deploy/'s manifests run it
 *   bun bench/sync.ts --api-compression                           # the API server gzips LISTs for clients that ask
 *
 * The API server does not compress by default, as in every run before the option: kubemeta never asks for it (its
 * streaming list would not be compressed anyway), the informer does, and a kube-apiserver with response compression
 * on (its default) gzips the informer's list.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { CoreV1Api, KubeConfig, makeInformer, type V1Pod } from "@kubernetes/client-node";
import type { FloorRates } from "./floor.ts";
import {
  allocatorLine,
  asDeployed,
  cpuSeconds,
  fmt,
  Kubemeta,
  machine,
  metricSum,
  minorFaults,
  mib,
  peakRss,
  percentile,
  probeHealth,
  requestsBetween,
  seconds,
  Simulator,
  threadCpu,
  writeConfig,
  type SimulatorStats,
} from "./processes.ts";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    nodes: { type: "string", default: "5000" },
    "pods-per-node": { type: "string", default: "30" },
    // Each namespace adds a CronJob and a Job: 5,000 bring the other objects to ~50,000 at 150,000 pods.
    namespaces: { type: "string", default: "5000" },
    "no-informer": { type: "boolean", default: false },
    // The informer with kubemeta's allocator setting too; without, with this process's (as a user would run it).
    "informer-as-deployed": { type: "boolean", default: false },
    // The source's parseThreads (its default when not given).
    "parse-threads": { type: "string" },
    "timeout-s": { type: "string", default: "600" },
    // NAME=VALUE, repeatable: set for kubemeta's process alone (a JavaScriptCore option, the allocator's).
    "kubemeta-env": { type: "string", multiple: true, default: [] },
    "api-compression": { type: "boolean", default: false },
  },
});

/** `--kubemeta-env` as an environment; refuses a value that is not NAME=VALUE. */
const kubemetaEnv: Record<string, string> = Object.fromEntries(
  values["kubemeta-env"].map((pair) => {
    const at = pair.indexOf("=");
    if (at <= 0) throw new Error(`--kubemeta-env ${JSON.stringify(pair)}: expected NAME=VALUE`);
    return [pair.slice(0, at), pair.slice(at + 1)];
  }),
);

/** The informer's environment: a user's, or with `--informer-as-deployed` kubemeta's allocator setting too. */
const informerEnv = values["informer-as-deployed"] ? asDeployed : process.env;

/** Child process: an informer on every pod; prints when its initial list is done, then waits to be killed. */
async function informer(kubeconfig: string): Promise<void> {
  const config = new KubeConfig();
  config.loadFromFile(kubeconfig);
  const api = config.makeApiClient(CoreV1Api);
  const pods = makeInformer<V1Pod>(config, "/api/v1/pods", () => api.listPodForAllNamespaces());
  const started = performance.now();
  await pods.start(); // resolves once the list is in its cache and the watch is open
  console.log(JSON.stringify({ ms: Math.round(performance.now() - started), pods: pods.list().length }));
  await new Promise(() => {});
}

function mbps(bytes: number, ms: number): string {
  return `${fmt(bytes / 1e6)} MB (${fmt(bytes / 1e6 / (ms / 1000))} MB/s)`;
}

async function main(): Promise<void> {
  const timeoutMs = Number(values["timeout-s"]) * 1000;
  console.log(machine());
  console.log(allocatorLine());
  if (values["kubemeta-env"].length > 0)
    console.log(`kubemeta's own environment also: ${values["kubemeta-env"].join(" ")}`);
  const dir = await mkdtemp(join(tmpdir(), "kubemeta-bench-sync-"));
  const simulator = await Simulator.start(dir, [
    "--nodes",
    values.nodes!,
    "--pods-per-node",
    values["pods-per-node"]!,
    "--namespaces",
    values.namespaces!,
    ...(values["api-compression"] ? [] : ["--no-compression"]),
  ]);
  const pods = Number(values.nodes) * Number(values["pods-per-node"]);
  const { objects, populateMs } = simulator.info;
  const compression = values["api-compression"] ? "gzips LISTs for clients that ask" : "no compression";
  console.log(
    `simulated API server (own process, TLS, ${compression}): ${fmt(objects)} objects: ` +
      `${fmt(Number(values.nodes))} nodes, ` +
      `${fmt(pods)} pods, ${fmt(objects - pods - Number(values.nodes))} others; populated in ${seconds(populateMs)}`,
  );
  const parseThreads = values["parse-threads"];
  const config = await writeConfig(
    dir,
    simulator.kubeconfig,
    [],
    parseThreads ? [`parseThreads: ${parseThreads}`] : [],
  );
  try {
    const before = await floorRates(dir);
    const sync = await initialSync(simulator, config, timeoutMs);
    await restart(simulator, config, sync.kubemeta, timeoutMs);
    const theirs = values["no-informer"] ? undefined : await informerRun(simulator, dir, timeoutMs);
    if (theirs)
      console.log(
        `ratios: the informer took ${(theirs.ms / sync.ms).toFixed(2)}x kubemeta's time to its initial list done; ` +
          `kubemeta's peak RSS is ${(sync.rss / theirs.rss).toFixed(2)}x the informer's ` +
          "(kubemeta syncs every default resource and commits it; the informer lists pods alone into memory)",
      );
    // Nothing of kubemeta's may run beside the floor's measurement on one thread.
    await Kubemeta.killAll();
    await floor(sync, theirs?.ms, [before, await floorRates(dir)]);
  } finally {
    await Kubemeta.killAll();
    await simulator.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

function bytesBetween(before: SimulatorStats, after: SimulatorStats): number {
  return after.bytesSent - before.bytesSent;
}

async function initialSync(simulator: Simulator, config: string, timeoutMs: number) {
  const before = await simulator.stats();
  const started = performance.now();
  const serverCpu = await cpuSeconds(simulator.pid);
  const kubemeta = await Kubemeta.start(config, kubemetaEnv);
  const health = probeHealth(kubemeta.url);
  await kubemeta.ready(timeoutMs);
  const ms = performance.now() - started;
  const rss = await kubemeta.peakRss();
  const threads = (await threadCpu(kubemeta.proc.pid)).filter(([, cpu]) => cpu >= 0.05);
  const faults = await minorFaults(kubemeta.proc.pid);
  const server = (await cpuSeconds(simulator.pid)) - serverCpu;
  const latencies = await health.stop();
  const after = await simulator.stats();
  const metrics = await kubemeta.metrics();
  const updates = metricSum(metrics, "kubemeta_updates_committed_total");
  const events = metricSum(metrics, "kubemeta_source_events_total");
  console.log(
    `(a) initial sync to ready: ${seconds(ms)}, ${fmt(updates)} updates committed ` +
      `(${fmt(updates / (ms / 1000))} updates/s), ${fmt(events)} events in; peak RSS ${mib(rss)}`,
  );
  console.log(
    `    bytes received: ${mbps(bytesBetween(before, after), ms)}; ` +
      `requests: ${requestsBetween(before, after, ["watchlist"])} streaming lists, ` +
      `${requestsBetween(before, after, ["list"])} LIST`,
  );
  console.log(
    `    /healthz during sync (${latencies.length} probes): p50 ${percentile(latencies, 50).toFixed(1)} ms, ` +
      `p99 ${percentile(latencies, 99).toFixed(1)} ms, max ${Math.max(...latencies).toFixed(1)} ms`,
  );
  const cpu = threads.reduce((sum, [, seconds]) => sum + seconds, 0);
  const byThread = threads
    .map(([name, s, faults]) => `${name} ${s.toFixed(1)} (${fmt(faults / 1000)}k faults)`)
    .join(", ");
  const busy = fmt(((cpu + server) / (ms / 1000) / cpus().length) * 100);
  console.log(
    `    CPU to ready: kubemeta ${cpu.toFixed(1)} s (${byThread}), ` +
      `API server ${server.toFixed(1)} s: ${busy} % of ${cpus().length} cores; ` +
      `kubemeta's page faults ${fmt(faults)} (${mib(faults * 4096)} of pages touched afresh)`,
  );
  const lag = (le: string) => metricSum(metrics, "kubemeta_event_loop_lag_seconds_bucket", `le="${le}"`);
  const ticks = metricSum(metrics, "kubemeta_event_loop_lag_seconds_count");
  console.log(
    `    kubemeta's own event loop (a 10 ms timer, ${fmt(ticks)} ticks): ` +
      `${fmt(ticks - lag("0.025"))} over 25 ms late, ${fmt(ticks - lag("0.05"))} over 50 ms, ` +
      `${fmt(ticks - lag("0.1"))} over 100 ms`,
  );
  return { kubemeta, ms, rss, bytes: bytesBetween(before, after), updates, serverCpu: server };
}

/** Rows SQLite inserts to measure its cost an object: fewer than a sync's, so its indexes are smaller (cheaper). */
const FLOOR_ROWS = 50_000;

/** The floor's parts measured now, on one thread, with nothing of kubemeta's running. */
async function floorRates(dir: string): Promise<FloorRates> {
  // Imported here: the informer's process runs this file too, and must not make floor.ts's pods before its own start.
  const { preparePerByte, sqliteAlone } = await import("./floor.ts");
  const parseNs = preparePerByte();
  const sqlite = await sqliteAlone(
    dir,
    Array.from({ length: FLOOR_ROWS }, () => crypto.randomUUID()),
  );
  return { parseNs, sqliteMicros: (sqlite.user + sqlite.system) / FLOOR_ROWS };
}

async function floor(
  sync: Awaited<ReturnType<typeof initialSync>>,
  informerMs: number | undefined,
  measures: FloorRates[],
) {
  const { fastestRates, measuredRates } = await import("./floor.ts");
  const cores = cpus().length;
  const { parseNs, sqliteMicros } = fastestRates(measures);
  const each = measuredRates(measures);
  const parseS = (parseNs * sync.bytes) / 1e9;
  const sqliteS = (sqliteMicros * sync.updates) / 1e6;
  const bound = (parseS + sqliteS + sync.serverCpu) / cores;
  console.log(
    `(d) floor of (a) on ${cores} cores, measured here on one thread before (a) and at the end, each part at its ` +
      `faster: skim + JSON.parse + slim + digest of real-size pods at ${fmt(1e3 / parseNs)} MB/s ` +
      `(of ${each.parseMBps}; ${parseS.toFixed(1)} s for the ${fmt(sync.bytes / 1e6)} MB), SQLite's own inserts at ` +
      `${sqliteMicros.toFixed(1)} µs an object (of ${each.sqliteMicros}; ${sqliteS.toFixed(1)} s for ` +
      `${fmt(sync.updates)}), the API server's ${sync.serverCpu.toFixed(1)} s: at least ${bound.toFixed(2)} s`,
  );
  if (informerMs !== undefined)
    console.log(
      `    4x the informer's speed needs ${seconds(informerMs / 4)}; no sync of this cluster can be more than ` +
        `${(informerMs / 1000 / bound).toFixed(2)}x faster than the informer here (kubemeta: ` +
        `${(informerMs / sync.ms).toFixed(2)}x)`,
    );
}

async function restart(simulator: Simulator, config: string, previous: Kubemeta, timeoutMs: number) {
  await previous.kill("SIGKILL");
  const before = await simulator.stats();
  const started = performance.now();
  const kubemeta = await Kubemeta.start(config, kubemetaEnv);
  await kubemeta.ready(timeoutMs);
  const ms = performance.now() - started;
  const rss = await kubemeta.peakRss();
  const after = await simulator.stats();
  const updates = metricSum(await kubemeta.metrics(), "kubemeta_updates_committed_total");
  await kubemeta.kill("SIGTERM");
  console.log(
    `(b) kill -9, restart on the same store: ready in ${seconds(ms)}; ` +
      `${requestsBetween(before, after, ["list", "watchlist"])} LIST (streaming or paged), ` +
      `${requestsBetween(before, after, ["watch"])} watches resumed, ${fmt(updates)} new updates; ` +
      `bytes received ${fmt(bytesBetween(before, after) / 1e3)} kB; peak RSS ${mib(rss)}`,
  );
}

async function informerRun(simulator: Simulator, dir: string, timeoutMs: number) {
  const ca = await simulator.writeCa(join(dir, "ca.pem"));
  const before = await simulator.stats();
  const started = performance.now();
  const child = Bun.spawn([process.execPath, import.meta.path, "informer", simulator.kubeconfig], {
    // client-node under Bun ignores the kubeconfig's CA; this is the one setting it honours (DESIGN.md, pitfalls).
    env: { ...informerEnv, NODE_EXTRA_CA_CERTS: ca },
    stdout: "pipe",
    stderr: "inherit",
  });
  try {
    const first = child.stdout.getReader().read();
    let timer: Timer | undefined;
    // A timer, not Bun.sleep: a pending sleep would keep this process alive for timeoutMs after the run.
    const timedOut = new Promise<undefined>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
    const line = await Promise.race([first, timedOut]).finally(() => clearTimeout(timer));
    if (!line?.value) throw new Error("the informer ended or timed out before its initial list was done");
    const ms = performance.now() - started;
    const rss = await peakRss(child.pid);
    const after = await simulator.stats();
    const own = JSON.parse(new TextDecoder().decode(line.value)) as { ms: number; pods: number };
    console.log(
      `(c) client-node informer on pods (own process, nothing stored): initial list done in ${seconds(ms)} ` +
        `(${seconds(own.ms)} after its start), ${fmt(own.pods)} pods (${fmt(own.pods / (ms / 1000))}/s); ` +
        `peak RSS ${mib(rss)}`,
    );
    const delay = informerEnv.MIMALLOC_PURGE_DELAY || "unset";
    console.log(`    bytes received: ${mbps(bytesBetween(before, after), ms)}; MIMALLOC_PURGE_DELAY ${delay}`);
    return { ms, rss };
  } finally {
    child.kill("SIGKILL");
    await child.exited;
  }
}

if (positionals[0] === "informer") await informer(positionals[1]!);
else await main();
