/** /readyz says what the last commit said, without a write of its own to the store. */
import { afterAll, expect, test } from "bun:test";
import { createClient } from "@libsql/client";
import { join } from "node:path";
import { rawPod, startTestHost, tempDir, waitFor } from "../testing/index.ts";

const th = await startTestHost();
const other = createClient({ url: `file:${join(th.dir, "kubemeta.db")}` });
afterAll(async () => {
  other.close();
  await th.destroy();
});

test("a /readyz probe takes no write lock: it answers at once while another connection holds it", async () => {
  await th.changes.apply("pods", "ADDED", rawPod("web-1"));
  await th.changes.flush();
  // BEGIN IMMEDIATE: the store's write lock is this connection's until the rollback. A probe that wrote would wait
  // for it (busy timeout, 5 s), then fail.
  const lock = await other.transaction("write");
  try {
    for (let i = 0; i < 5; i++) {
      const started = performance.now();
      const response = await fetch(`${th.url}/readyz`);
      expect(await response.json()).toEqual({ ready: true, waiting: [] });
      expect(response.status).toBe(200);
      expect(performance.now() - started).toBeLessThan(1_000);
    }
  } finally {
    await lock.rollback();
  }
});

/** A sink whose stop waits until the test lets it end: the host's shutdown is held while its sinks drain. */
const HELD_STOP_SINK = `
import { defineSink, v } from ${JSON.stringify(join(import.meta.dir, "../sdk/index.ts"))};
export default defineSink({
  type: "held",
  description: "Holds its stop until globalThis.releaseHeldSink() is called.",
  schema: v.strictObject({}),
  create: () => ({
    async start() {},
    stop: () => new Promise((resolve) => Object.assign(globalThis, { releaseHeldSink: resolve })),
  }),
});
`;

test("/readyz is 503 ('shutting down') once a shutdown begins, while the listener still answers", async () => {
  const dir = await tempDir();
  await Bun.write(join(dir, "held.ts"), HELD_STOP_SINK);
  const held = await startTestHost({ dir, sinks: [{ type: "./held.ts" }] });
  try {
    expect((await fetch(`${held.url}/readyz`)).status).toBe(200);
    const stopped = held.stop();
    const global = globalThis as { releaseHeldSink?: () => void };
    await waitFor(() => global.releaseHeldSink, 5_000, "the sinks' drain under way");
    const response = await fetch(`${held.url}/readyz`);
    expect([response.status, await response.json()]).toEqual([503, { ready: false, waiting: ["shutting down"] }]);
    expect((await fetch(`${held.url}/healthz`)).status).toBe(200);
    global.releaseHeldSink!();
    await stopped;
  } finally {
    await held.destroy();
  }
});
