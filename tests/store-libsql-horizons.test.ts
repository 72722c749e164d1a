/**
 * Each stream's horizon (the last of its updates deleted) as the committed log uses it: a reader of one stream whose
 * updates were deleted after its position is reset, even before the log hears of the prune (it is over only once all
 * its chunks are, and an HA follower hears of it a poll later), and whatever deleted them.
 */
import { expect, test } from "bun:test";
import { createClient } from "@libsql/client";
import { join } from "node:path";
import { Hono } from "hono";
import { createLog } from "../core/committed-log.ts";
import { mountApi } from "../host/read-api.ts";
import { followStore } from "../host/follower.ts";
import { silentLogger } from "../host/logger.ts";
import { createMetrics } from "../host/metrics.ts";
import { BehindRetentionError, type Store } from "../sdk/contract.ts";
import type { Update } from "../sdk/model.ts";
import { waitFor } from "../testing/index.ts";
import { batch, storeSandbox, update } from "./store-libsql-setup.ts";

const { newDir, makeStore } = storeSandbox("file");

/** Versions 1..100 on `shared`, but for one pod on node/a changed at 10, 30 and 70 (its prev chain 0, 10, 30). */
function history(): Update[] {
  const chain = [10, 30, 70];
  return Array.from({ length: 100 }, (_, i) => {
    const version = i + 1;
    const at = chain.indexOf(version);
    if (at < 0) return update(version);
    return {
      ...update(version, { uid: "x", stream: "node/a", type: at === 0 ? "ADDED" : "MODIFIED" }),
      streamPrev: chain[at - 1] ?? 0,
    };
  });
}

async function readFrom(log: ReturnType<typeof createLog>, after: number): Promise<unknown> {
  try {
    return (await log.read({ stream: "node/a", after, limit: 100 })).map((u) => [u.version, u.streamPrev]);
  } catch (error) {
    if (error instanceof BehindRetentionError) return "reset";
    throw error;
  }
}

/** A store in `dir` holding history(), written as its one writer. */
async function storeWithHistory(dir: string): Promise<{ store: Store; epoch: string }> {
  const store = makeStore(dir);
  await store.start();
  const { epoch } = await store.lead();
  await store.commit(batch(history()));
  return { store, epoch };
}

/** A committed log over `store` keeping 5 updates in memory: a reader further back reads the store. */
const logOf = async (store: Store, epoch: string, head: number, oldest: number, metrics = createMetrics()) =>
  createLog({
    store,
    epoch,
    head,
    oldest,
    horizons: await store.horizons!(),
    whole: true,
    logger: silentLogger,
    metrics,
    tailSize: 5,
  });

/** Statements on the store's file from another connection: what another process (a prune) does behind the log. */
async function behindTheLog(dir: string, statements: string[]): Promise<void> {
  const raw = createClient({ url: `file:${join(dir, "nested", "kubemeta.db")}` });
  try {
    await raw.batch(statements);
  } finally {
    raw.close();
  }
}

test("a prune the log has not heard of yet: a reader before the stream's deleted updates is reset", async () => {
  const { store, epoch } = await storeWithHistory(newDir());
  const log = await logOf(store, epoch, 100, 1);
  // Versions 10 and 30 go (x changed since); the log still has oldest 1, as while a prune's chunks run.
  await store.prune({ maxAgeMs: 0, maxUpdates: 40 });
  expect(await store.horizon!("node/a")).toBe(30);
  expect(await readFrom(log, 5)).toBe("reset");
  expect(await readFrom(log, 30)).toEqual([[70, 30]]);
});

test("an HA follower between two polls: its reader before the stream's deleted updates is reset", async () => {
  const dir = newDir();
  const { store: leader } = await storeWithHistory(dir);
  const store = makeStore(dir);
  const state = await store.start();
  const log = await logOf(store, state.epoch, 0, state.oldest);
  const follower = followStore({
    store,
    log,
    logger: silentLogger,
    intervalMs: 60_000,
    onReplaced: (error) => {
      throw error;
    },
  });
  try {
    await waitFor(() => log.head() === 100, 5_000, "the follower to read the log");
    await leader.prune({ maxAgeMs: 0, maxUpdates: 40 });
    expect(await readFrom(log, 5)).toBe("reset");
  } finally {
    await follower.stop();
  }
});

test("whatever deletes an update raises its stream's horizon (the last release, in an upgrade)", async () => {
  const dir = newDir();
  const { store, epoch } = await storeWithHistory(dir);
  const log = await logOf(store, epoch, 100, 1);
  // The previous release's prune: DELETE and its horizon, nothing else.
  await behindTheLog(dir, [
    "DELETE FROM updates WHERE version <= 40",
    "UPDATE meta SET pruned_through = 40 WHERE id = 1",
  ]);
  expect(await store.horizons!()).toEqual(
    new Map([
      ["node/a", 30],
      ["shared", 40],
    ]),
  );
  expect(await readFrom(log, 5)).toBe("reset");
});

test("/v1/updates without `since` starts at the stream's oldest kept update, while a prune runs too", async () => {
  const dir = newDir();
  const { store, epoch } = await storeWithHistory(dir);
  const log = await logOf(store, epoch, 100, 1);
  await behindTheLog(dir, ["DELETE FROM updates WHERE version <= 40"]);
  const app = new Hono();
  mountApi(app, log, silentLogger, 0);
  const page = await app.request("/v1/updates?stream=node/a");
  expect(page.status).toBe(200);
  expect(((await page.json()) as { items: { version: number }[] }).items.map((u) => u.version)).toEqual([70]);
});

test("/v1/updates without `since` overtaken by a prune: no reader fell behind, none counted", async () => {
  const dir = newDir();
  const { store, epoch } = await storeWithHistory(dir);
  const metrics = createMetrics();
  const log = await logOf(store, epoch, 100, 1, metrics);
  await behindTheLog(dir, ["DELETE FROM updates WHERE version <= 40"]);
  const app = new Hono();
  mountApi(app, log, silentLogger, 0);
  for (const [stream, first] of [
    ["node/a", 70],
    ["all", 41],
  ] as const) {
    const page = await app.request(`/v1/updates?stream=${stream}&limit=1`);
    expect(page.status).toBe(200);
    expect(((await page.json()) as { items: { version: number }[] }).items.map((u) => u.version)).toEqual([first]);
  }
  expect(metrics.render()).toContain('kubemeta_reader_resets_total{stream="node"} 0');
  expect(metrics.render()).toContain('kubemeta_reader_resets_total{stream="all"} 0');
  // A `since` the prune passed is a reader behind retention, as before.
  expect((await app.request(`/v1/updates?stream=all&since=${epoch}:5`)).status).toBe(410);
  expect(metrics.render()).toContain('kubemeta_reader_resets_total{stream="all"} 1');
});

test("a prune told to stop ends after the chunk it is in, the log whole from there; the next run goes on", async () => {
  const store = makeStore(newDir());
  await store.start();
  await store.lead();
  // One object changed 5,000 times: every update but the last is prunable, in three chunks of up to 2,000.
  const changes = Array.from({ length: 5_000 }, (_, i) => update(i + 1, { uid: "x", type: i ? "MODIFIED" : "ADDED" }));
  await store.commit(batch(changes));
  const stopped = new AbortController();
  stopped.abort();
  expect(await store.prune({ maxAgeMs: 0, maxUpdates: 1 }, stopped.signal)).toEqual({ removed: 2_000, oldest: 2_001 });
  expect((await store.position()).oldest).toBe(2_001);
  expect(await store.prune({ maxAgeMs: 0, maxUpdates: 1 })).toEqual({ removed: 2_999, oldest: 5_000 });
});
