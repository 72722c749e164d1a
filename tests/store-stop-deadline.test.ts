/**
 * A stop's store close within what shutdownTimeout leaves it: the `file:` store's WAL checkpoint worker silent at the
 * stop (its thread stalled, as on a machine short of memory) is given up in time, the WAL left beside the file, and
 * the stop ends clean (exit 0) rather than timing out (exit 1). A write waiting for that worker's WAL restart as the
 * store stops goes on without it: it held the close up to the 10 s a commit waits for the worker.
 */
import { afterEach, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { createLogger, silentLogger } from "../host/logger.ts";
import { createMetrics } from "../host/metrics.ts";
import { createLibsqlStore } from "../plugins/stores/libsql/store.ts";
import { rawPod, startTestHost, tempDir, type TestHost } from "../testing/index.ts";
import { SDK } from "./reliability-process.ts";

let host: TestHost | undefined;
afterEach(async () => {
  await host?.destroy().catch(() => {});
  host = undefined;
});

const STORES = join(import.meta.dir, "..", "plugins", "stores");
/** The libsql store, its checkpoint worker's thread stalled for 8 s once it checkpointed. */
const STALLED_CHECKPOINTS_STORE = `
import libsql from ${JSON.stringify(join(STORES, "libsql.ts"))};
import { createLibsqlStore } from ${JSON.stringify(join(STORES, "libsql", "store.ts"))};
import { defineStore } from ${JSON.stringify(SDK)};
export default defineStore({
  ...libsql,
  type: "stalled-checkpoints",
  create: (config, ctx) => createLibsqlStore(config, ctx, { workerStallsMs: 8_000 }),
});
`;

test("a stop with the WAL checkpoint worker stalled: the store closes in time, the WAL left, said", async () => {
  const dir = await tempDir();
  await Bun.write(join(dir, "stalled-checkpoints.ts"), STALLED_CHECKPOINTS_STORE);
  const file = join(dir, "kubemeta.db");
  const store = { type: "./stalled-checkpoints.ts", url: `file:${file}` };
  const logged: { msg: string; level: string }[] = [];
  const said = (msg: string) => logged.filter((line) => line.msg === msg);
  host = await startTestHost({
    dir,
    extra: { store, shutdownTimeout: "1s" },
    logger: createLogger({ level: "info", write: (line) => void logged.push(JSON.parse(line)) }),
  });
  await host.changes.apply("pods", "ADDED", rawPod("a", { node: "n1" }));
  await host.changes.flush();

  const started = Date.now();
  // Not ShutdownTimedOut (exit 1): the store's close gave the worker up within what the shutdown left it.
  await host.stop();
  expect(Date.now() - started).toBeLessThan(1_500);
  const notStopped = "WAL checkpoint worker did not stop; the WAL may stay beside the file until the next start";
  expect(said(notStopped)).toMatchObject([{ level: "warn" }]);
  expect(existsSync(`${file}-wal`)).toBe(true);

  // Nothing lost: the next start applies the WAL left beside the file.
  host = await startTestHost({ dir, extra: { store: { type: "libsql", url: `file:${file}` } } });
  const objects = (await (await fetch(`${host.url}/v1/objects`)).json()) as { items: { name: string }[] };
  expect(objects.items.map((item) => item.name)).toEqual(["a"]);
});

test("a write waiting at the stop for the stalled worker's WAL restart goes on at once, in time", async () => {
  const dir = await tempDir();
  const url = `file:${join(dir, "kubemeta.db")}`;
  const context = { name: "store", cluster: "test", logger: silentLogger, metrics: createMetrics() };
  // Every write asks the worker, stalled from its start, to restart the WAL first: each waits for its answer.
  const store = createLibsqlStore({ url, timeout: 10_000 }, context, { workerStallsMs: 8_000, restartBytes: 0 });
  await store.start();
  const saving = store.saveCursor("sink", 7);
  const started = Date.now();
  await store.stop(started + 1_000);
  expect(Date.now() - started).toBeLessThan(1_500);
  await saving;

  const reopened = createLibsqlStore({ url, timeout: 10_000 }, context);
  await reopened.start();
  try {
    expect(await reopened.cursor("sink")).toBe(7);
  } finally {
    await reopened.stop();
  }
}, 30_000);
