/**
 * Regression tests from a correctness review of the core: each one failed before its fix.
 * Real parts: a libSQL file in a temp dir, the real pipeline and log.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import libsql from "../plugins/stores/libsql.ts";
import { BehindRetentionError, type Store } from "../sdk/contract.ts";
import { createLog, type HostLog } from "../core/committed-log.ts";
import { silentLogger } from "../host/logger.ts";
import { createMetrics } from "../host/metrics.ts";
import { createPipeline, type Pipeline } from "../core/pipeline.ts";
import { ALL } from "../protocol/streams.ts";
import { rawPod, tempDir } from "../testing/index.ts";
import { builtins } from "../plugins/index.ts";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A real store, pipeline and log, wired like the host, with a tiny in-memory tail so that reads go to the store. */
async function core(highWater?: number): Promise<{
  store: Store;
  pipeline: Pipeline;
  log: HostLog;
  metrics: ReturnType<typeof createMetrics>;
}> {
  const dir = await tempDir();
  const metrics = createMetrics();
  const context = { name: "libsql", cluster: "test", logger: silentLogger, metrics };
  const store = libsql.create({ url: `file:${join(dir, "kubemeta.db")}` } as never, context);
  const state = await store.start();
  const log = createLog({
    store,
    epoch: state.epoch,
    head: state.head,
    oldest: state.oldest,
    logger: silentLogger,
    metrics,
    tailSize: 1,
    whole: true,
  });
  const pipeline = createPipeline({
    store,
    state,
    digests: await store.digests(),
    logger: silentLogger,
    metrics,
    onCommit: (updates) => log.append(updates),
    highWater,
  });
  cleanups.push(async () => {
    await pipeline.stop();
    await store.stop();
    await rm(dir, { recursive: true, force: true });
  });
  return { store, pipeline, log, metrics };
}

describe("backpressure", () => {
  test("a full queue holds the source until a commit takes what is pending, not until it is committed", async () => {
    const { pipeline, log } = await core(5);
    const order: string[] = [];
    const applied = [1, 2, 3, 4, 5].map((i) =>
      pipeline.apply("pods", "ADDED", rawPod(`web-${i}`, { node: "n1", rv: String(i) })),
    );
    const room = applied.at(-1);
    expect(room).toBeInstanceOf(Promise);
    void room!.then(() => order.push(`room at head ${log.head()}`));
    await pipeline.flush();
    order.push(`committed through ${log.head()}`);
    // The source parses its next changes while the store writes these.
    expect(order).toEqual(["room at head 0", "committed through 5"]);
  });
});

describe("retention horizon", () => {
  test(
    "a store read while a prune is under way " + "is not told it is complete when the prune took what it needs",
    async () => {
      const { store, pipeline, log } = await core();
      // 20 changes of one pod: versions 1..20, only the last is the pod's current state.
      for (let i = 1; i <= 20; i++)
        pipeline.apply("pods", "MODIFIED", rawPod("web-1", { node: "n1", rv: String(i), labels: { step: String(i) } }));
      await pipeline.flush();
      expect(log.head()).toBe(20);

      // The host calls log.setOldest only once the whole prune is over; the store hides
      // pruned updates chunk by chunk before that. This is the moment in between.
      expect(await store.prune({ maxAgeMs: 0, maxUpdates: 5 })).toMatchObject({ oldest: 16 });
      expect(log.oldest()).toBe(1);

      for (const stream of [ALL, "node/n1"]) {
        const read = log.read({ stream, after: 3, limit: 100 });
        await expect(read).rejects.toBeInstanceOf(BehindRetentionError);
        await expect(read).rejects.toMatchObject({ after: 3, oldest: 16 });
      }
      expect(log.oldest()).toBe(16);
      // A reader at the horizon still reads on.
      expect((await log.read({ stream: "node/n1", after: 15, limit: 100 })).map((u) => u.version)).toEqual([
        16, 17, 18, 19, 20,
      ]);
    },
  );

  test("a follower behind a prune under way gets BehindRetentionError, not a silent jump", async () => {
    const { store, pipeline, log } = await core();
    for (let i = 1; i <= 20; i++)
      pipeline.apply("pods", "MODIFIED", rawPod("web-1", { node: "n1", rv: String(i), labels: { step: String(i) } }));
    await pipeline.flush();
    await store.prune({ maxAgeMs: 0, maxUpdates: 5 });
    const seen: number[] = [];
    const follow = (async () => {
      for await (const batch of log.follow({ stream: "node/n1", after: 0, signal: AbortSignal.timeout(2_000) }))
        seen.push(...batch.map((u) => u.version));
    })();
    await expect(follow).rejects.toMatchObject({ name: "BehindRetentionError", oldest: 16 });
    expect(seen).toEqual([]);
  });
});

describe("bad input", () => {
  test(
    "a change whose kind, uid or resourceVersion is not a string is skipped and counted, " +
      "and does not wedge the commits behind it",
    async () => {
      const { pipeline, log, metrics } = await core();
      const bad = [
        { ...rawPod("odd-uid"), metadata: { name: "odd-uid", uid: { nested: true }, resourceVersion: "1" } },
        { ...rawPod("odd-kind"), kind: 42 },
        { ...rawPod("odd-rv"), metadata: { name: "odd-rv", uid: "uid-odd-rv", resourceVersion: { v: 1 } } },
      ];
      for (const object of bad) pipeline.apply("pods", "ADDED", object as never);
      pipeline.apply("pods", "ADDED", rawPod("web-1", { node: "n1", rv: "7" }));
      const flushed = await Promise.race([
        pipeline.flush().then(() => "flushed"),
        Bun.sleep(3_000).then(() => "wedged"),
      ]);
      expect(flushed).toBe("flushed");
      expect((await log.read({ stream: ALL, after: 0, limit: 10 })).map((u) => u.name)).toEqual(["odd-rv", "web-1"]);
      expect(pipeline.resumePoint("pods")).toBe("7");
      expect(metrics.render()).toMatch(/kubemeta_changes_rejected_total\{reason="[a-z_]+"\} 1/);
    },
  );
});

describe("config", () => {
  test("a retention interval of 0 is refused, naming its path (it would prune back to back, not never)", async () => {
    const { resolveConfig, ConfigError } = await import("../host/config.ts");
    const resolving = resolveConfig(
      { store: { type: "libsql", retention: { interval: 0 } } },
      { baseDir: "/tmp", registry: builtins },
    );
    await expect(resolving).rejects.toBeInstanceOf(ConfigError);
    await expect(resolving).rejects.toThrow(/^store\.retention\.interval: /);
  });
});

test("a pipeline given up (its replica deposed) exports no count of tracked objects any more", async () => {
  const { pipeline, metrics } = await core();
  pipeline.apply("pods", "ADDED", rawPod("web-1", { node: "n1", rv: "1" }));
  await pipeline.flush();
  expect(metrics.render()).toContain("\nkubemeta_tracked_objects 1\n");
  pipeline.abandon();
  expect(metrics.render()).not.toMatch(/^kubemeta_tracked_objects /m);
});
