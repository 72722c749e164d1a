/**
 * A `consume` sink of one stream (the `jsonl` sink with `stream: node/n1`) down past retention while other streams
 * churn, on a real host's libSQL file restarted around the outage: it reads `all` to move its position, but what it
 * lost is what retention removed of its own stream. Nothing of it: its kept updates delivered, none counted lost.
 * Some of it: the versions up to its stream's horizon counted, what is kept after delivered.
 */
import { afterEach, expect, test } from "bun:test";
import { join } from "node:path";
import type { Envelope } from "../protocol/envelope.ts";
import { rawPod, sinkCaughtUp, startTestHost, tempDir, waitFor, type TestHost } from "../testing/index.ts";
import { consume } from "../sdk/consume.ts";
import type { Leadership } from "../sdk/contract.ts";
import { completeLines } from "./file-lines.ts";
import { contextOn, sinkMetric } from "./plugins-fixtures.ts";

let host: TestHost | undefined;
const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
  await host?.destroy();
  host = undefined;
});

const RETENTION = { maxUpdates: 5, interval: "20ms" };

/** A host on `dir` keeping 5 updates, with the `jsonl` sink of node/n1 writing to `file`, or without it (down). */
async function hostIn(dir: string, file?: string): Promise<TestHost> {
  const sinks = file ? [{ type: "jsonl", name: "n1", path: file, stream: "node/n1" }] : [];
  host = await startTestHost({ dir, sinks, retention: RETENTION });
  return host;
}

/** `count` changes of pod `name` on `node`, each a new label value: an update each. */
async function churn(th: TestHost, name: string, node: string, count: number): Promise<void> {
  for (let i = 0; i < count; i++)
    th.changes.apply("pods", "MODIFIED", rawPod(name, { node, labels: { round: `${i}` } }));
  await th.changes.flush();
}

async function lines(file: string): Promise<[string, number][]> {
  return (await completeLines(file)).map((line) => JSON.parse(line) as Envelope).map((e) => [e.name, e.version]);
}

/**
 * The sink delivers `a` (version 1) and stops with the host; while it is down, `down` runs and 20 changes of a pod on
 * node/n2 are committed and pruned; it then starts again.
 */
async function downPastRetention(down: (th: TestHost) => Promise<void>) {
  const dir = await tempDir();
  const file = join(dir, "n1.jsonl");
  let th = await hostIn(dir, file);
  th.changes.apply("pods", "ADDED", rawPod("a", { node: "n1" }));
  await th.changes.flush();
  await sinkCaughtUp(th, "n1");
  await th.stop();

  th = await hostIn(dir);
  await down(th);
  await churn(th, "busy", "n2", 20);
  const head = th.host.log.head();
  await waitFor(() => th.host.log.oldest() === head - 4, 5_000, "retention keeping the last 5");
  await th.stop();

  th = await hostIn(dir, file);
  await sinkCaughtUp(th, "n1");
  return { th, file, head, lost: sinkMetric(th, "counter", "kubemeta_sink_lost_versions_total", "n1") };
}

test("its stream's updates all kept: those behind the log's horizon delivered, nothing counted lost", async () => {
  const { th, file, head, lost } = await downPastRetention(async (th) => {
    th.changes.apply("pods", "ADDED", rawPod("b", { node: "n1" }));
    await th.changes.flush();
  });
  // b (version 2) is its object's state, kept though retention passed it; the 20 of node/n2 were never the sink's.
  expect(await lines(file)).toEqual([
    ["a", 1],
    ["b", 2],
  ]);
  expect(lost).toBe(0);
  expect(th.host.metrics.render()).toContain('kubemeta_reader_resets_total{stream="all"} 0');
  expect(head).toBe(22);
});

test("its own updates pruned too: lost through its stream's horizon, the kept ones after it delivered", async () => {
  const { th, file, lost } = await downPastRetention(async (th) => {
    th.changes.apply("pods", "ADDED", rawPod("c", { node: "n1" }));
    await churn(th, "c", "n1", 3);
    th.changes.apply("pods", "ADDED", rawPod("d", { node: "n1" }));
    await th.changes.flush();
  });
  // c: added at 2, changed at 3, 4, 5: 2 to 4 pruned, 5 its state; d at 6. node/n1's horizon: 4.
  expect(th.host.log.horizon("node/n1")).toBe(4);
  expect(await lines(file)).toEqual([
    ["a", 1],
    ["c", 5],
    ["d", 6],
  ]);
  // From its position (1) through its stream's horizon: 2, 3 and 4, all node/n1's here.
  expect(lost).toBe(3);
  expect(th.host.metrics.render()).toContain('kubemeta_reader_resets_total{stream="node"} 1');
});

test("a term cut before what follows its stream's loss is delivered: the loss is counted once", async () => {
  const th = await startTestHost({ retention: RETENTION });
  host = th;
  // node/n1: c at 1, changed at 2, 3, 4 (1 to 3 pruned, 4 its state), d at 5; then 20 of node/n2, the log keeping 5.
  th.changes.apply("pods", "ADDED", rawPod("c", { node: "n1" }));
  await churn(th, "c", "n1", 3);
  th.changes.apply("pods", "ADDED", rawPod("d", { node: "n1" }));
  await churn(th, "busy", "n2", 20);
  await waitFor(() => th.host.log.oldest() === 21, 5_000, "retention keeping the last 5");
  expect(th.host.log.horizon("node/n1")).toBe(3);

  // An ha replica's sink whose receiver is down through its first term: its position 0, all of node/n1 behind it.
  const first = new AbortController();
  let down = true;
  let terms = 0;
  const leadership: Leadership = {
    acquire: async () => {
      if (++terms === 1) return first.signal;
      // Asked once the first term's delivery is over: the receiver is back for the next.
      down = false;
      return new AbortController().signal;
    },
  };
  const ctx = { ...contextOn(th, "n1"), leadership };
  await ctx.cursor.save(0);
  let attempts = 0;
  const delivered: [string, number][] = [];
  const sink = consume(ctx, {
    stream: "node/n1",
    retry: { initialMs: 5, maxMs: 20 },
    deliver: async (envelopes) => {
      attempts++;
      if (down) throw new Error("the receiver is down");
      delivered.push(...envelopes.map((e): [string, number] => [e.name, e.version]));
    },
  });
  stops.push(() => sink.stop());
  await sink.start();
  const lost = () => sinkMetric(th, "counter", "kubemeta_sink_lost_versions_total", "n1");
  await waitFor(() => attempts >= 2, 5_000, "the first term's deliveries failing");
  expect(lost()).toBe(3);
  first.abort();
  await waitFor(() => delivered.length === 2, 5_000, "c and d delivered in the next term");
  expect(delivered).toEqual([
    ["c", 4],
    ["d", 5],
  ]);
  // Was: 6, the loss counted (and logged) again by the next term, which read it again from the cursor left before it.
  expect(lost()).toBe(3);
});
