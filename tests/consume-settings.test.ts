/**
 * `consume`'s `batch` and `retry` as a plugin passes them, its own numbers rather than the SDK's schemas' output:
 * refused as the sink is created, not a retry without pause against a receiver that is down. And `from: "head"`: the
 * head of the sink's first start, one that failed included.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createMetrics } from "../host/metrics.ts";
import { silentLogger } from "../host/logger.ts";
import { supervise } from "../host/supervise.ts";
import { consume } from "../sdk/consume.ts";
import { startTestHost, waitFor, type TestHost } from "../testing/index.ts";
import { addPods, contextOn, upTo } from "./plugins-fixtures.ts";

let th: TestHost;
beforeAll(async () => {
  th = await startTestHost();
});
afterAll(() => th.destroy());

const deliver = async () => {};

test("a retry or a batch no schema of the SDK gives is thrown at as the sink is created", () => {
  const ctx = contextOn(th, "own-numbers");
  // Was: taken as given; a retry of 0 ms called a failing deliver about 800 times a second.
  for (const retry of [
    { initialMs: 0, maxMs: 0 },
    { initialMs: 500, maxMs: 100 },
    { initialMs: Number.NaN, maxMs: 1 },
  ])
    expect(() => consume(ctx, { retry, deliver })).toThrow(/^consume: retry \{ initialMs: .*: initialMs is at least/);
  for (const batch of [
    { size: 0, lingerMs: 0 },
    { size: 1.5, lingerMs: 0 },
    { size: 10, lingerMs: -5 },
  ])
    expect(() => consume(ctx, { batch, deliver })).toThrow(/^consume: batch \{ size: .*: size is a whole number/);
  expect(() =>
    consume(ctx, { retry: { initialMs: 1, maxMs: 1 }, batch: { size: 1, lingerMs: 0 }, deliver }),
  ).not.toThrow();
});

test('a `from: "head"` sink whose first start failed delivers what was committed from that start on', async () => {
  addPods(th, 3);
  await waitFor(() => th.host.log.head() >= 3, 5_000, "the updates before the sink");
  const before = th.host.log.head();
  const ctx = contextOn(th, "from-head");
  let storeAway = true;
  const load = ctx.cursor.load;
  ctx.cursor.load = async () => {
    if (storeAway) throw new Error("the store is away");
    return load();
  };
  const delivered: number[] = [];
  const sink = supervise(
    () =>
      consume(ctx, {
        from: "head",
        deliver: async (envelopes) => void delivered.push(...envelopes.map((e) => e.version)),
      }),
    { name: "from-head", kind: "sink", logger: silentLogger, metrics: createMetrics() },
  );
  try {
    await sink.start();
    addPods(th, 2, 3);
    await waitFor(() => th.host.log.head() >= before + 2, 5_000, "the updates while the sink's start is retried");
    storeAway = false;
    await waitFor(() => ctx.saved() !== undefined, 5_000, "the sink's start that works");
    addPods(th, 1, 5);
    await waitFor(() => delivered.includes(before + 3), 5_000, "the update after it delivered");
    // Was: [before + 3]: the start that worked began at the head of its own moment, the two updates before it lost.
    expect(delivered).toEqual(upTo(3).map((n) => before + n));
  } finally {
    await sink.stop();
  }
});
