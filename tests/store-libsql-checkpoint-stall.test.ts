/**
 * The WAL checkpoint worker late, not dead (a machine stalled on memory pressure, every thread waiting on page
 * reclaim): once it answers again, commits are bounded by it again rather than by the writer's own checkpoints.
 */
import { expect, test } from "bun:test";
import { createClient } from "@libsql/client";
import { statSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { startCheckpointer } from "../plugins/stores/libsql/checkpointer.ts";
import { createLogger } from "../host/logger.ts";
import { storeSandbox } from "./store-libsql-setup.ts";
import { waitFor } from "../testing/index.ts";

const { newDir } = storeSandbox();
const RESTART_BYTES = 1_000_000;

test("a checkpoint worker that answers after the commit stopped waiting for it is used again", async () => {
  const dir = newDir();
  await mkdir(dir, { recursive: true });
  const url = `file:${join(dir, "k.db")}`;
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
    walPath: `${join(dir, "k.db")}-wal`,
    // The worker's RESTART waits this long for readers: longer than the commit waits for its answer.
    busyTimeoutMs: 3_000,
    restartBytes: RESTART_BYTES,
    replyTimeoutMs: 300,
    logger: createLogger({ level: "debug", write: (line) => void logged.push(JSON.parse(line)) }),
  });
  // A reader whose snapshot holds the WAL: the worker's RESTART waits inside libSQL, as a stalled thread would.
  const reader = createClient({ url });
  try {
    await fillWal();
    const held = await reader.transaction("read");
    await held.execute("SELECT count(*) FROM t");
    await checkpointer.bound();
    held.close();
    // The worker's RESTART ends once the reader is gone: every commit after its late answer is bounded by it again.
    await waitFor(
      async () => {
        await fillWal();
        await checkpointer.bound();
        return said("WAL restarted").length > 0;
      },
      3_000,
      "a commit to restart the WAL through the worker",
    );
    const silent = "WAL checkpoint worker does not answer; the writer checkpoints by itself until it answers again";
    expect(said(silent).map((line) => line.level)).toEqual(["warn"]);
    expect(said("WAL checkpoint worker answers again").map((line) => line.level)).toEqual(["info"]);
    const walBytes = statSync(`${join(dir, "k.db")}-wal`).size;
    await writer.execute("INSERT INTO t VALUES (1)");
    // Restarted: the next commit writes the WAL from its start.
    expect(statSync(`${join(dir, "k.db")}-wal`).size).toBe(walBytes);
  } finally {
    await checkpointer.stop();
    reader.close();
    writer.close();
  }
});
