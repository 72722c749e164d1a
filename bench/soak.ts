/**
 * Memory under steady churn, over time: kubemeta (a real process, as the image runs it: kubernetes source, libSQL
 * file, NATS sink on a real nats-server) follows a simulated cluster whose API server (its own process) makes
 * `--rate` pod changes a second (startChurn's mix: creates and deletes balanced, so the cluster keeps its size) for
 * `--minutes`. Every `--every` seconds it prints kubemeta's resident memory beside the events taken in and the NATS
 * sink's lag; at the end, how the memory moved over the second half of the run, when any growth left is a leak or an
 * allocator that keeps what it should reuse, not the warm-up.
 *
 *   bun bench/soak.ts [--rate 2000] [--minutes 20] [--every 30] [--nodes 200] [--pods-per-node 50]
 */
import { parseArgs } from "node:util";
import {
  allocatorLine,
  cpuSeconds,
  fmt,
  Kubemeta,
  machine,
  metricSum,
  mib,
  residentNow,
  startNatsBench,
} from "./processes.ts";

const { values } = parseArgs({
  options: {
    rate: { type: "string", default: "2000" },
    minutes: { type: "string", default: "20" },
    every: { type: "string", default: "30" },
    nodes: { type: "string", default: "200" },
    "pods-per-node": { type: "string", default: "50" },
  },
});
const durationMs = Number(values.minutes) * 60_000;
const everyMs = Number(values.every) * 1000;

/** The least-squares slope of y over x: a trend that one noisy sample at either end does not make. */
function slope(points: [x: number, y: number][]): number {
  const mean = (values: number[]) => values.reduce((sum, value) => sum + value, 0) / values.length;
  const mx = mean(points.map(([x]) => x));
  const my = mean(points.map(([, y]) => y));
  const covariance = points.reduce((sum, [x, y]) => sum + (x - mx) * (y - my), 0);
  const variance = points.reduce((sum, [x]) => sum + (x - mx) ** 2, 0);
  return variance === 0 ? 0 : covariance / variance;
}

console.log(machine());
console.log(allocatorLine());
const { simulator, config, close } = await startNatsBench(
  "soak",
  { nodes: values.nodes!, podsPerNode: values["pods-per-node"]! },
  ["--churn", values.rate!],
);
const kubemeta = await Kubemeta.start(config);
try {
  await kubemeta.ready(120_000);
  console.log(
    `${fmt(simulator.info.objects)} objects, ${values.rate} pod changes/s, ${values.minutes} min, ` +
      `a sample every ${values.every} s`,
  );
  const started = performance.now();
  const samples: { minutes: number; rss: number }[] = [];
  // The first sync's events are not the churn's.
  let lastEvents = metricSum(await kubemeta.metrics(), "kubemeta_source_events_total");
  while (performance.now() - started < durationMs) {
    await Bun.sleep(everyMs);
    const text = await kubemeta.metrics();
    const events = metricSum(text, "kubemeta_source_events_total");
    const minutes = (performance.now() - started) / 60_000;
    const memory = await residentNow(kubemeta.proc.pid);
    samples.push({ minutes, rss: memory.rss });
    const pruned = metricSum(text, "kubemeta_store_pruned_updates_total");
    console.log(
      `  ${minutes.toFixed(1).padStart(5)} min: RSS ${mib(memory.rss).padStart(8)} ` +
        `(anonymous ${mib(memory.anon)}, files ${mib(memory.file)}), ` +
        `${fmt(metricSum(text, "kubemeta_updates_committed_total") - pruned)} updates kept, ` +
        `${fmt((events - lastEvents) / (everyMs / 1000))} events/s in, ` +
        `NATS lag ${fmt(metricSum(text, "kubemeta_sink_lag_versions", 'sink="nats"'))}`,
    );
    lastEvents = events;
  }
  const secondHalf = samples.filter((sample) => sample.minutes >= samples.at(-1)!.minutes / 2);
  const first = secondHalf[0]!;
  const last = secondHalf.at(-1)!;
  const sizes = secondHalf.map((sample) => sample.rss);
  const perHour =
    Math.round((slope(secondHalf.map((sample) => [sample.minutes, sample.rss])) * 60) / 2 ** 20) * 2 ** 20;
  console.log(
    `second half (${first.minutes.toFixed(1)}–${last.minutes.toFixed(1)} min): RSS ${mib(Math.min(...sizes))} to ` +
      `${mib(Math.max(...sizes))}, its trend ${perHour >= 0 ? "+" : "−"}${mib(Math.abs(perHour))} an hour; ` +
      `peak RSS over the run ${mib(await kubemeta.peakRss())}, ` +
      `kubemeta ${(await cpuSeconds(kubemeta.proc.pid)).toFixed(1)} CPU-seconds`,
  );
} finally {
  await close();
}
