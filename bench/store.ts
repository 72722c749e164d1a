/**
 * Benchmarks the libsql store on a `file:` in a temp dir: commit throughput for an initial
 * sync (ADDED) and for churn (MODIFIED), replay, snapshot, digests, prune and a second
 * prune that only sweeps the updates kept as current state. Beside each commit rate: the
 * longest event-loop stall the commits caused (the bench's own batch making left out) and
 * how busy the main thread was (the writer runs on a thread of its own, see
 * plugins/stores/libsql/writer.ts).
 *
 *   bun bench/store.ts [--pods 150000] [--nodes 5000] [--batch 1000] [--churn 60000] [--overlap]
 *
 * --overlap makes the next batch while the store commits the last one, as a source parses
 * the next events while the pipeline commits.
 */
import * as v from "valibot";
import { existsSync, readFileSync, statSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import libsql from "../plugins/stores/libsql.ts";
import { createMetrics } from "../host/metrics.ts";
import { silentLogger } from "../host/logger.ts";
import type { Store } from "../sdk/contract.ts";
import type { ChangeType } from "../protocol/envelope.ts";
import type { Update } from "../sdk/model.ts";

const { values } = parseArgs({
  options: {
    pods: { type: "string", default: "150000" },
    nodes: { type: "string", default: "5000" },
    batch: { type: "string", default: "1000" },
    churn: { type: "string", default: "60000" },
    overlap: { type: "boolean", default: false },
  },
});
const pods = Number(values.pods);
const nodes = Number(values.nodes);
const batchSize = Number(values.batch);
const churn = Number(values.churn);

const nodeName = (i: number) => `ip-10-0-${(i >> 8) & 255}-${i & 255}.eu-west-1.compute.internal`;

/** A slim pod of about 440 bytes of JSON, like the core produces. */
function pod(i: number, generation: number) {
  const name = `web-${(i % 997).toString(36)}-7d9f8c6b5-${i.toString(36)}`;
  return {
    kind: "Pod",
    uid: `4f9c0a1e-8a51-4d3b-9b36-${i.toString(16).padStart(12, "0")}`,
    namespace: `team-${i % 40}`,
    name,
    node: nodeName(i % nodes),
    object: {
      metadata: {
        name,
        namespace: `team-${i % 40}`,
        uid: `4f9c0a1e-8a51-4d3b-9b36-${i.toString(16).padStart(12, "0")}`,
        labels: { app: `web-${i % 997}`, "pod-template-hash": "7d9f8c6b5", generation: String(generation) },
        ownerReferences: [
          { kind: "ReplicaSet", name: `web-${i % 997}-7d9f8c6b5`, uid: "0b6e7c1a-2d4f-4a8e-9c3b-5f1d2e3a4b5c" },
        ],
        creationTimestamp: "2026-11-28T04:05:06Z",
      },
      spec: { nodeName: nodeName(i % nodes) },
      status: {
        phase: "Running",
        podIP: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
        hostIP: "10.0.1.23",
        qosClass: "Burstable",
        ready: true,
        containers: [
          {
            name: "web",
            containerID: `containerd://${i.toString(16).padStart(16, "0")}`,
            image: "registry.example.com/web:1.27.3",
          },
        ],
      },
    },
  };
}

let version = 0;
const streamHeads = new Map<string, number>();
function batchOf(indexes: number[], type: ChangeType, generation: number): Update[] {
  return indexes.map((i) => {
    const p = pod(i, generation);
    const stream = `node/${p.node}`;
    const update: Update = {
      version: ++version,
      stream,
      streamPrev: streamHeads.get(stream) ?? 0,
      type,
      resourceVersion: String(1_000_000 + version),
      time: new Date().toISOString(),
      ...p,
    };
    streamHeads.set(stream, update.version);
    return update;
  });
}

/** Milliseconds spent making batches (the bench's work, not the store's), so far. */
let making = 0;
function timedMake(make: () => Update[]): Update[] {
  const started = performance.now();
  const updates = make();
  making += performance.now() - started;
  return updates;
}

/** Longest time the event loop did not get to run a 1 ms timer, less the batch making within it. */
function stallMeter() {
  let last = performance.now();
  let makingAtLast = making;
  let worst = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    worst = Math.max(worst, now - last - (making - makingAtLast));
    last = now;
    makingAtLast = making;
  }, 1);
  return () => {
    clearInterval(timer);
    return worst;
  };
}

/** CPU seconds of this process's main thread (Linux: /proc/self/task/<pid>/stat; utime and stime in ticks). */
function mainThreadCpu(): number {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

async function commitAll(store: Store, label: string, count: number, make: (from: number, to: number) => Update[]) {
  const stop = stallMeter();
  const started = performance.now();
  const cpuBefore = mainThreadCpu();
  const makingBefore = making;
  const inCommitsBefore = commitSeconds();
  let peakWal = 0;
  const batchAt = (from: number) => timedMake(() => make(from, Math.min(count, from + batchSize)));
  let next = batchAt(0);
  for (let from = 0; from < count; from += batchSize) {
    const updates = next;
    const committing = store.commit({
      updates,
      digests: updates.map((u) => u.version),
      resumePoints: new Map([["pods", updates[updates.length - 1]!.resourceVersion]]),
    });
    const following = from + batchSize;
    if (values.overlap && following < count) {
      // The commit posts its statements within microtasks; a source's next bytes come as a later task.
      await new Promise<void>((resolve) => setImmediate(resolve));
      next = batchAt(following);
    }
    await committing;
    if (!values.overlap && following < count) next = batchAt(following);
    peakWal = Math.max(peakWal, walBytes());
  }
  const seconds = (performance.now() - started) / 1000;
  const busy = (mainThreadCpu() - cpuBefore) / seconds;
  const made = (making - makingBefore) / 1000 / seconds;
  const perCommit = ((commitSeconds() - inCommitsBefore) * 1000) / Math.ceil(count / batchSize);
  report(
    `commit ${label}`,
    count,
    seconds,
    `${perCommit.toFixed(1)} ms a commit, longest event-loop stall ${stop().toFixed(0)} ms, ` +
      `main thread busy ${(busy * 100).toFixed(0)} % ` +
      `(making batches ${(made * 100).toFixed(0)} %), peak WAL ${(peakWal / 2 ** 20).toFixed(0)} MiB`,
  );
}

function report(what: string, count: number, seconds: number, extra = "") {
  console.log(
    `${what.padEnd(34)} ${String(Math.round(count / seconds)).padStart(8)} /s  ` +
      `(${count} in ${seconds.toFixed(2)} s)  ${extra}`,
  );
}

async function timed<T>(work: () => Promise<T>): Promise<[T, number]> {
  const started = performance.now();
  const result = await work();
  return [result, (performance.now() - started) / 1000];
}

const nproc = new TextDecoder().decode(Bun.spawnSync(["nproc"]).stdout).trim();
const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(" ");
console.log(
  `machine: nproc ${nproc}, ${cpus()[0]?.model ?? "unknown cpu"}, Bun ${Bun.version}, load average ${load()}`,
);
console.log(`pods ${pods}, nodes ${nodes}, batch ${batchSize}, churn ${churn}${values.overlap ? ", overlap" : ""}`);

const dir = await mkdtemp(join(tmpdir(), "kubemeta-bench-store-"));
const walBytes = () => (existsSync(join(dir, "kubemeta.db-wal")) ? statSync(join(dir, "kubemeta.db-wal")).size : 0);
const metrics = createMetrics();
const store = libsql.create(v.parse(libsql.schema, { url: `file:${join(dir, "kubemeta.db")}` }), {
  name: "libsql",
  cluster: "bench",
  logger: silentLogger,
  metrics,
});
/** Seconds in commits so far, as the store times them (kubemeta_store_commit_seconds). */
const commitSeconds = () => Number(/^kubemeta_store_commit_seconds_sum (\S+)$/m.exec(metrics.render())?.[1] ?? 0);
try {
  await store.start();
  const range = (from: number, to: number) => Array.from({ length: to - from }, (_, k) => from + k);
  await commitAll(store, "initial sync (ADDED)", pods, (from, to) => batchOf(range(from, to), "ADDED", 0));
  await commitAll(store, "churn (MODIFIED)", churn, (from, to) =>
    batchOf(
      range(from, to).map((k) => (k * 7919) % pods),
      "MODIFIED",
      1,
    ),
  );

  for (const page of [1000, 5000]) {
    const [count, seconds] = await timed(async () => {
      let after = 0;
      let read = 0;
      for (;;) {
        const updates = await store.readUpdates({ stream: "all", after, limit: page });
        if (updates.length === 0) return read;
        read += updates.length;
        after = updates[updates.length - 1]!.version;
      }
    });
    report(`replay all (pages of ${page})`, count, seconds);
  }
  const node = `node/${nodeName(7)}`;
  const [nodeUpdates, nodeSeconds] = await timed(() => store.readUpdates({ stream: node, after: 0, limit: 100_000 }));
  report("replay one node stream", nodeUpdates.length, nodeSeconds);

  const [all, allSeconds] = await timed(() => store.snapshot({}));
  report("snapshot all objects", all.objects.length, allSeconds);
  const [ofNode, nodeSnapSeconds] = await timed(() => store.snapshot({ stream: node }));
  report("snapshot one node stream", ofNode.objects.length, nodeSnapSeconds);
  const [digests, digestSeconds] = await timed(() => store.digests());
  report("digests", digests.length, digestSeconds);

  const stop = stallMeter();
  const [pruned, pruneSeconds] = await timed(() => store.prune({ maxAgeMs: 0, maxUpdates: 10_000 }));
  report("prune to 10,000 updates", pruned.removed, pruneSeconds, `longest event-loop stall ${stop().toFixed(0)} ms`);
  // Retention keeps each object's current update; a prune looks at those again for objects that changed since.
  const [pinned] = await timed(() => store.snapshot({}));
  const [again, againSeconds] = await timed(() => store.prune({ maxAgeMs: 0, maxUpdates: 10_000 }));
  report("prune again (kept updates swept)", pinned.objects.length, againSeconds, `removed ${again.removed}`);
  console.log(`load average at the end: ${load()} (other work on the machine skews every number)`);
} finally {
  await store.stop();
  await rm(dir, { recursive: true, force: true });
}
