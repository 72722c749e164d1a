/**
 * `consume` (sdk/consume.ts) at its edges, on a real host's log: caughtUp (what a drain waits for), a replica that
 * does not lead or is unsure of its Lease (ha), and stop, which drains what is committed unless deliveries fail.
 */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { consume } from "../sdk/consume.ts";
import { Terms } from "../host/leadership.ts";
import { until, TIMED_OUT } from "../protocol/retry.ts";
import { startTestHost, tempDir, waitFor, type TestHost } from "../testing/index.ts";
import { startHranaServer } from "./hrana-server.ts";
import { addPods, consumeSinks, contextOn, sinkMetric, upTo, type Logged } from "./plugins-fixtures.ts";

let host: TestHost | undefined;
const sinks = consumeSinks(async () => {
  await host?.destroy();
  host = undefined;
});

test("caughtUp resolves once what was committed is delivered, or says it was not in time", async () => {
  host = await startTestHost();
  const gate = Promise.withResolvers<void>();
  const { sink } = await sinks.start(host!, "slow", { deliver: () => gate.promise });
  addPods(host, 3);
  await host.changes.flush();
  expect(await sink.caughtUp(50)).toBe(false);
  gate.resolve();
  expect(await sink.caughtUp(5_000)).toBe(true);
});

test("caughtUp on a replica that does not lead (ha) is true at once: the leader delivers, not it", async () => {
  host = await startTestHost();
  const follower = {
    ...contextOn(host, "follower", []),
    // Never leads: waits until the sink stops.
    leadership: {
      acquire: (signal: AbortSignal) =>
        new Promise<AbortSignal>((_, reject) => signal.addEventListener("abort", () => reject(signal.reason))),
    },
  };
  const sink = consume(follower, { deliver: async () => {} });
  sinks.running.push(sink);
  await sink.start();
  addPods(host, 3);
  await host.changes.flush();
  expect(await sink.caughtUp(5_000)).toBe(true);
});

test("with ha, a leader unsure of its Lease (paused past it) delivers nothing until it is sure again", async () => {
  host = await startTestHost();
  let held = false;
  const terms = new Terms();
  terms.begin(() => held);
  const delivered: number[] = [];
  const sink = consume(
    { ...contextOn(host, "unsure", []), leadership: terms },
    {
      batch: { size: 100, lingerMs: 0 },
      deliver: async (envelopes) => void delivered.push(...envelopes.map((e) => e.version)),
    },
  );
  sinks.running.push(sink);
  await sink.start();
  addPods(host, 3);
  await host.changes.flush();
  // Its term's signal has not aborted: another replica may be delivering later versions already.
  expect(await sink.caughtUp(300)).toBe(false);
  expect(delivered).toEqual([]);
  held = true;
  await waitFor(() => delivered.length === 3, 5_000, "the batch once the Lease is renewed");
  expect(delivered).toEqual(upTo(3));
});

test("stop drains: what is committed is delivered first, nothing lingering, and the cursor saved", async () => {
  host = await startTestHost();
  const delivered: number[] = [];
  const { sink, ctx } = await sinks.start(host!, "draining", {
    batch: { size: 100, lingerMs: 60_000 },
    deliver: async (envelopes) => void delivered.push(...envelopes.map((e) => e.version)),
  });
  addPods(host, 3);
  await host.changes.flush();
  const began = performance.now();
  await sink.stop();
  expect(performance.now() - began).toBeLessThan(2_000);
  expect(delivered).toEqual(upTo(3));
  expect(ctx.saved()).toBe(3);
});

test("stop drains what was committed just before it, though the sink had waited idle for the log a while", async () => {
  host = await startTestHost();
  const delivered: number[] = [];
  const logged: Logged[] = [];
  const { sink, ctx } = await sinks.start(
    host!,
    "idle",
    {
      batch: { size: 100, lingerMs: 0 },
      deliver: async (envelopes) => void delivered.push(...envelopes.map((e) => e.version)),
    },
    logged,
  );
  addPods(host, 1);
  await host.changes.flush();
  await waitFor(() => delivered.length === 1, 5_000, "the first update delivered");
  // Caught up, its loop waits for the log's next update: no read of the store is held, however long it waits.
  await Bun.sleep(700);
  addPods(host, 2, 1);
  await host.changes.flush();
  await sink.stop();
  expect(delivered).toEqual(upTo(3));
  expect(ctx.saved()).toBe(3);
  // Its wait for the log was no read of the store: no drain's give-up said.
  expect(logged.filter((line) => line.msg.startsWith("sink's drain gave up"))).toEqual([]);
});

test("stop does not drain a sink whose deliveries fail, nor one given drainMs 0", async () => {
  host = await startTestHost();
  const { sink: failing } = await sinks.start(host!, "failing", {
    retry: { initialMs: 60_000, maxMs: 60_000 },
    deliver: async () => {
      throw new Error("receiver down");
    },
  });
  const delivered: number[] = [];
  const { sink: hasty, ctx } = await sinks.start(host!, "hasty", {
    drainMs: 0,
    batch: { size: 100, lingerMs: 60_000 },
    deliver: async (envelopes) => void delivered.push(...envelopes.map((e) => e.version)),
  });
  addPods(host, 3);
  await host.changes.flush();
  await waitFor(() =>
    sinkMetric(host!, "counter", "kubemeta_sink_delivery_failures_total", "failing", { step: "deliver" }),
  );
  const began = performance.now();
  await Promise.all([failing.stop(), hasty.stop()]);
  expect(performance.now() - began).toBeLessThan(1_000);
  expect(delivered).toEqual([]);
  expect(ctx.saved()).toBe(0);
});

test("stallAfterMs and stopWaitMs of Infinity (never: past a timer's range) report no stall; stop waits", async () => {
  host = await startTestHost();
  const logged: Logged[] = [];
  const gate = Promise.withResolvers<void>();
  const delivered: number[] = [];
  let delivering = false;
  const { sink, ctx } = await sinks.start(
    host!,
    "patient",
    {
      stallAfterMs: Infinity,
      stopWaitMs: Infinity,
      drainMs: 0,
      async deliver(envelopes) {
        delivering = true;
        await gate.promise;
        delivered.push(...envelopes.map((e) => e.version));
      },
    },
    logged,
  );
  addPods(host, 3);
  await waitFor(() => delivering, 5_000, "the batch in delivery");
  // Before the fix the timers fired at once: the batch reported stalled, and stop gave up on it.
  expect(sinkMetric(host, "gauge", "kubemeta_sink_stalled", "patient")).toBe(0);
  expect(logged.filter((line) => line.msg.startsWith("sink has held one batch"))).toEqual([]);
  const stopped = sink.stop();
  expect(await until(stopped, Date.now() + 200)).toBe(TIMED_OUT);
  gate.resolve();
  await stopped;
  expect(delivered).toEqual(upTo(3));
  expect(ctx.saved()).toBe(3);
});

test("stop does not drain a sink whose filter throws: its reads make no progress to wait for", async () => {
  host = await startTestHost();
  const { sink } = await sinks.start(host!, "picky", {
    filter: () => {
      throw new Error("the filter's own bug");
    },
    deliver: async () => {},
  });
  addPods(host, 3);
  await host.changes.flush();
  await waitFor(() =>
    sinkMetric(host!, "counter", "kubemeta_sink_delivery_failures_total", "picky", { step: "filter" }),
  );
  const began = performance.now();
  await sink.stop();
  // Before the fix stop waited out drainMs, 3 s, for updates the filter would never pass.
  expect(performance.now() - began).toBeLessThan(1_000);
});

test("stop does not drain a sink whose reads of the log fail (its store away)", async () => {
  const dir = await tempDir();
  const store = startHranaServer({ path: join(dir, "store.db") });
  try {
    const extra = { store: { type: "libsql", url: store.url } };
    host = await startTestHost({ dir, extra });
    addPods(host, 3);
    await host.changes.flush();
    await host.stop();
    // Started again, its log's in-memory tail is empty: the sink reads the store, which goes away.
    host = await startTestHost({ dir, extra });
    await store.stop();
    const { sink } = await sinks.start(host!, "unread", { deliver: async () => {} });
    await waitFor(() =>
      sinkMetric(host!, "counter", "kubemeta_sink_delivery_failures_total", "unread", { step: "read" }),
    );
    const began = performance.now();
    await sink.stop();
    expect(performance.now() - began).toBeLessThan(1_000);
  } finally {
    await store.stop();
  }
});
