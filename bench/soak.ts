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
import { allocatorLine, cpuSeconds, fmt, Kubemeta, machine, metricSum, mib, startNatsBench } from "./processes.ts";

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

/** Resident memory now (VmRSS), not the high-water mark: what is kept, as time goes on. */
async function rss(pid: number): Promise<number> {
  const status = await Bun.file(`/proc/${pid}/status`).text();
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
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
  let lastEvents = 0;
  while (performance.now() - started < durationMs) {
    await Bun.sleep(everyMs);
    const text = await kubemeta.metrics();
    const events = metricSum(text, "kubemeta_source_events_total");
    const minutes = (performance.now() - started) / 60_000;
    const resident = await rss(kubemeta.proc.pid);
    samples.push({ minutes, rss: resident });
    console.log(
      `  ${minutes.toFixed(1).padStart(5)} min: RSS ${mib(resident).padStart(8)}, ` +
        `${fmt((events - lastEvents) / (everyMs / 1000))} events/s in, ` +
        `NATS lag ${fmt(metricSum(text, "kubemeta_sink_lag_versions", 'sink="nats"'))}`,
    );
    lastEvents = events;
  }
  const secondHalf = samples.filter((sample) => sample.minutes >= samples.at(-1)!.minutes / 2);
  const first = secondHalf[0]!;
  const last = secondHalf.at(-1)!;
  const highest = Math.max(...secondHalf.map((sample) => sample.rss));
  const perHour = ((last.rss - first.rss) / (last.minutes - first.minutes)) * 60;
  console.log(
    `second half (${first.minutes.toFixed(1)}–${last.minutes.toFixed(1)} min): RSS ${mib(first.rss)} → ` +
      `${mib(last.rss)} (highest ${mib(highest)}), ${perHour >= 0 ? "+" : "−"}${mib(Math.abs(perHour))} an hour; ` +
      `peak RSS over the run ${mib(await kubemeta.peakRss())}, kubemeta ${(await cpuSeconds(kubemeta.proc.pid)).toFixed(1)} CPU-seconds`,
  );
} finally {
  await close();
}
