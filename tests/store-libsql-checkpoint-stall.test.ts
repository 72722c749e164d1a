/**
 * The WAL checkpoint worker late, not dead (a machine stalled on memory pressure, every thread waiting on page
 * reclaim): once it answers again, commits are bounded by it again rather than by the writer's own checkpoints.
 * Dead (an uncaught exception): a new worker takes over, unless too many died in a row.
 */
import { expect, test } from "bun:test";
import { createClient, type Client } from "@libsql/client";
import { existsSync, statSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { startCheckpointer, type CheckpointerOptions } from "../plugins/stores/libsql/checkpointer.ts";
import { releaseClosedConnections } from "../plugins/stores/libsql/release.ts";
import { createLogger } from "../host/logger.ts";
import { storeSandbox } from "./store-libsql-setup.ts";
import { waitFor } from "../testing/index.ts";

const { newDir } = storeSandbox();
const RESTART_BYTES = 1_000_000;
const SILENT = "WAL checkpoint worker does not answer; the writer checkpoints by itself until it answers again";
const NOT_STOPPED = "WAL checkpoint worker did not stop; the WAL may stay beside the file until the next start";

/** A WAL-mode file, its writer, and a checkpointer bounding it at RESTART_BYTES; what it logs is kept. */
async function checkpointed(options: Partial<CheckpointerOptions>) {
  const dir = newDir();
  await mkdir(dir, { recursive: true });
  const url = `file:${join(dir, "k.db")}`;
  const walPath = `${join(dir, "k.db")}-wal`;
  // Its commits wait for the worker's RESTART, which holds the write lock, as the store's writer's do.
  const writer = createClient({ url, timeout: 5_000 });
  await writer.execute("PRAGMA journal_mode = WAL");
  await writer.execute("PRAGMA wal_autocheckpoint = 0");
  await writer.execute("CREATE TABLE t (x)");
  /** Past twice the bound by the WAL file's size alone, whatever the last checkpoint counted. */
  const fillWal = () =>
    writer.execute(
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2200) " +
        "INSERT INTO t SELECT randomblob(1000) FROM n",
    );
  const logged: { msg: string; level: string }[] = [];
  const said = (msg: string) => logged.filter((line) => line.msg === msg);
  const checkpointer = startCheckpointer({
    url,
    walPath,
    busyTimeoutMs: 3_000,
    restartBytes: RESTART_BYTES,
    logger: createLogger({ level: "debug", write: (line) => void logged.push(JSON.parse(line)) }),
    ...options,
  });
  /** Waits until a commit past the bound restarts the WAL through a worker (its `WAL restarted` line). */
  const restartedByWorker = (what: string) =>
    waitFor(
      async () => {
        await fillWal();
        await checkpointer.bound();
        return said("WAL restarted").length > 0;
      },
      3_000,
      what,
    );
  /** Past the bound, the WAL in a reader's snapshot: the worker's RESTART waits for it inside libSQL. */
  async function holdWal(reader: Client) {
    await fillWal();
    const held = await reader.transaction("read");
    await held.execute("SELECT count(*) FROM t");
    return held;
  }
  return { url, walPath, writer, fillWal, holdWal, said, checkpointer, restartedByWorker };
}

test("a checkpoint worker that answers after the commit stopped waiting for it is used again", async () => {
  // The worker's RESTART waits 3 s for readers: longer than the commit waits for its answer.
  const { url, walPath, writer, holdWal, said, checkpointer, restartedByWorker } = await checkpointed({
    replyTimeoutMs: 300,
  });
  // A reader whose snapshot holds the WAL: the worker's RESTART waits inside libSQL, as a stalled thread would.
  const reader = createClient({ url });
  try {
    const held = await holdWal(reader);
    await checkpointer.bound();
    held.close();
    // The worker's RESTART ends once the reader is gone: every commit after its late answer is bounded by it again.
    await restartedByWorker("a commit to restart the WAL through the worker");
    expect(said(SILENT).map((line) => line.level)).toEqual(["warn"]);
    expect(said("WAL checkpoint worker answers again").map((line) => line.level)).toEqual(["info"]);
    const walBytes = statSync(walPath).size;
    await writer.execute("INSERT INTO t VALUES (1)");
    // Restarted: the next commit writes the WAL from its start.
    expect(statSync(walPath).size).toBe(walBytes);
  } finally {
    await checkpointer.stop();
    reader.close();
    writer.close();
  }
});

test("a stop waits for a silent checkpoint worker: the writer's close folds the WAL in and removes it", async () => {
  const { url, walPath, writer, holdWal, said, checkpointer } = await checkpointed({ replyTimeoutMs: 300 });
  const reader = createClient({ url });
  const held = await holdWal(reader);
  await checkpointer.bound();
  expect(said(SILENT)).toHaveLength(1);
  // Stopped as the store's close does it: reads over, the checkpointer, then the writer, the file's last connection.
  held.close();
  reader.close();
  await checkpointer.stop();
  writer.close();
  await releaseClosedConnections();
  expect(existsSync(walPath)).toBe(false);
  const reopened = createClient({ url });
  try {
    expect((await reopened.execute("SELECT count(*) FROM t")).rows[0]?.[0]).toBe(2200);
  } finally {
    reopened.close();
  }
});

test("a checkpoint worker silent past the stop's wait is left to stop by itself, and that is said", async () => {
  const { url, writer, holdWal, said, checkpointer } = await checkpointed({ replyTimeoutMs: 300 });
  const reader = createClient({ url });
  try {
    const held = await holdWal(reader);
    await checkpointer.bound();
    // The reader holds the worker's RESTART (up to 3 s) past the stop's wait.
    await checkpointer.stop();
    held.close();
    expect(said(NOT_STOPPED)).toMatchObject([{ level: "warn", waitedMs: 300 }]);
  } finally {
    reader.close();
    writer.close();
  }
});

test("a stop given a deadline gives a checkpoint worker that does not answer up by it, and says so", async () => {
  const { url, writer, holdWal, said, checkpointer } = await checkpointed({ busyTimeoutMs: 8_000 });
  const reader = createClient({ url });
  try {
    const held = await holdWal(reader);
    // The reader holds the worker's RESTART for 8 s, as a stalled machine would hold the thread.
    const restarting = checkpointer.bound();
    // What the host leaves the store's close: 200 ms.
    const started = Date.now();
    await checkpointer.stop(started + 200);
    const tookMs = Date.now() - started;
    held.close();
    await restarting;
    expect(tookMs).toBeLessThan(2_000);
    expect(said(NOT_STOPPED)).toMatchObject([{ level: "warn" }]);
  } finally {
    reader.close();
    writer.close();
  }
});

test("a checkpoint worker that died is replaced: commits are bounded by the new one", async () => {
  const { writer, said, checkpointer, restartedByWorker } = await checkpointed({ workersThatDie: 1 });
  try {
    const replaced = "WAL checkpoint worker failed; a new one takes over";
    const givenUp = "WAL checkpoint worker failed; the writer checkpoints by itself from now on";
    await waitFor(() => said(replaced).length + said(givenUp).length > 0, 3_000, "the worker to die");
    await restartedByWorker("a commit to restart the WAL through a new worker");
    expect(said(givenUp)).toEqual([]);
  } finally {
    await checkpointer.stop();
    writer.close();
  }
});

test("a dead checkpoint worker keeps no connection open: the writer's close folds the WAL in, removes it", async () => {
  const { walPath, writer, fillWal, said, checkpointer } = await checkpointed({ workersThatDie: 1 });
  await fillWal();
  await waitFor(() => said("WAL checkpoint worker failed; a new one takes over").length > 0, 3_000, "the death");
  await checkpointer.stop();
  writer.close();
  await releaseClosedConnections();
  expect(existsSync(walPath)).toBe(false);
});

test("checkpoint workers that die in a row are replaced three times, then given up", async () => {
  const { writer, fillWal, said, checkpointer } = await checkpointed({ workersThatDie: 5 });
  try {
    const givenUp = "WAL checkpoint worker failed; the writer checkpoints by itself from now on";
    await waitFor(() => said(givenUp).length > 0, 5_000, "the checkpointer to give up");
    expect(said("WAL checkpoint worker failed; a new one takes over")).toMatchObject([
      { level: "error", inMs: 250 },
      { level: "error", inMs: 500 },
      { level: "error", inMs: 1_000 },
    ]);
    // Not waited for: the commit goes on past the bound at once.
    await fillWal();
    await checkpointer.bound();
    expect(said("WAL restarted")).toEqual([]);
  } finally {
    await checkpointer.stop();
    writer.close();
  }
});
