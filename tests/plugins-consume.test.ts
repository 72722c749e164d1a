/**
 * `consume` (sdk/consume.ts) on a real host's log: a deliver that throws is retried and
 * counted, in order; one that hangs is reported and stalls only its own sink; a sink
 * behind retention goes on from the oldest retained update (or the head) and counts what
 * it lost; deliver gets envelopes, once per stream with fanOut; the batch and retry
 * settings come from the standard config keys.
 */
import { expect, test } from "bun:test";
import * as v from "valibot";
import { consume, type ConsumeOptions } from "../sdk/consume.ts";
import type { Envelope } from "../protocol/envelope.ts";
import { batchSchema, retrySchema, streamName } from "../sdk/schema.ts";
import { rawPod, startTestHost, waitFor, type TestHost } from "../testing/index.ts";
import { addPods, consumeSinks, contextOn, sinkMetric, upTo, type Logged } from "./plugins-fixtures.ts";

let host: TestHost | undefined;
const sinks = consumeSinks(async () => {
  await host?.destroy();
  host = undefined;
});

test(
  "a deliver that throws is logged, counted and retried with the same batch; " + "nothing is skipped or reordered",
  async () => {
    host = await startTestHost();
    const logged: Logged[] = [];
    const delivered: number[] = [];
    let throwsLeft = 2;
    const { ctx } = await sinks.start(
      host!,
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
    // The second failure is a debug line: a run of failures is said once, and once over (tests/consume-log.test.ts).
    const failures = logged.filter((line) => line.msg === "sink failed to deliver a batch; retrying it");
    expect(failures.map((line) => [line.level, line.attempt, line.error])).toEqual([
      ["error", 1, { name: "Error", message: "receiver exploded" }],
    ]);
    await waitFor(() => logged.find((line) => line.msg === "sink delivery works again"), 5_000, "the recovery");
    await waitFor(() => ctx.saved() === 5, 5_000, "the cursor after the last batch");
  },
);

test("transient() picks a failure's level; one that throws leaves it an error and the delivery going", async () => {
  host = await startTestHost();
  const logged: Logged[] = [];
  const delivered: number[] = [];
  // Each batch's first attempt fails, its second works: three runs of failures, each said at its own level.
  const failures = ["expected now and then", "", "not expected", "", "judged by a transient() that throws"];
  await sinks.start(
    host!,
    "judged",
    {
      batch: { size: 1, lingerMs: 0 },
      async deliver(updates) {
        const failure = failures.shift();
        if (failure) throw new Error(failure);
        delivered.push(...updates.map((u) => u.version));
      },
      transient(error) {
        const message = (error as Error).message;
        if (message.includes("throws")) throw new Error("a plugin's own bug");
        return message.includes("now and then");
      },
    },
    logged,
  );
  addPods(host, 3);
  const recovered = () => logged.filter((line) => line.msg === "sink delivery works again");
  await waitFor(() => recovered().length === 3, 5_000, "every update after three failures, each run over");
  expect(delivered).toEqual(upTo(3));
  const retried = logged.filter((line) => line.msg === "sink failed to deliver a batch; retrying it");
  expect(retried.map((line) => [line.level, (line.error as { message: string }).message])).toEqual([
    ["warn", "expected now and then"],
    ["error", "not expected"],
    ["error", "judged by a transient() that throws"],
  ]);
});

test("cursor saves failing a while (a store away): one error, warnings once a minute, a line when back", async () => {
  host = await startTestHost();
  const logged: Logged[] = [];
  const ctx = contextOn(host, "saving", logged);
  let away = false;
  const cursor = {
    load: ctx.cursor.load,
    save: async (version: number) => {
      if (away) throw new Error("store away");
      await ctx.cursor.save(version);
    },
  };
  const sink = consume({ ...ctx, cursor }, { batch: { size: 1, lingerMs: 0 }, deliver: async () => {} });
  sinks.running.push(sink);
  await sink.start();
  away = true;
  addPods(host, 3);
  const saveFailures = () =>
    sinkMetric(host!, "counter", "kubemeta_sink_delivery_failures_total", "saving", {
      step: "save",
    });
  await waitFor(() => saveFailures() === 3, 5_000, "a failed save after each of three batches");
  away = false;
  addPods(host, 1, 3);
  await waitFor(() => ctx.saved() === 4, 5_000, "the cursor saved again");
  const said = (msg: string) => logged.filter((line) => line.msg === msg);
  expect(said("saving the sink's cursor failed").map((line) => [line.level, line.version])).toEqual([["error", 1]]);
  expect(said("saving the sink's cursor works again")).toEqual([
    expect.objectContaining({ level: "info", failedAttempts: 3, downMs: expect.any(Number) }),
  ]);
});

test("a deliver that keeps failing holds its cursor, and stop ends the retries at once", async () => {
  host = await startTestHost();
  let attempts = 0;
  const { sink, ctx } = await sinks.start(host!, "down", {
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
  const { sink: stuck, ctx } = await sinks.start(
    host!,
    "stuck",
    { stallAfterMs: 50, stopWaitMs: 100, deliver: () => new Promise(() => {}) },
    logged,
  );
  await sinks.start(host!, "healthy", {
    deliver: async (updates) => void healthy.push(...updates.map((u) => u.version)),
  });
  addPods(host, 10);
  await waitFor(() => healthy.length === 10, 5_000, "the healthy sink's updates");
  await waitFor(() => sinkMetric(host!, "gauge", "kubemeta_sink_stalled", "stuck") === 1, 5_000, "the stall gauge");
  expect(
    logged.some(
      (line) => line.level === "warn" && line.msg === "sink has held one batch too long; it delays only itself",
    ),
  ).toBe(true);
  expect(sinkMetric(host, "gauge", "kubemeta_sink_stalled", "healthy")).toBe(0);
  await waitFor(() => sinkMetric(host!, "gauge", "kubemeta_sink_lag_versions", "stuck") === 10, 5_000, "stuck's lag");

  const began = performance.now();
  await stuck.stop();
  expect(performance.now() - began).toBeLessThan(1_000);
  expect(ctx.saved()).toBe(0);
  expect(sinkMetric(host, "gauge", "kubemeta_sink_stalled", "stuck")).toBe(0);
  // Said, so that a stop that took stopWaitMs longer is not a silence in the log.
  const gaveUp = "sink gave up on its batch in delivery to stop; the batch is delivered again at the next start";
  expect(logged.filter((line) => line.msg === gaveUp)).toEqual([expect.objectContaining({ level: "warn", first: 1 })]);
});

/**
 * A sink held on its first batch while 30 more updates are committed and retention keeps
 * 5 of them; `release` lets its delivery go on.
 */
async function heldBehindRetention(options: Partial<ConsumeOptions>, logged: Logged[]) {
  const th = await startTestHost({ retention: { maxUpdates: 5, interval: "20ms" } });
  host = th;
  const delivered: number[] = [];
  const gate = Promise.withResolvers<void>();
  await sinks.start(
    host!,
    "late",
    {
      ...options,
      async deliver(envelopes) {
        await gate.promise;
        delivered.push(...envelopes.map((e) => e.version));
      },
    },
    logged,
  );
  addPods(th, 1);
  await waitFor(() => th.host.log.head() === 1, 5_000, "the first update");
  // Several commits, so that the sink, held on its first batch, has read at most the next one ahead.
  for (let round = 0; round < 3; round++) {
    addPods(th, 10, 1 + round * 10);
    await th.changes.flush();
  }
  await waitFor(() => th.host.log.oldest() >= 25, 5_000, "retention pruning the log");
  return { th, delivered, release: () => gate.resolve() };
}

test("a sink behind retention goes on from the oldest retained update, and counts the versions it lost", async () => {
  const logged: Logged[] = [];
  const { th, delivered, release } = await heldBehindRetention({}, logged);
  release();
  await waitFor(() => delivered.at(-1) === 31, 5_000, "the last update");

  const lost = sinkMetric(th, "counter", "kubemeta_sink_lost_versions_total", "late");
  expect(lost).toBeGreaterThan(0);
  expect(delivered.length + lost).toBe(31);
  expect([...delivered].sort((a, b) => a - b)).toEqual(delivered);
  expect(delivered.slice(-5)).toEqual([27, 28, 29, 30, 31]);
  expect(
    logged.some((line) => line.level === "error" && line.msg.includes("fell behind retention") && line.lost === lost),
  ).toBe(true);
});

test("behindRetention: head goes on from the head instead, and counts everything it skipped as lost", async () => {
  const { th, delivered, release } = await heldBehindRetention({ behindRetention: "head" }, []);
  release();
  await waitFor(() => sinkMetric(th, "counter", "kubemeta_sink_lost_versions_total", "late") > 0, 5_000, "the jump");
  addPods(th, 1, 100);
  await waitFor(() => delivered.at(-1) === 32, 5_000, "the next update");
  expect(delivered.filter((version) => version > 1 && version < 32).length).toBeLessThanOrEqual(10);
  expect(delivered.length - 1 + sinkMetric(th, "counter", "kubemeta_sink_lost_versions_total", "late")).toBe(31);
});

test("filter and stream select what deliver gets; the cursor and the lag move past the rest", async () => {
  host = await startTestHost();
  const batches: string[][] = [];
  const { ctx } = await sinks.start(host!, "filtered", {
    stream: "node/n1",
    filter: (envelope) => envelope.name !== "skip-me",
    batch: { size: 2, lingerMs: 0 },
    deliver: async (envelopes) => void batches.push(envelopes.map((e) => e.name)),
  });
  addPods(host, 3);
  host.changes.apply("pods", "ADDED", rawPod("skip-me", { node: "n1" }));
  host.changes.apply("pods", "ADDED", rawPod("elsewhere", { node: "n2" }));
  await host.changes.flush();
  await waitFor(
    () => batches.flat().length === 3 && sinkMetric(host!, "gauge", "kubemeta_sink_lag_versions", "filtered") === 0,
    5_000,
    "lag 0",
  );
  expect(batches.flat()).toEqual(["web-0", "web-1", "web-2"]);
  expect(batches.every((batch) => batch.length <= 2)).toBe(true);
  await sinks.running.pop()!.stop();
  expect(ctx.saved()).toBe(5);
});

test("a filter that throws is said and counted as the sink's own fault, retried; nothing skipped past it", async () => {
  host = await startTestHost();
  const logged: Logged[] = [];
  const delivered: string[] = [];
  let throwsLeft = 2;
  await sinks.start(
    host!,
    "picky",
    {
      filter: (envelope) => {
        if (envelope.name === "web-1" && throwsLeft-- > 0) throw new Error("no such label");
        return true;
      },
      deliver: async (envelopes) => void delivered.push(...envelopes.map((e) => e.name)),
    },
    logged,
  );
  addPods(host, 3);
  await waitFor(() => delivered.length === 3, 10_000, "every pod delivered");
  expect(delivered).toEqual(["web-0", "web-1", "web-2"]);
  expect(sinkMetric(host!, "counter", "kubemeta_sink_delivery_failures_total", "picky", { step: "filter" })).toBe(2);
  expect(sinkMetric(host!, "counter", "kubemeta_sink_delivery_failures_total", "picky", { step: "read" })).toBe(0);
  const said = (msg: string) => logged.filter((line) => line.msg === msg);
  expect(said("sink failed to read the log; retrying")).toEqual([]);
  expect(said("sink's filter failed; retrying").map((line) => [line.level, (line.error as Error).message])).toEqual([
    ["error", "no such label"],
  ]);
  expect(said("sink's filter works again").map((line) => line.failedAttempts)).toEqual([2]);
});

test(
  "deliver gets the envelopes of the followed stream; " +
    "with fanOut, each update on `all` and then on its own stream",
  async () => {
    host = await startTestHost();
    const onNode: Envelope[] = [];
    const fannedOut: Envelope[] = [];
    await sinks.start(host!, "node", {
      stream: "node/n1",
      deliver: async (envelopes) => void onNode.push(...envelopes),
    });
    await sinks.start(host!, "fan", {
      fanOut: true,
      filter: (e) => e.stream === "all" && e.name !== "skip-me",
      deliver: async (envelopes) => void fannedOut.push(...envelopes),
    });
    host.changes.apply("pods", "ADDED", rawPod("a", { node: "n1" }));
    host.changes.apply("pods", "ADDED", rawPod("pending"));
    host.changes.apply("pods", "ADDED", rawPod("skip-me", { node: "n2" }));
    host.changes.apply("pods", "ADDED", rawPod("b", { node: "n1" }));
    await waitFor(() => onNode.length === 2 && fannedOut.length === 5, 5_000, "every envelope");
    expect(onNode.map((e) => [e.name, e.stream, e.version, e.prev, e.epoch])).toEqual([
      ["a", "node/n1", 1, 0, host.host.epoch],
      ["b", "node/n1", 4, 1, host.host.epoch],
    ]);
    expect(fannedOut.map((e) => [e.name, e.stream, e.version, e.prev])).toEqual([
      ["a", "all", 1, 0],
      ["a", "node/n1", 1, 0],
      ["pending", "all", 2, 1],
      ["b", "all", 4, 3],
      ["b", "node/n1", 4, 1],
    ]);
    expect(() =>
      consume(contextOn(host!, "wrong"), { stream: "shared", fanOut: true, deliver: async () => {} }),
    ).toThrow(/fanOut/);
  },
);

test("batch and retry come from the standard config keys, with the SDK's defaults or the sink's own", () => {
  const schema = v.strictObject({ stream: v.optional(streamName, "all"), batch: batchSchema(), retry: retrySchema() });
  expect(v.parse(schema, {})).toEqual({
    stream: "all",
    batch: { size: 500, lingerMs: 0 },
    retry: { initialMs: 1_000, maxMs: 60_000 },
  });
  expect(v.parse(schema, { batch: { size: 10, linger: "250ms" }, retry: { initial: "5ms", max: "1m" } })).toEqual({
    stream: "all",
    batch: { size: 10, lingerMs: 250 },
    retry: { initialMs: 5, maxMs: 60_000 },
  });
  const own = v.strictObject({
    batch: batchSchema({ size: 100, linger: "500ms", maxSize: 1_000 }),
    retry: retrySchema({ initial: "100ms", max: "5s" }),
  });
  expect(v.parse(own, {})).toEqual({ batch: { size: 100, lingerMs: 500 }, retry: { initialMs: 100, maxMs: 5_000 } });
  expect(v.safeParse(own, { batch: { size: 1_001 } }).success).toBe(false);
  // A default past its own bound would refuse every config that leaves batch.size out: the author is told at once.
  expect(() => batchSchema({ size: 2_000, maxSize: 1_000 })).toThrow(
    "batchSchema: the default size 2000 is not a whole number from 1 to maxSize (1000)",
  );
  expect(() => batchSchema({ size: 0 })).toThrow(RangeError);
  expect(v.safeParse(schema, { batch: { sise: 10 } }).success).toBe(false);
  expect(v.safeParse(schema, { stream: "node/Not_A_Node" }).issues?.[0]?.message).toMatch(
    /^must be "all", "shared" or "node\/<node name>"/,
  );
});

/** A host, and a sink of it delivering an update a batch, its cursor saved at most every `saveIntervalMs`. */
async function savingSink(name: string, saveIntervalMs: number) {
  const th = await startTestHost();
  host = th;
  const delivered: number[] = [];
  const { ctx } = await sinks.start(th, name, {
    saveIntervalMs,
    batch: { size: 1, lingerMs: 0 },
    deliver: async (envelopes) => void delivered.push(...envelopes.map((e) => e.version)),
  });
  return { th, ctx, delivered };
}

test("saveIntervalMs spares cursor saves between deliveries, and stop saves where the sink got to", async () => {
  const { th, ctx, delivered } = await savingSink("sparing", 60_000);
  addPods(th, 5);
  await waitFor(() => delivered.length === 5, 5_000, "five batches");
  expect(ctx.saved()).toBe(0); // the starting point, saved at the first start
  await sinks.running.pop()!.stop();
  expect(ctx.saved()).toBe(5);
});

test("a position saveIntervalMs left unsaved is saved once the interval is over, nothing committed after", async () => {
  const { th, ctx, delivered } = await savingSink("quiet-after", 300);
  addPods(th, 3);
  await waitFor(() => delivered.length === 3, 5_000, "three batches");
  // Was: the last batches stayed unsaved until the next commit, for hours on a quiet cluster, sent again after a crash.
  await waitFor(() => ctx.saved() === 3, 5_000, "the cursor saved at the last delivery");
});

test("a deferred cursor save that fails is tried again, nothing committed after", async () => {
  const { th, ctx, delivered } = await savingSink("quiet-after-failure", 300);
  await waitFor(() => ctx.saved() === 0, 5_000, "the starting point saved");
  const save = ctx.cursor.save;
  let failedSaves = 0;
  ctx.cursor.save = async () => {
    failedSaves++;
    throw new Error("store unreachable");
  };
  addPods(th, 3);
  await waitFor(() => delivered.length === 3 && failedSaves > 0, 5_000, "the deferred save failing");
  ctx.cursor.save = save;
  // Was: left unsaved until the next commit, though the store was back a moment later.
  await waitFor(() => ctx.saved() === 3, 5_000, "the cursor saved once the store is back");
});
