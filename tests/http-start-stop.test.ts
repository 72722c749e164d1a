/**
 * The listener's part in a start and a stop: a port that is taken fails the start before any sink delivers, and a
 * SIGTERM lets the requests in flight finish (within shutdownTimeout) while new connections are refused.
 */
import { afterAll, expect, test } from "bun:test";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { StartFailed } from "../host/host.ts";
import { createLogger } from "../host/logger.ts";
import { rawPod, startTestHost, tempDir, waitFor } from "../testing/index.ts";
import { rawRequest } from "./security-raw.ts";
import { startReceiver, webhookSink } from "./webhook-receiver.ts";

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

test("a port that is taken fails the start before any sink delivers: the webhook receiver gets nothing", async () => {
  const dir = await tempDir();
  dirs.push(dir);
  // A store with updates a new webhook (from the oldest) would deliver at once.
  const first = await startTestHost({ dir });
  for (let i = 0; i < 5; i++) await first.changes.apply("pods", "ADDED", rawPod(`web-${i}`));
  await first.changes.flush();
  await first.stop();

  const receiver = await startReceiver();
  const taken = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("taken") });
  try {
    const start = startTestHost({ dir, sinks: [webhookSink(receiver.url)], http: { port: taken.port } });
    expect(await start.catch((error: unknown) => error)).toBeInstanceOf(StartFailed);
    // The start is over and stopped everything it began: nothing can be delivered from here.
    expect(receiver.requests).toEqual([]);
  } finally {
    taken.stop(true);
    await receiver.stop();
  }
});

/** A sink that mounts GET /held, then holds its start until globalThis.releaseHeldStart() is called. */
const HELD_START_SINK = `
import { defineSink, v } from ${JSON.stringify(join(import.meta.dir, "../sdk/index.ts"))};
export default defineSink({
  type: "held",
  description: "Mounts GET /held, then holds its start until globalThis.releaseHeldStart() is called.",
  schema: v.strictObject({}),
  create: (_config, ctx) => ({
    async start() {
      ctx.http.get("/held", (c) => c.text("mounted"));
      await new Promise((resolve) => Object.assign(globalThis, { releaseHeldStart: resolve }));
    },
    async stop() {},
  }),
});
`;

test("requests that come while the sinks start wait for every route, then are answered", async () => {
  const dir = await tempDir();
  dirs.push(dir);
  await Bun.write(join(dir, "held.ts"), HELD_START_SINK);
  const lines: string[] = [];
  const logger = createLogger({ write: (line) => lines.push(line) });
  const starting = startTestHost({ dir, sinks: [{ type: "./held.ts" }], logger });
  const global = globalThis as { releaseHeldStart?: () => void };
  await waitFor(() => global.releaseHeldStart, 5_000, "the sink's start under way");
  const listening = lines.map((line) => JSON.parse(line)).find((line) => line.msg === "http listening");
  // Connected while the sink still starts: the listener is bound (it was not, before the sinks had started).
  const early = await rawRequest(listening.url, "GET /held HTTP/1.1");
  global.releaseHeldStart!();
  const th = await starting;
  try {
    expect(await early.status()).toBe(200);
    await waitFor(() => early.text().endsWith("mounted"), 5_000, "the plugin's answer");
  } finally {
    early.close();
    await th.stop();
  }
});
