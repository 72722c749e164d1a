/**
 * A `consume` sink (webhook, jsonl, a user's plugin) waiting on a read of the store when it stops: a sink behind the
 * log's in-memory tail reads the store in follow()'s scan, a sink of one stream behind retention reads its own stream
 * up to the log's horizon, and a leader (ha) loads its cursor at each term. A store that stopped answering (a remote
 * store, given up only at its own 10 s, the host's deadline for a plugin's stop) held the stop as long: every SIGTERM
 * `sink did not stop in time; abandoning it`. The stop now ends at once, or, for a sink that drains, once its drain has
 * waited 0.5 s on the read (it waited its whole 3 s), and so does `caughtUp`, the NATS sink's drain (it waited its
 * whole 2 s); the read goes on, its result dropped: nothing delivered, the cursor not moved.
 */
import { afterEach, expect, test } from "bun:test";
import { join } from "node:path";
import { createLog } from "../core/committed-log.ts";
import { Terms } from "../host/leadership.ts";
import { silentLogger } from "../host/logger.ts";
import { createMetrics } from "../host/metrics.ts";
import libsql from "../plugins/stores/libsql.ts";
import type { Sink, Store } from "../sdk/contract.ts";
import { consume } from "../sdk/consume.ts";
import { rawPod, startTestHost, waitFor, type TestHost } from "../testing/index.ts";
import { holdCalls, holdUpdateReads, type HeldReads } from "./held-state-reads.ts";
import { addPods, contextOn, type Logged } from "./plugins-fixtures.ts";

const DRAIN_GAVE_UP =
  "sink's drain gave up a read of the store left unanswered; what it did not deliver goes out after the next start, " +
  "from the saved cursor: nothing is lost";

/** Far below the read's hold (it is never let go before the stop is over), and below a drain's 3 s. */
const STOP_MS = 2_000;

let host: TestHost | undefined;
let reader: Store | undefined;
afterEach(async () => {
  await reader?.stop();
  reader = undefined;
  await host?.destroy();
  host = undefined;
});

/** A host of five pods, and a second store on its file to read them from. */
async function podsInAStore(): Promise<{ th: TestHost; store: Store }> {
  host = await startTestHost();
  addPods(host, 5);
  await host.changes.flush();
  const context = { name: "reader", cluster: "test", logger: silentLogger, metrics: createMetrics() };
  reader = libsql.create({ url: `file:${join(host.dir, "kubemeta.db")}` } as never, context);
  await reader.start();
  return { th: host, store: reader };
}

/** Stops the sink once its read is held; lets the read go after the stop, and waits for its late end. */
async function stopUnderRead(sink: Sink, reads: HeldReads): Promise<void> {
  try {
    await waitFor(() => reads.reading === 1, 5_000, "the sink's read of the store, held");
    let stopped = false;
    const stopping = sink.stop().then(() => (stopped = true));
    await waitFor(() => stopped, STOP_MS, "the sink's stop, its read held");
    await stopping;
  } finally {
    reads.release();
    await waitFor(() => reads.reading === 0, 5_000, "the held read's end");
  }
  // What the late answer would set off (a batch, a save) runs within a turn of the event loop.
  await new Promise((resolve) => setImmediate(resolve));
}

/** A sink behind the in-memory tail of a log over the pods' store, its reads of the store held; what it delivers. */
async function sinkBehindTheTail() {
  const { th, store } = await podsInAStore();
  const reads = holdCalls(store.readUpdates);
  store.readUpdates = reads.read;
  const state = { head: th.host.log.head(), oldest: th.host.log.oldest() };
  // An empty tail: every read of the log goes to the store, as for a sink 10,000 updates behind.
  const log = createLog({
    store,
    epoch: th.host.epoch,
    ...state,
    logger: silentLogger,
    metrics: createMetrics(),
    whole: true,
  });
  const logged: Logged[] = [];
  const ctx = { ...contextOn(th, "behind", logged), log };
  const delivered: number[] = [];
  const sink = consume(ctx, {
    batch: { size: 100, lingerMs: 0 },
    deliver: async (envelopes) => void delivered.push(...envelopes.map((e) => e.version)),
  });
  await sink.start();
  const gaveUp = () => logged.filter((line) => line.msg === DRAIN_GAVE_UP);
  return { sink, reads, delivered, saved: () => ctx.saved(), gaveUp };
}

test("a sink behind the in-memory tail, its read of the store held at a stop, stops at once", async () => {
  const { sink, reads, delivered, saved, gaveUp } = await sinkBehindTheTail();
  await stopUnderRead(sink, reads);
  expect(delivered).toEqual([]);
  expect(saved()).toBe(0);
  // Said once, at warn: the drain's one read given up, after its 0.5 s.
  expect(gaveUp()).toMatchObject([{ level: "warn", delivered: 0, head: 5 }]);
  expect(gaveUp()[0]!.waitedMs).toBeGreaterThanOrEqual(500);
}, 30_000);

test("caughtUp (the NATS sink's 2 s drain) gives up once it has waited 0.5 s on a held read", async () => {
  const { sink, reads, delivered, gaveUp } = await sinkBehindTheTail();
  try {
    await waitFor(() => reads.reading === 1, 5_000, "the sink's read of the store, held");
    const started = Date.now();
    expect(await sink.caughtUp(2_000)).toBe(false);
    expect(Date.now() - started).toBeLessThan(1_200);
    expect(gaveUp()).toMatchObject([{ level: "warn" }]);
    await sink.stop();
  } finally {
    reads.release();
    await waitFor(() => reads.reading === 0, 5_000, "the held read's end");
  }
  expect(delivered).toEqual([]);
}, 30_000);

test("a leader (ha) whose cursor's load is held at a stop stops at once, delivering nothing", async () => {
  const { th, store } = await podsInAStore();
  const reads = holdCalls((name: string) => store.cursor(name));
  const terms = new Terms();
  terms.begin();
  const delivered: number[] = [];
  const sink = consume(
    {
      ...contextOn(th, "leader"),
      cursor: { load: () => reads.read("sink/leader"), save: (version) => store.saveCursor("sink/leader", version) },
      leadership: terms,
    },
    { deliver: async (envelopes) => void delivered.push(...envelopes.map((e) => e.version)) },
  );
  await sink.start();
  await stopUnderRead(sink, reads);
  expect(delivered).toEqual([]);
  expect(await store.cursor("sink/leader")).toBeUndefined();
}, 30_000);

test("a sink of one stream behind retention, its read of its own stream held at a stop, stops at once", async () => {
  host = await startTestHost({ retention: { maxUpdates: 5, interval: "20ms" } });
  const th = host;
  th.changes.apply("pods", "ADDED", rawPod("a", { node: "n1" }));
  addPods(th, 20);
  await th.changes.flush();
  const head = th.host.log.head();
  await waitFor(() => th.host.log.oldest() === head - 4, 5_000, "retention keeping the last 5");
  // From version 0, its own stream's updates read up to the log's horizon (sdk/batches-behind.ts).
  const reads = holdUpdateReads(th.host.log, 0);
  const saves: number[] = [];
  const delivered: number[] = [];
  const sink = consume(
    { ...contextOn(th, "n1"), cursor: { load: async () => 0, save: async (version) => void saves.push(version) } },
    {
      stream: "node/n1",
      deliver: async (envelopes) => void delivered.push(...envelopes.map((e) => e.version)),
    },
  );
  await sink.start();
  await stopUnderRead(sink, reads);
  expect(delivered).toEqual([]);
  expect(saves).toEqual([]);
}, 30_000);
