/**
 * `consume`'s `stream` given no stream's name (a plugin whose schema takes any string, a user's `Shared`): refused as
 * the sink is created, so that its start fails and says why, rather than a sink that delivers nothing and shows no lag.
 * So are a `from` and a `behindRetention` of neither `oldest` nor `head`, which would be taken for `oldest`.
 */
import { afterEach, expect, test } from "bun:test";
import { join } from "node:path";
import { createLogger } from "../host/logger.ts";
import { rawPod, sinkCaughtUp, startTestHost, type TestHost, tempDir, waitFor } from "../testing/index.ts";
import type { Logged } from "./plugins-fixtures.ts";
import { SDK } from "./reliability-process.ts";

declare global {
  var streamNameDelivered: Record<string, number>;
}

// Delivers the stream its config names, counting what it delivered by sink.
const streamed = `
import { consume, defineSink, v } from ${JSON.stringify(SDK)};
export default defineSink({
  type: "streamed", description: "Delivers the stream its config names.",
  schema: v.strictObject({ stream: v.string() }),
  create: (config, ctx) => consume(ctx, {
    stream: config.stream,
    async deliver(envelopes) {
      globalThis.streamNameDelivered[ctx.name] = (globalThis.streamNameDelivered[ctx.name] ?? 0) + envelopes.length;
    },
  }),
});`;

let th: TestHost | undefined;
afterEach(async () => {
  await th?.destroy();
  th = undefined;
});

test("a sink whose consume is given no stream's name fails to start and says why", async () => {
  const dir = await tempDir("kubemeta-stream-name-");
  await Bun.write(join(dir, "streamed.ts"), streamed);
  globalThis.streamNameDelivered = {};
  const logged: Logged[] = [];
  const logger = createLogger({ write: (line) => void logged.push(JSON.parse(line) as Logged) });
  const sinks = [
    { type: "./streamed.ts", name: "typo", stream: "Shared" },
    { type: "./streamed.ts", name: "right", stream: "shared" },
  ];
  th = await startTestHost({ dir, sinks, logger });
  th.changes.apply("services", "ADDED", { ...rawPod("web"), kind: "Service" });
  await waitFor(() => th!.host.log.head() >= 1, 5_000, "the commit");
  await sinkCaughtUp(th, "right", 5_000);
  expect(globalThis.streamNameDelivered).toEqual({ right: 1 });
  // Was: started, caught up (lag 0), delivering nothing, with nothing said.
  const failed = logged.find((line) => line.msg === "sink failed to start; retrying" && line.sink === "typo");
  expect((failed?.error as { message?: string } | undefined)?.message).toBe(
    'consume: stream "Shared" is no stream: "all", "shared" or "node/<node name>" with a legal node name ' +
      "(DNS-1123 subdomain) (the SDK's streamName validates a config's key)",
  );
});

// Starts where its config says: `from` and `behindRetention` as a plugin in JavaScript passes them, unchecked.
const placed = `
import { consume, defineSink, v } from ${JSON.stringify(SDK)};
export default defineSink({
  type: "placed", description: "Starts where its config says.",
  schema: v.strictObject({ from: v.string(), behindRetention: v.string() }),
  create: (config, ctx) => consume(ctx, { ...config, async deliver() {} }),
});`;

test("a sink whose consume is given a `from` or `behindRetention` of neither oldest nor head fails to start", async () => {
  const dir = await tempDir("kubemeta-consume-from-");
  await Bun.write(join(dir, "placed.ts"), placed);
  const logged: Logged[] = [];
  const logger = createLogger({ write: (line) => void logged.push(JSON.parse(line) as Logged) });
  const sinks = [
    { type: "./placed.ts", name: "from", from: "Head", behindRetention: "head" },
    { type: "./placed.ts", name: "behind", from: "head", behindRetention: "newest" },
    { type: "./placed.ts", name: "right", from: "head", behindRetention: "oldest" },
  ];
  th = await startTestHost({ dir, sinks, logger });
  await sinkCaughtUp(th, "right", 5_000);
  const said = (sink: string) =>
    (
      logged.find((line) => line.msg === "sink failed to start; retrying" && line.sink === sink)?.error as
        | { message?: string }
        | undefined
    )?.message;
  // Was: started, "Head" taken for oldest (the whole log delivered to a sink meant to start from now), "newest" too.
  expect([said("from"), said("behind"), said("right")]).toEqual([
    'consume: from "Head" is neither "oldest" nor "head"',
    'consume: behindRetention "newest" is neither "oldest" nor "head"',
    undefined,
  ]);
});
