/**
 * `consume` (core/consume.ts) on a real host's log: a deliver that throws is retried and
 * counted, in order; one that hangs is reported and stalls only its own sink; a sink
 * behind retention goes on from the oldest retained update and counts what it lost.
 */
import { afterEach, expect, test } from "bun:test";
import { consume, type ConsumeOptions } from "../sdk/consume.ts";
import type { Sink } from "../sdk/contract.ts";
import { rawPod, startTestHost, waitFor, type TestHost } from "../testing/index.ts";
import { addPods, contextOn, sinkMetric, upTo, type Logged } from "./plugins-fixtures.ts";

let host: TestHost | undefined;
const running: Sink[] = [];
afterEach(async () => {
  for (const sink of running.splice(0)) await sink.stop();
  await host?.destroy();
  host = undefined;
});

async function start(name: string, options: ConsumeOptions, logged: Logged[] = []) {
  const ctx = contextOn(host!, name, logged);
  const sink = consume(ctx, { retry: { initialMs: 5, maxMs: 20 }, ...options });
  running.push(sink);
  await sink.start();
  return { sink, ctx };
}

test("a deliver that throws is logged, counted and retried with the same batch; nothing is skipped or reordered", async () => {
  host = await startTestHost();
  const logged: Logged[] = [];
  const delivered: number[] = [];
  let throwsLeft = 2;
  const { ctx } = await start(
    "flaky",
    {
      async deliver(updates) {
        if (throwsLeft-- > 0) throw new Error("receiver exploded");
        delivered.push(...updates.map((u) => u.version));
      },
    },
    logged,
  );
  addPods(host, 5);
  await waitFor(() => delivered.length === 5, 5_000, "every update after two failures");
  expect(delivered).toEqual(upTo(5));
  expect(sinkMetric(host, "counter", "kubemeta_sink_delivery_failures_total", "flaky", { step: "deliver" })).toBe(2);
  const failures = logged.filter((line) => line.msg === "sink failed to deliver a batch; retrying it");
  expect(failures.map((line) => [line.level, line.attempt, line.error])).toEqual([
    ["error", 1, { name: "Error", message: "receiver exploded" }],
    ["error", 2, { name: "Error", message: "receiver exploded" }],
  ]);
  await waitFor(() => ctx.saved() === 5, 5_000, "the cursor after the last batch");
});

test("a deliver that keeps failing holds its cursor, and stop ends the retries at once", async () => {
  host = await startTestHost();
  let attempts = 0;
  const { sink, ctx } = await start("down", {
    retry: { initialMs: 60_000, maxMs: 60_000 },
    async deliver() {
      attempts++;
      throw new Error("still down");
    },
  });
  addPods(host, 3);
  await waitFor(() => attempts >= 1, 5_000, "a first attempt");
  const began = performance.now();
  await sink.stop();
  expect(performance.now() - began).toBeLessThan(500);
  expect(ctx.saved()).toBe(0); // its starting point, saved at its first start: nothing delivered
});

test("a deliver that hangs is reported as stalled, delays no other sink, and stop gives up on it", async () => {
  host = await startTestHost();
  const logged: Logged[] = [];
  const healthy: number[] = [];
  const { sink: stuck, ctx } = await start("stuck", { stallAfterMs: 50, stopWaitMs: 100, deliver: () => new Promise(() => {}) }, logged);
  await start("healthy", { deliver: async (updates) => void healthy.push(...updates.map((u) => u.version)) });
  addPods(host, 10);
  await waitFor(() => healthy.length === 10, 5_000, "the healthy sink's updates");
  await waitFor(() => sinkMetric(host!, "gauge", "kubemeta_sink_stalled", "stuck") === 1, 5_000, "the stall gauge");
  expect(logged.some((line) => line.level === "warn" && line.msg === "sink has held one batch too long; it delays only itself")).toBe(true);
  expect(sinkMetric(host, "gauge", "kubemeta_sink_stalled", "healthy")).toBe(0);
  await waitFor(() => sinkMetric(host!, "gauge", "kubemeta_sink_lag_versions", "stuck") === 10, 5_000, "the stuck sink's lag");

  const began = performance.now();
  await stuck.stop();
  expect(performance.now() - began).toBeLessThan(1_000);
  expect(ctx.saved()).toBe(0);
  expect(sinkMetric(host, "gauge", "kubemeta_sink_stalled", "stuck")).toBe(0);
});

test("a sink behind retention goes on from the oldest retained update, and counts the versions it lost", async () => {
  host = await startTestHost({ retention: { maxUpdates: 5, interval: "20ms" } });
  const logged: Logged[] = [];
  const delivered: number[] = [];
  const gate = Promise.withResolvers<void>();
  await start(
    "late",
    {
      async deliver(updates) {
        await gate.promise;
        delivered.push(...updates.map((u) => u.version));
      },
    },
    logged,
  );
  addPods(host, 1);
  await waitFor(() => host!.host.log.head() === 1, 5_000, "the first update");
  // Several commits, so that the sink, held on its first batch, has read at most the next one ahead.
  for (let round = 0; round < 3; round++) {
    addPods(host, 10, 1 + round * 10);
    await host.changes.flush();
  }
  await waitFor(() => host!.host.log.oldest() >= 25, 5_000, "retention pruning the log");
  gate.resolve();
  await waitFor(() => delivered.at(-1) === 31, 5_000, "the last update");

  const lost = sinkMetric(host, "counter", "kubemeta_sink_lost_versions_total", "late");
  expect(lost).toBeGreaterThan(0);
  expect(delivered.length + lost).toBe(31);
  expect([...delivered].sort((a, b) => a - b)).toEqual(delivered);
  expect(delivered.slice(-5)).toEqual([27, 28, 29, 30, 31]);
  expect(logged.some((line) => line.level === "error" && line.msg.includes("fell behind retention") && line.lost === lost)).toBe(true);
});

test("filter and stream select what deliver gets; the cursor and the lag move past the rest", async () => {
  host = await startTestHost();
  const batches: string[][] = [];
  const { ctx } = await start("filtered", {
    stream: "node/n1",
    filter: (update) => update.name !== "skip-me",
    batchSize: 2,
    deliver: async (updates) => void batches.push(updates.map((u) => u.name)),
  });
  addPods(host, 3);
  host.changes.apply("pods", "ADDED", rawPod("skip-me", { node: "n1" }));
  host.changes.apply("pods", "ADDED", rawPod("elsewhere", { node: "n2" }));
  await host.changes.flush();
  await waitFor(() => batches.flat().length === 3 && sinkMetric(host!, "gauge", "kubemeta_sink_lag_versions", "filtered") === 0, 5_000, "lag 0");
  expect(batches.flat()).toEqual(["web-0", "web-1", "web-2"]);
  expect(batches.every((batch) => batch.length <= 2)).toBe(true);
  await running.pop()!.stop();
  expect(ctx.saved()).toBe(5);
});
