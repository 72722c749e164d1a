/**
 * SSE RESET snapshots under subscribers that take nothing: ten of them on ~20,000 real-size objects add a small
 * fraction of one state to the heap, not ten states (each was read whole and held until taken), and each is closed
 * once it has taken nothing for two heartbeats, so the store's read it held goes to the next.
 *
 * The subscribers are curl processes stopped with SIGSTOP, as in sse-slow.test.ts: consumers on other machines
 * that stop reading, whose bytes pile up in kernel buffers (not this process's heap) and then in ours.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import type { KubeObject } from "../sdk/model.ts";
import { makePod } from "../simulator/pods.ts";
import { makeNode, nodeName } from "../simulator/nodes.ts";
import { rawPod, startTestHost, waitFor, type TestHost } from "../testing/index.ts";

const SUBSCRIBERS = 10;
const NODES = 100;
const PODS = 20_000;
const MiB = 2 ** 20;

let th: TestHost;
const curls: Subprocess[] = [];
beforeAll(async () => {
  th = await startTestHost({ sinks: [{ type: "sse", heartbeat: "1s" }] });
  for (let n = 0; n < NODES; n++) await th.changes.apply("nodes", "ADDED", withUid(makeNode(nodeName(n)), `n${n}`));
  for (let i = 0; i < PODS; i++) {
    const pod = makePod({ name: `web-${i}`, namespace: `team-${i % 40}`, node: nodeName(i % NODES) });
    await th.changes.apply("pods", "ADDED", pod);
  }
  await th.changes.flush();
}, 120_000);
afterAll(async () => {
  for (const curl of curls) curl.kill("SIGKILL");
  await th.destroy();
});

/** The simulator's store gives nodes their uid; the core drops an object without one. */
function withUid(object: KubeObject, uid: string): KubeObject {
  return { ...object, metadata: { ...object.metadata, uid, resourceVersion: "1" } };
}

function heapUsed(): number {
  Bun.gc(true);
  return process.memoryUsage().heapUsed;
}

/**
 * What one whole state costs the heap: what each stuck subscriber held before snapshots were paged. Measured after
 * the subscribers, in a frame of its own: the collector scans the stack conservatively, so a state measured first
 * could outlive its last use and inflate the baseline.
 */
async function heapOfOneState(): Promise<number> {
  const before = heapUsed();
  const state = await th.host.log.snapshot({});
  const bytes = heapUsed() - before;
  expect(state.objects).toHaveLength(NODES + PODS);
  return bytes;
}

test("ten subscribers that read nothing hold pages, not states; stuck ones are closed and free the read", async () => {
  const overflows = () => th.host.metrics.counter("kubemeta_sse_overflows_total", "").get();
  const base = heapUsed();
  const baseRss = process.memoryUsage().rss;
  for (let i = 0; i < SUBSCRIBERS; i++) {
    const file = `${th.dir}/stuck-${i}.sse`;
    // At 1 MB/s until stopped: read at full speed while the test waits to see RESET, a curl could take its whole
    // snapshot first (the kernel grows a fast reader's receive buffer up to tcp_rmem's 32 MiB here) and never stall.
    const curl = Bun.spawn(["curl", "-sN", "--limit-rate", "1M", "-o", file, `${th.url}/v1/watch?stream=all`], {
      stdout: "ignore",
      stderr: "ignore",
    });
    curls.push(curl);
    await waitFor(
      async () =>
        (
          await Bun.file(file)
            .text()
            .catch(() => "")
        ).includes("RESET"),
      10_000,
      "RESET",
    );
    curl.kill("SIGSTOP");
  }

  // Two read at a time; each stalls, is closed two heartbeats later, and hands its read to the next. The heap is
  // sampled once a second (a stuck reader holds its page for two heartbeats): a full collection every poll kept this
  // thread collecting, and the snapshots waited behind it (past a minute on a loaded machine).
  let peak = 0;
  let peakRss = 0;
  let sampledAt = 0;
  await waitFor(
    () => {
      if (performance.now() - sampledAt >= 1_000) {
        peak = Math.max(peak, heapUsed() - base);
        peakRss = Math.max(peakRss, process.memoryUsage().rss - baseRss);
        sampledAt = performance.now();
      }
      return overflows() >= SUBSCRIBERS;
    },
    120_000,
    "every stuck subscriber to be closed",
  );
  const stateBytes = await heapOfOneState();
  const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;
  console.log(
    `state ${mib(stateBytes)} of heap; ${SUBSCRIBERS} stuck subscribers added at most ${mib(peak)} of heap, ` +
      `${mib(peakRss)} of RSS (${SUBSCRIBERS} states: ${mib(SUBSCRIBERS * stateBytes)})`,
  );
  expect(stateBytes).toBeGreaterThan(20 * MiB);
  // For each of the two readers a page (SNAPSHOT_PAGE objects) read, its events and the 1 MiB buffer: 11 MiB here, an
  // order of magnitude under what the ten held when each held its state (and RSS with them).
  expect(peak).toBeLessThan((SUBSCRIBERS * stateBytes) / 5);
  expect(peakRss).toBeLessThan((SUBSCRIBERS * stateBytes) / 4);

  // None got to SYNCED: closed mid-snapshot, so a reconnect starts over.
  for (const curl of curls) curl.kill("SIGCONT");
  await Promise.all(curls.map((curl) => curl.exited));
  for (let i = 0; i < SUBSCRIBERS; i++) {
    const text = await Bun.file(`${th.dir}/stuck-${i}.sse`).text();
    expect(text).toContain("event: ADDED");
    expect(text).not.toContain("SYNCED");
  }

  // The store's reads are all back: a commit, a paged snapshot and a new subscriber go through.
  await th.changes.apply("pods", "ADDED", rawPod("after", { node: nodeName(0) }));
  await th.changes.flush();
  const head = th.host.log.head();
  const pages = await Array.fromAsync(th.host.log.snapshotPages({ stream: `node/${nodeName(0)}` }, 100));
  expect(pages.every((page) => page.version === head)).toBe(true);
  const response = await fetch(`${th.url}/v1/watch?stream=node/${encodeURIComponent(nodeName(0))}`);
  let text = "";
  for await (const chunk of response.body!) {
    text += new TextDecoder().decode(chunk);
    if (text.includes(`id: ${th.host.log.epoch}:${head}\nevent: SYNCED`)) break;
  }
  expect(text).toContain('"name":"after"');
}, 180_000);
