/**
 * Retention by age on a clock that jumped ahead, on a real host's libSQL file: updates committed ten days before the
 * clock says now are what a clock gone ten days ahead (while kubemeta was down) finds at the next start.
 */
import { afterEach, expect, test } from "bun:test";
import { join } from "node:path";
import { silentLogger } from "../host/logger.ts";
import { createMetrics } from "../host/metrics.ts";
import libsql from "../plugins/stores/libsql.ts";
import { startTestHost, tempDir, type TestHost, waitFor } from "../testing/index.ts";
import { batch, run } from "./store-libsql-setup.ts";

const hosts: TestHost[] = [];
afterEach(async () => {
  for (const th of hosts.splice(0)) await th.destroy();
});

const MINUTE = 60_000;

test("a clock ahead of the newest update by over maxAge prunes by age only what precedes it by maxAge", async () => {
  const dir = await tempDir();
  const context = { name: "libsql", cluster: "test", logger: silentLogger, metrics: createMetrics() };
  const store = libsql.create({ url: `file:${join(dir, "kubemeta.db")}` } as never, context);
  await store.start();
  await store.lead();
  // One object changed 20 times, 10 minutes apart, the last of them ten days ago.
  const last = Date.now() - 10 * 24 * 60 * MINUTE;
  const time = (version: number) => new Date(last - (20 - version) * 10 * MINUTE).toISOString();
  await store.commit(batch(run(1, 20, (version) => ({ uid: "one", stream: "shared", time: time(version) }))));
  await store.stop();

  const th = await startTestHost({ dir, retention: { maxAge: "65m", interval: "20ms" } });
  hosts.push(th);
  await waitFor(() => th.host.log.oldest() > 1, 5_000, "retention pruning by age");
  // 65 minutes before the newest update are kept: versions 14 (an hour before 20) to 20.
  expect(th.host.log.oldest()).toBe(14);
  const kept = await th.host.log.read({ stream: "all", after: 13, limit: 100 });
  expect(kept.map((update) => update.version)).toEqual([14, 15, 16, 17, 18, 19, 20]);
});
