/**
 * A stop's store close within what shutdownTimeout leaves it: the `file:` store's WAL checkpoint worker silent at the
 * stop (its thread stalled, as on a machine short of memory) is given up in time, the WAL left beside the file, and
 * the stop ends clean (exit 0) rather than timing out (exit 1). A write waiting for that worker's WAL restart as the
 * store stops goes on without it: it held the close up to the 10 s a commit waits for the worker. So does the commit of
 * what the sources sent last, from halfway to shutdownTimeout's end, which comes before the close; a restart the worker
 * answers before that is waited for.
 */
import { afterEach, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { existsSync, statSync } from "node:fs";
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
/** The libsql store as a plugin of `type`, its checkpoint worker's thread stalled for 8 s once it checkpointed. */
const stalledCheckpointsStore = (type: string, restartBytes?: number) => `
import libsql from ${JSON.stringify(join(STORES, "libsql.ts"))};
import { createLibsqlStore } from ${JSON.stringify(join(STORES, "libsql", "store.ts"))};
import { defineStore } from ${JSON.stringify(SDK)};
export default defineStore({
  ...libsql,
  type: ${JSON.stringify(type)},
  create: (config, ctx) => createLibsqlStore(config, ctx, { workerStallsMs: 8_000, restartBytes: ${restartBytes} }),
});
`;

const RESTART_GIVEN_UP =
  "shutdown: a commit's wait for the WAL checkpoint worker's restart given up; the commit goes on without it, " +
  "the WAL folded in by the store's close or the next start: nothing is lost";

test("a stop with the WAL checkpoint worker stalled: the store closes in time, the WAL left, said", async () => {
  const dir = await tempDir();
  await Bun.write(join(dir, "stalled-checkpoints.ts"), stalledCheckpointsStore("stalled-checkpoints"));
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
  // No commit waited for a restart: nothing of one is said.
  expect(said(RESTART_GIVEN_UP)).toEqual([]);
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

test("a stop whose last commit waits for the stalled worker's WAL restart: clean, in time, nothing lost", async () => {
  const dir = await tempDir();
  // A commit asks for a restart once the WAL file outgrows 256 KiB: one just made holds ~180 KiB.
  await Bun.write(join(dir, "stalled-restarts.ts"), stalledCheckpointsStore("stalled-restarts", 128 * 1024));
  const file = join(dir, "kubemeta.db");
  const logged: { msg: string; level: string; waitedMs?: number }[] = [];
  host = await startTestHost({
    dir,
    extra: { store: { type: "./stalled-restarts.ts", url: `file:${file}` }, shutdownTimeout: "4s" },
    logger: createLogger({ level: "info", write: (line) => void logged.push(JSON.parse(line)) }),
  });
  // One commit that takes the WAL past the restart's bound: each commit after it asks the stalled worker first.
  await host.changes.apply("pods", "ADDED", rawPod("big", { labels: { big: randomBytes(200_000).toString("hex") } }));
  await host.changes.flush();
  expect(statSync(`${file}-wal`).size).toBeGreaterThan(256 * 1024);
  await host.changes.apply("pods", "ADDED", rawPod("last", { node: "n1" }));

  const started = Date.now();
  // Not ShutdownTimedOut (exit 1): that commit's wait, 10 s long, ended halfway to shutdownTimeout's end.
  await host.stop();
  expect(Date.now() - started).toBeLessThan(4_000);
  // Said once, at warn, with how long the commit waited: halfway to the deadline's 4 s.
  const givenUp = logged.filter((line) => line.msg === RESTART_GIVEN_UP);
  expect(givenUp).toMatchObject([{ level: "warn" }]);
  expect(givenUp[0]!.waitedMs).toBeGreaterThanOrEqual(1_500);

  host = await startTestHost({ dir, extra: { store: { type: "libsql", url: `file:${file}` } } });
  const objects = (await (await fetch(`${host.url}/v1/objects`)).json()) as { items: { name: string }[] };
  expect(objects.items.map((item) => item.name).sort()).toEqual(["big", "last"]);
});

test("a shutdown's start still lets a write wait for a WAL restart the worker answers in time", async () => {
  const dir = await tempDir();
  const url = `file:${join(dir, "kubemeta.db")}`;
  const logged: { msg: string; level: string }[] = [];
  const logger = createLogger({ level: "debug", write: (line) => void logged.push(JSON.parse(line)) });
  const context = { name: "store", cluster: "test", logger, metrics: createMetrics() };
  // Stalled for 1 s from its start: it answers the write's restart long before halfway to the shutdown's deadline.
  const store = createLibsqlStore({ url, timeout: 10_000 }, context, { workerStallsMs: 1_000, restartBytes: 0 });
  await store.start();
  const deadline = Date.now() + 8_000;
  store.stopping?.(deadline);
  await store.saveCursor("sink", 7);
  await store.stop(deadline);
  expect(logged.filter((line) => line.msg === "WAL restarted")).toMatchObject([{ level: "debug" }]);
  expect(logged.filter((line) => line.msg === RESTART_GIVEN_UP)).toEqual([]);
}, 30_000);
