/**
 * sdk/resume.ts: whether a reader can go on from its position, or why it starts over, as SSE, NATS replay and
 * /v1/updates all ask it, over a real committed log and libsql store.
 */
import { expect, test } from "bun:test";
import { createLog, type HostLog } from "../core/committed-log.ts";
import { silentLogger } from "../host/logger.ts";
import { createMetrics } from "../host/metrics.ts";
import { AHEAD_WAIT_MS, checkResumePoint, isStoreUnreadable, resetReason } from "../sdk/resume.ts";
import type { Metrics } from "../sdk/telemetry.ts";
import { batch, run, storeSandbox, update } from "./store-libsql-setup.ts";
import type { Store } from "../sdk/contract.ts";

const { newDir, makeStore } = storeSandbox("file");

interface Setup {
  store: Store;
  log: HostLog;
  epoch: string;
  metrics: Metrics;
}

/** Versions 1..30 of three objects on `shared`, all but the last 10 pruned, as the leader's retention leaves it. */
async function prunedLog(): Promise<Setup> {
  const store = makeStore(newDir());
  await store.start();
  const { epoch } = await store.lead();
  await store.commit(batch(run(1, 30, (version) => ({ uid: `uid-${version % 3}`, stream: "shared" }))));
  const metrics = createMetrics();
  const log = createLog({ store, epoch, head: 30, oldest: 1, whole: true, logger: silentLogger, metrics });
  const { oldest } = await store.prune({ maxAgeMs: 0, maxUpdates: 10 });
  log.setOldest(oldest, await store.horizons!());
  return { store, log, epoch, metrics };
}

const resetsCounted = (metrics: Metrics, stream: string) =>
  Number(new RegExp(`kubemeta_reader_resets_total\\{stream="${stream}"\\} (\\d+)`).exec(metrics.render())?.[1] ?? 0);

test("a position of this epoch, at or after the stream's horizon and not past the head, can go on", async () => {
  const { log, epoch } = await prunedLog();
  for (const version of [log.horizon("all"), 25, 30]) {
    expect(resetReason(log, "all", { epoch, version })).toBeUndefined();
    expect(await checkResumePoint(log, "all", { epoch, version })).toBeUndefined();
  }
});

test("no position, or one of another epoch: the reader starts over at once", async () => {
  const { log, epoch } = await prunedLog();
  expect(await checkResumePoint(log, "all", undefined)).toBe("no-resume-point");
  const started = performance.now();
  // Another store's version, however far on, is never waited for.
  expect(await checkResumePoint(log, "all", { epoch: `${epoch}-old`, version: 1_000 })).toBe("other-epoch");
  expect(performance.now() - started).toBeLessThan(AHEAD_WAIT_MS / 2);
});

test("behind the stream's horizon: the reader starts over, counted by the log as every such reader", async () => {
  const { log, epoch, metrics } = await prunedLog();
  const horizon = log.horizon("shared");
  expect(horizon).toBeGreaterThan(0);
  const behind = { epoch, version: horizon - 1 };
  // Told without a read, so not counted: the NATS responder counts each reader it answers.
  expect(resetReason(log, "shared", behind)).toBe("behind-retention");
  expect(resetsCounted(metrics, "shared")).toBe(0);
  expect(await checkResumePoint(log, "shared", behind)).toBe("behind-retention");
  expect(resetsCounted(metrics, "shared")).toBe(1);
});

test("ahead of the head: waited for, and the reader goes on once the log gets there", async () => {
  const { store, log, epoch } = await prunedLog();
  const ahead = { epoch, version: 31 };
  expect(resetReason(log, "all", ahead)).toBe("ahead-of-log");
  const answer = checkResumePoint(log, "all", ahead);
  await Bun.sleep(50);
  const next = update(31, { uid: "uid-1" });
  await store.commit(batch([next]));
  log.append([next]);
  expect(await answer).toBeUndefined();
});

test("ahead of the head and staying there: it starts over after AHEAD_WAIT_MS, sooner if it goes away", async () => {
  const { log, epoch } = await prunedLog();
  const ahead = { epoch, version: 31 };
  let started = performance.now();
  expect(await checkResumePoint(log, "all", ahead)).toBe("ahead-of-log");
  expect(performance.now() - started).toBeGreaterThanOrEqual(AHEAD_WAIT_MS - 50);
  started = performance.now();
  expect(await checkResumePoint(log, "all", ahead, AbortSignal.timeout(50))).toBe("ahead-of-log");
  expect(performance.now() - started).toBeLessThan(AHEAD_WAIT_MS / 2);
});

test("ahead of a log behind a store it cannot read: come back later (StoreUnreadableError), no reset", async () => {
  const { log, epoch } = await prunedLog();
  log.setBehindStore(true);
  const error = await checkResumePoint(log, "all", { epoch, version: 31 }, AbortSignal.timeout(50)).catch((e) => e);
  expect(isStoreUnreadable(error)).toBe(true);
  // What it holds is still answered as always: the log cannot read the store, but what it has it has.
  expect(await checkResumePoint(log, "all", { epoch, version: 30 })).toBeUndefined();
  log.setBehindStore(false);
  expect(await checkResumePoint(log, "all", { epoch, version: 31 }, AbortSignal.timeout(50))).toBe("ahead-of-log");
});
