/**
 * `kubemeta_sink_lag_versions` of a sink that never starts (host/sink-lag.ts): the host keeps the series from its own
 * start, head minus the cursor the store holds (the head without one), so that an alert on lag sees a sink that is
 * down; the sse sink, which has no position of its own, has none.
 */
import { afterEach, expect, test } from "bun:test";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { rawPod, sinkCaughtUp, startTestHost, tempDir, waitFor, type TestHost } from "../testing/index.ts";
import { SDK } from "./reliability-process.ts";
import { expectAge } from "./plugins-fixtures.ts";

let host: TestHost | undefined;
let dir: string | undefined;
afterEach(async () => {
  // A sink's delivery held at the gate would hold up its stop.
  globalThis.sinkLagGate?.resolve();
  await host?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
  host = dir = undefined;
});

const refusesToStart = `
import { defineSink, v } from ${JSON.stringify(SDK)};
export default defineSink({
  type: "refuses-to-start", description: "Never starts.", schema: v.strictObject({}),
  create: () => ({ async start() { throw new Error("cannot reach its backend"); }, async stop() {} }),
});`;

const lagOf = (th: TestHost, sink: string, unit = "versions") =>
  th.host.metrics
    .render()
    .split("\n")
    .find((line) => line.startsWith(`kubemeta_sink_lag_${unit}{sink="${sink}"} `))
    ?.split(" ")[1];

function addPods(th: TestHost, from: number, count: number): void {
  for (let i = from; i < from + count; i++) th.changes.apply("pods", "ADDED", rawPod(`web-${i}`, { node: "n1" }));
}

test("a sink that never starts has a lag: the head past its stored cursor, or the head; sse has none", async () => {
  dir = await tempDir("kubemeta-sink-lag-");
  await Bun.write(join(dir, "refuses.ts"), refusesToStart);
  host = await startTestHost({ dir, sinks: [{ type: "jsonl", name: "audit", path: join(dir, "audit.jsonl") }] });
  addPods(host, 0, 3);
  await waitFor(() => host!.host.log.head() >= 3, 5_000, "three commits");
  await sinkCaughtUp(host, "audit");
  await host.stop();

  // The same store, its sink `audit` now one that cannot start, beside a new one that cannot either.
  host = await startTestHost({
    dir,
    sinks: [{ type: "./refuses.ts", name: "audit" }, { type: "./refuses.ts", name: "fresh" }, { type: "sse" }],
  });
  addPods(host, 3, 2);
  await waitFor(() => host!.host.log.head() >= 5, 5_000, "five commits");
  await waitFor(() => lagOf(host!, "audit") === "2" && lagOf(host!, "fresh") === "5", 5_000, "the lag of each");
  expect(lagOf(host, "sse")).toBeUndefined();
  // In seconds: since the first update each has not delivered was committed, 4 for audit, 1 for fresh.
  const [fourth, first] = await Promise.all(
    [3, 0].map(async (after) => {
      const [update] = await host!.host.log.read({ stream: "all", after, limit: 1 });
      return Date.parse(update!.time);
    }),
  );
  await waitFor(() => Number(lagOf(host!, "fresh", "seconds")) >= 1, 5_000, "fresh's lag past a second");
  expectAge(Number(lagOf(host, "audit", "seconds")), fourth!);
  expectAge(Number(lagOf(host, "fresh", "seconds")), first!);
  expect(lagOf(host, "sse", "seconds")).toBeUndefined();
  const failures = host.host.metrics.counter("kubemeta_plugin_failures_total", "");
  expect(failures.get({ plugin: "audit", kind: "sink", phase: "start" })).toBeGreaterThanOrEqual(1);
});

// Delivers once the test opens the gate, counting what it delivered: a sink slow to deliver, in the test's hands.
const gated = `
import { consume, defineSink, v } from ${JSON.stringify(SDK)};
export default defineSink({
  type: "gated", description: "Delivers once the test lets it.", schema: v.strictObject({}),
  create: (_config, ctx) => consume(ctx, {
    async deliver(envelopes) {
      await globalThis.sinkLagGate.promise;
      globalThis.sinkLagDelivered += envelopes.length;
    },
  }),
});`;

declare global {
  var sinkLagGate: PromiseWithResolvers<void>;
  var sinkLagDelivered: number;
}

test("a caught-up sink's lag rises as it reads a commit, so sinkCaughtUp waits for a slow deliver", async () => {
  dir = await tempDir("kubemeta-sink-lag-");
  await Bun.write(join(dir, "gated.ts"), gated);
  globalThis.sinkLagGate = Promise.withResolvers();
  globalThis.sinkLagGate.resolve();
  globalThis.sinkLagDelivered = 0;
  host = await startTestHost({ dir, sinks: [{ type: "./gated.ts" }] });
  addPods(host, 0, 1);
  await waitFor(() => globalThis.sinkLagDelivered === 1 && lagOf(host!, "gated") === "0", 5_000, "caught up");

  globalThis.sinkLagGate = Promise.withResolvers();
  addPods(host, 1, 3);
  await waitFor(() => host!.host.log.head() >= 4, 5_000, "three more commits");
  // Before the fix the gauge said 0 until its next refresh, up to a second later, and sinkCaughtUp returned at once.
  expect(lagOf(host, "gated")).not.toBe("0");
  globalThis.sinkLagGate.resolve();
  await sinkCaughtUp(host, "gated");
  expect(globalThis.sinkLagDelivered).toBe(4);
});

test("sinkCaughtUp refuses a name no sink has at once, naming the host's sinks, not after its timeout", async () => {
  dir = await tempDir("kubemeta-sink-lag-");
  await Bun.write(join(dir, "gated.ts"), gated);
  globalThis.sinkLagGate = Promise.withResolvers();
  globalThis.sinkLagGate.resolve();
  host = await startTestHost({ dir, sinks: [{ type: "./gated.ts" }, { type: "jsonl", name: "audit", path: "-" }] });
  const asked = Date.now();
  // The module's file name, where the sink goes by the type its plugin declares. Was: a wait of the whole timeout,
  // then `timed out after 3000 ms waiting for sink gated.ts to catch up`, as if the sink were slow.
  const refused = await sinkCaughtUp(host, "gated.ts", 3_000).catch((error: unknown) => error);
  expect(String(refused)).toBe(
    "Error: no sink is named gated.ts in this host (its sinks: gated, audit): a sink goes by its name, else by the " +
      "type its plugin declares",
  );
  expect(Date.now() - asked).toBeLessThan(1_000);
  await sinkCaughtUp(host, "gated", 3_000);
});

// Refuses to start until the test lets it, and delivers once the gate opens: a sink behind as it starts.
const late = `
import { consume, defineSink, v } from ${JSON.stringify(SDK)};
export default defineSink({
  type: "late", description: "Starts once the test lets it.", schema: v.strictObject({}),
  create: (_config, ctx) => {
    const consumer = consume(ctx, { deliver: () => globalThis.sinkLagGate.promise });
    return {
      async start() {
        if (!globalThis.sinkLagStartable) throw new Error("not yet");
        await consumer.start();
        globalThis.sinkLagStartedAt = Date.now();
      },
      stop: () => consumer.stop(),
    };
  },
});`;

declare global {
  var sinkLagStartable: boolean;
  var sinkLagStartedAt: number | undefined;
}

test("a sink behind as it starts keeps its lag in seconds through the start: the series never vanishes", async () => {
  dir = await tempDir("kubemeta-sink-lag-");
  await Bun.write(join(dir, "late.ts"), late);
  globalThis.sinkLagStartable = false;
  globalThis.sinkLagStartedAt = undefined;
  globalThis.sinkLagGate = Promise.withResolvers();
  host = await startTestHost({ dir, sinks: [{ type: "./late.ts", name: "late" }] });
  addPods(host, 0, 3);
  await waitFor(() => Number(lagOf(host!, "late", "seconds")) > 0, 5_000, "the host's lag in seconds");
  globalThis.sinkLagStartable = true;
  // Scraped as an alert would, through the start and two of the sink's refreshes after it (it looks up the time of
  // the first version it has not delivered at one and shows it at the next).
  const scrapes: (string | undefined)[] = [];
  const scrape = async () => {
    const text = await (await fetch(`${host!.url}/metrics`)).text();
    scrapes.push(text.split("\n").find((line) => line.startsWith('kubemeta_sink_lag_seconds{sink="late"} ')));
    const started = globalThis.sinkLagStartedAt;
    return started !== undefined && Date.now() - started > 2_500;
  };
  await waitFor(scrape, 15_000, "the sink's start and two refreshes after it");
  expect(scrapes.filter((line) => line === undefined)).toHaveLength(0);
  expect(Number(lagOf(host, "late", "seconds"))).toBeGreaterThan(0);
}, 20_000);
