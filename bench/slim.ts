/**
 * How fast the core can turn raw pod events into slim copies and digests.
 * Run: bun run bench/slim.ts [count]   (default 200000 pods)
 *
 * Each iteration parses one real pod's JSON (the kind cluster captures, 6–10 KB each),
 * slims it and digests it: the per-event work of the core before it commits. JSON.parse
 * alone and slim + digest alone are measured too, to show what slimming adds on top of
 * the parse that any reader of the watch stream pays anyway.
 */
import { cpus, availableParallelism } from "node:os";
import { digest, slim } from "../core/slim.ts";
import { listItems } from "../tests/fixtures/k8s/load.ts";

const count = Number(process.argv[2] ?? 200_000);
const pods = [
  ...(await listItems("real/kind-v1.36.2/core.v1.PodList.json")),
  ...(await listItems("real/kind-v1.36.2/core.v1.PodList.job-pod.json")),
];
const bodies = pods.map((pod) => JSON.stringify(pod));
const averageBytes = Math.round(bodies.reduce((sum, body) => sum + body.length, 0) / bodies.length);

/** Runs `work` on pod i % pods for `count` iterations, after a warm-up. */
function measure(label: string, work: (index: number) => number): void {
  for (let i = 0; i < 5_000; i++) work(i % bodies.length);
  let sink = 0;
  const start = Bun.nanoseconds();
  for (let i = 0; i < count; i++) sink ^= work(i % bodies.length);
  const seconds = (Bun.nanoseconds() - start) / 1e9;
  console.log(
    `${label.padEnd(30)} ${Math.round(count / seconds)
      .toLocaleString("en-US")
      .padStart(10)} ops/s  (${((seconds * 1e6) / count).toFixed(2)} µs/op, ${sink & 1})`,
  );
}

const slimBytes = Math.round(
  bodies.reduce((sum, body) => sum + JSON.stringify(slim("Pod", JSON.parse(body))).length, 0) / bodies.length,
);
console.log(`machine: ${availableParallelism()} CPUs, ${cpus()[0]?.model ?? "unknown CPU"}; Bun ${Bun.version}`);
console.log(`${count} pods from ${bodies.length} real ones, ${averageBytes} B raw → ${slimBytes} B slim on average`);
measure("JSON.parse", (i) => (JSON.parse(bodies[i]!) === null ? 1 : 0));
measure("slim + digest (parsed pod)", (i) => digest(slim("Pod", pods[i]!)));
measure("JSON.parse + slim + digest", (i) => digest(slim("Pod", JSON.parse(bodies[i]!))));
