/**
 * Sustained ingest end to end, from a backlog: kubemeta (a real process: kubernetes source, libSQL file, NATS sink on
 * a real nats-server) syncs a simulated cluster and stops; the simulated API server (its own process) then makes
 * `--changes` pod changes (startChurn's mix: mostly MODIFIED, creates and deletes balanced, a third of the
 * modifications touching only managedFields); kubemeta starts again on its store, resumes its watches from the stored
 * resourceVersions, and the API server replays its watch history at line speed. Measured from that restart until the
 * NATS sink's lag is back to 0: watch events in/s, updates committed/s, NATS messages published/s, bytes received,
 * and the CPU each process used. Then the floor of that ingest on this machine (floor.ts): the most events/s any
 * design keeping kubemeta's data model could take in here.
 *
 *   bun bench/ingest.ts [--changes 100000] [--nodes 200] [--pods-per-node 50]
 */
import { cpus } from "node:os";
import { parseArgs } from "node:util";
import { fastestRates, measuredRates, preparePerByte, sqliteChurn, type FloorRates } from "./floor.ts";
import { waitFor } from "../testing/index.ts";
import {
  allocatorLine,
  cpuSeconds,
  fmt,
  Kubemeta,
  machine,
  metricSum,
  mib,
  minorFaults,
  percentile,
  probeHealth,
  requestsBetween,
  seconds,
  startNatsBench,
  threadCpu,
} from "./processes.ts";

const { values } = parseArgs({
  options: {
    changes: { type: "string", default: "100000" },
    nodes: { type: "string", default: "200" },
    "pods-per-node": { type: "string", default: "50" },
    "timeout-s": { type: "string", default: "600" },
  },
});
const changes = Number(values.changes);
const timeoutMs = Number(values["timeout-s"]) * 1000;
const LAG = "kubemeta_sink_lag_versions";
/** SQLite's modifications measured for the floor: enough for a steady rate, fewer than a backlog's. */
const FLOOR_CHANGES = 50_000;

console.log(machine());
console.log(allocatorLine());
const bench = await startNatsBench("ingest", { nodes: values.nodes!, podsPerNode: values["pods-per-node"]! }, [
  // The whole backlog must stay in the watch history, or the resume is a 410 and a relist, not a replay.
  "--watch-history",
  String(Math.ceil(changes * 1.2) + 10_000),
]);
const { dir, nats, simulator, config } = bench;

/** One sample of kubemeta's counters; a restarted process counts from 0. */
async function sample(kubemeta: Kubemeta) {
  const text = await kubemeta.metrics();
  return {
    at: performance.now(),
    events: metricSum(text, "kubemeta_source_events_total"),
    committed: metricSum(text, "kubemeta_updates_committed_total"),
    published: metricSum(text, "kubemeta_nats_published_total"),
    lag: metricSum(text, LAG, 'sink="nats"'),
  };
}

try {
  const floorBefore = await floorRates();
  const first = await Kubemeta.start(config);
  await first.ready(timeoutMs);
  await waitFor(async () => (await sample(first)).lag === 0, timeoutMs, "the NATS sink to catch up after the sync");
  console.log(`synced: ${fmt(simulator.info.objects)} objects; kubemeta stopped (SIGTERM) with its NATS sink at lag 0`);
  await first.kill("SIGTERM");

  const burst = (await simulator.command(`churn ${changes}`)) as { changes: number; ms: number };
  console.log(
    `backlog: ${fmt(burst.changes)} pod changes made by the API server in ${seconds(burst.ms)} while kubemeta was down`,
  );

  const before = await simulator.stats();
  const simulatorCpu = await cpuSeconds(simulator.pid);
  const natsCpu = await cpuSeconds(nats.pid!);
  const started = performance.now();
  const kubemeta = await Kubemeta.start(config);
  const health = probeHealth(kubemeta.url);
  let firstEventAt: number | undefined;
  let last = { at: started, events: 0, committed: 0, published: 0, lag: 0 };
  // Sampled every 100 ms: /metrics is rendered by kubemeta's own event loop, so polling it harder would cost it.
  for (;;) {
    last = await sample(kubemeta).catch(() => last);
    if (last.events > 0) firstEventAt ??= last.at;
    // Done once every backlog event is in and the sink has published everything committed.
    if (last.events >= burst.changes && last.lag === 0) break;
    if (performance.now() - started > timeoutMs)
      throw new Error(`not caught up in ${timeoutMs} ms: ${JSON.stringify(last)}`);
    await Bun.sleep(100);
  }
  const ms = last.at - started;
  const kubemetaCpu = await cpuSeconds(kubemeta.proc.pid);
  const threads = (await threadCpu(kubemeta.proc.pid)).filter(([, cpu]) => cpu >= 0.05);
  const faults = await minorFaults(kubemeta.proc.pid);
  const serverCpu = (await cpuSeconds(simulator.pid)) - simulatorCpu;
  const natsServerCpu = (await cpuSeconds(nats.pid!)) - natsCpu;
  const rss = await kubemeta.peakRss();
  const latencies = await health.stop();
  const after = await simulator.stats();
  const bytes = after.bytesSent - before.bytesSent;
  const perSecond = (n: number) => `${fmt(n / (ms / 1000))}/s`;
  console.log(
    `ingest after restart, to NATS lag 0: ${seconds(ms)} (first event seen ${seconds(firstEventAt! - started)} ` +
      `after start); ${requestsBetween(before, after, ["list", "watchlist"])} LIST`,
  );
  const sinceFirst = last.at - firstEventAt!;
  console.log(
    `  watch events in:          ${fmt(last.events)}, ${perSecond(last.events)} ` +
      `(${fmt(last.events / (sinceFirst / 1000))}/s from the first event seen)`,
  );
  console.log(
    `  updates committed:        ${fmt(last.committed)}, ${perSecond(last.committed)} ` +
      "(changes to fields kubemeta drops are suppressed)",
  );
  console.log(
    `  NATS messages published:  ${fmt(last.published)}, ${perSecond(last.published)} (all + node or shared)`,
  );
  console.log(
    `  bytes received:           ${fmt(bytes / 1e6)} MB, ${fmt(bytes / 1e6 / (ms / 1000))} MB/s ` +
      `(${fmt(bytes / Math.max(1, last.events))} B per event)`,
  );
  console.log(
    `  CPU over the window: kubemeta ${fmt((kubemetaCpu / (ms / 1000)) * 100)} % of a core (from its start), ` +
      `API server ${fmt((serverCpu / (ms / 1000)) * 100)} %, ` +
      `nats-server ${fmt((natsServerCpu / (ms / 1000)) * 100)} %; ` +
      `kubemeta peak RSS ${mib(rss)}`,
  );
  const byThread = threads
    .map(([name, cpu, faults]) => `${name} ${cpu.toFixed(1)} (${fmt(faults / 1000)}k faults)`)
    .join(", ");
  console.log(`  kubemeta's CPU seconds by thread (from its start): ${byThread}`);
  console.log(
    `  kubemeta's page faults (from its start): ${fmt(faults)} (${mib(faults * 4096)} of pages touched afresh)`,
  );
  console.log(
    `  /healthz (${latencies.length} probes): p99 ${percentile(latencies, 99).toFixed(1)} ms, ` +
      `max ${Math.max(...latencies).toFixed(1)} ms`,
  );
  // Nothing of kubemeta's may run beside the floor's measurement on one thread.
  await Kubemeta.killAll();
  const measures = [floorBefore, await floorRates()];
  floor({ ms, bytes, events: last.events, committed: last.committed, serverCpu, natsServerCpu }, measures);
} finally {
  await bench.close();
}

/** The floor's parts measured now, on one thread, with nothing of kubemeta's running. */
async function floorRates(): Promise<FloorRates> {
  const parseNs = preparePerByte();
  const pods = Number(values.nodes) * Number(values["pods-per-node"]);
  const sqlite = await sqliteChurn(dir, pods, FLOOR_CHANGES);
  return { parseNs, sqliteMicros: (sqlite.user + sqlite.system) / FLOOR_CHANGES };
}

/**
 * The floor of this ingest on this machine (floor.ts): what preparing the bytes received and SQLite's own writes of
 * the updates committed cost on one thread, plus the API server's and nats-server's CPU in the window, spread
 * perfectly over the cores. Its parts are measured before the first sync and again at the end, and each counts at its
 * faster: the machine's speed drifts between the minutes of one run.
 */
function floor(
  ingest: { ms: number; bytes: number; events: number; committed: number; serverCpu: number; natsServerCpu: number },
  measures: FloorRates[],
) {
  const cores = cpus().length;
  const { parseNs, sqliteMicros } = fastestRates(measures);
  const each = measuredRates(measures);
  const parseS = (parseNs * ingest.bytes) / 1e9;
  const sqliteS = (sqliteMicros * ingest.committed) / 1e6;
  const bound = (parseS + sqliteS + ingest.serverCpu + ingest.natsServerCpu) / cores;
  console.log(
    `floor of this ingest on ${cores} cores, measured here on one thread before the first sync and at the end, each ` +
      `part at its faster: skim + JSON.parse + slim + digest at ${fmt(1e3 / parseNs)} MB/s (of ${each.parseMBps}; ` +
      `${parseS.toFixed(1)} s for the ${fmt(ingest.bytes / 1e6)} MB), SQLite's own writes at ` +
      `${sqliteMicros.toFixed(1)} µs an update (of ${each.sqliteMicros}; ${sqliteS.toFixed(1)} s for ` +
      `${fmt(ingest.committed)}), the API server's ${ingest.serverCpu.toFixed(1)} s and nats-server's ` +
      `${ingest.natsServerCpu.toFixed(1)} s: at least ${bound.toFixed(2)} s`,
  );
  console.log(
    `  no ingest of this backlog can take in more than ${fmt(ingest.events / bound)} events/s here ` +
      `(kubemeta: ${fmt(ingest.events / (ingest.ms / 1000))}/s, ${(ingest.ms / 1000 / bound).toFixed(2)}x the ` +
      "floor's time)",
  );
}
