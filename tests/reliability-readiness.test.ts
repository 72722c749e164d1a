/** /readyz says what the last commit said, without a write of its own to the store. */
import { afterAll, expect, test } from "bun:test";
import { createClient } from "@libsql/client";
import { join } from "node:path";
import { rawPod, startTestHost } from "../testing/index.ts";

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
