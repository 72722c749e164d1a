/**
 * The `file:` store's writer thread (plugins/stores/libsql/writer.ts): plain results, errors worded
 * as SQLite words them, a batch as one transaction however it is sliced, and a thread that dies
 * failing what waits on it instead of hanging it.
 *
 * Results are awaited, then checked: `expect(promise).rejects` blocks Bun's event loop without
 * delivering worker replies (tests/bun-worker.test.ts).
 */
import { describe, expect, test } from "bun:test";
import type { InValue } from "@libsql/client";
import { mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import {
  startWriterThread,
  type WriterReply,
  type WriterRequest,
  type WriterThread,
} from "../plugins/stores/libsql/writer.ts";
import { pack, unpack } from "../plugins/stores/libsql/packed-args.ts";
import { waitFor } from "../testing/index.ts";
import { batch, run, storeSandbox } from "./store-libsql-setup.ts";

const { newDir, makeStore } = storeSandbox();

const failure = (call: Promise<unknown>) =>
  call.then(
    () => undefined,
    (error: unknown) => error as Error,
  );

async function writerOnNewFile(): Promise<WriterThread> {
  const dir = newDir();
  await mkdir(dir, { recursive: true });
  return startWriterThread(join(dir, "w.db"), 1_000);
}

describe("the writer thread", () => {
  test("drives the very libsql binding @libsql/client runs on: one SQLite in the process, so its locks hold", () => {
    // Two copies of SQLite in one process would each keep their own POSIX lock bookkeeping, and closing a file in one
    // drops the other's locks: readers (the client) and the writer (the binding) must share one.
    const writerDir = join(import.meta.dir, "../plugins/stores/libsql");
    const clientDir = dirname(Bun.resolveSync("@libsql/client", writerDir));
    expect(Bun.resolveSync("libsql", writerDir)).toBe(Bun.resolveSync("libsql", clientDir));
  });

  test("rows come back as plain records by column name, with rowsAffected", async () => {
    const writer = await writerOnNewFile();
    try {
      await writer.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, data BLOB)");
      const [inserted] = await writer.batch(
        [{ sql: "INSERT INTO t (name, data) VALUES (?, ?), (?, ?)", args: ["a", new Uint8Array([1, 2]), "b", null] }],
        "write",
      );
      expect(inserted!.rowsAffected).toBe(2);
      const { rows } = await writer.execute({
        sql: "SELECT id, name, data FROM t WHERE id >= ? ORDER BY id",
        args: [1],
      });
      expect(rows.map((row) => Object.getPrototypeOf(row))).toEqual([Object.prototype, Object.prototype]);
      expect(rows[0]).toEqual({ id: 1, name: "a", data: new Uint8Array([1, 2]).buffer });
      expect(rows[1]).toEqual({ id: 2, name: "b", data: null });
    } finally {
      await writer.close();
    }
  });

  test("arguments cross the thread exactly: long texts, unicode, numbers at their limits, -0, blobs", async () => {
    // Statements cross packed (small arguments as one JSON text, long strings as they are; packed-args.ts): what JSON
    // cannot give back exactly must cross as it is.
    const long = `{"kind":"Pod","name":"${'é\u2028"\\'.repeat(100)}"}`;
    const values = [
      long,
      "short",
      "",
      2 ** 53 - 1,
      -(2 ** 53),
      0.1,
      1e-300,
      -0,
      Number.POSITIVE_INFINITY,
      null,
      `${long}x`,
    ];
    const cases = [values, [...values, 12n], [...values, new Uint8Array([0, 255])], [...values, true]];
    for (const args of cases) {
      const posted = pack({ sql: "INSERT", args });
      expect(unpack(posted)).toEqual({ sql: "INSERT", args });
    }
    const packed = (args: InValue[]) => Object.hasOwn(pack({ sql: "INSERT", args }) as object, "small");
    expect(packed([long, 1, null])).toBe(true);
    expect(packed([long, -0])).toBe(false);

    const writer = await writerOnNewFile();
    try {
      await writer.execute("CREATE TABLE t (i INTEGER PRIMARY KEY, v ANY) STRICT");
      const rows = values.map((value, i) => [i, value]);
      await writer.batch(
        [{ sql: `INSERT INTO t VALUES ${rows.map(() => "(?, ?)").join(",")}`, args: rows.flat() }],
        "write",
      );
      const stored = (await writer.execute("SELECT v FROM t ORDER BY i")).rows.map((row) => row.v);
      expect(stored).toEqual(values);
    } finally {
      await writer.close();
    }
  });

  test("errors keep SQLite's message; a batch sliced across messages is still one transaction", async () => {
    const writer = await writerOnNewFile();
    try {
      expect((await failure(writer.execute("SELECT * FROM missing")))?.message).toContain("no such table: missing");
      await writer.execute("CREATE TABLE t (x INTEGER NOT NULL)");
      // Thousands of arguments: posted in several slices before the last one runs them all.
      const inserts = Array.from({ length: 20 }, (_, i) => ({ sql: "INSERT INTO t VALUES (?)", args: [i] }));
      const many = Array.from({ length: 3_000 }, (_, i) => i);
      const wide = { sql: `INSERT INTO t VALUES ${many.map(() => "(?)").join(",")}`, args: many };
      const refused = await failure(
        writer.batch([...inserts, wide, wide, { sql: "INSERT INTO t VALUES (?)", args: [null] }], "write"),
      );
      expect(refused?.message).toContain("NOT NULL constraint failed: t.x");
      expect((await writer.execute("SELECT count(*) AS n FROM t")).rows[0]!.n).toBe(0);

      await writer.batch([...inserts, wide, wide], "write");
      expect((await writer.execute("SELECT count(*) AS n FROM t")).rows[0]!.n).toBe(6_020);
    } finally {
      await writer.close();
    }
  });

  test("a batch's slices run as they come; a request between them waits for the batch and never joins it", async () => {
    const dir = newDir();
    await mkdir(dir, { recursive: true });
    // The worker's own protocol, so that a request lands between two slices for sure.
    const worker = new Worker(new URL("../plugins/stores/libsql/writer-worker.ts", import.meta.url).href);
    const replies: WriterReply[] = [];
    worker.addEventListener("message", (event: MessageEvent<WriterReply>) => void replies.push(event.data));
    const post = (request: WriterRequest) => worker.postMessage(request);
    try {
      post({ id: 1, type: "open", path: join(dir, "w.db"), busyTimeoutMs: 1_000 });
      post({ id: 2, type: "execute", statement: "CREATE TABLE t (x INTEGER NOT NULL)" });
      post({ id: 3, type: "part", statements: [{ sql: "INSERT INTO t VALUES (?)", args: [1] }] });
      // Saved between two slices of a batch that fails: it must hold, and the batch leave nothing.
      post({ id: 4, type: "execute", statement: { sql: "INSERT INTO t VALUES (?)", args: [2] } });
      post({ id: 3, type: "batch", statements: [{ sql: "INSERT INTO t VALUES (?)", args: [null] }] });
      post({ id: 5, type: "execute", statement: "SELECT x FROM t" });
      await waitFor(() => replies.length === 5, 5_000, "five replies");
      expect(replies.map((reply) => reply.id)).toEqual([1, 2, 3, 4, 5]);
      expect("error" in replies[2]! && replies[2].error.message).toContain("NOT NULL constraint failed: t.x");
      expect(replies[4]).toEqual({ id: 5, results: [{ rows: [{ x: 2 }], rowsAffected: 0 }] });
    } finally {
      post({ id: 6, type: "close" });
      await waitFor(() => replies.length === 6, 5_000, "the close reply");
      worker.terminate();
    }
  });

  test("a thread that fails fails the requests waiting on it; the next gets a new thread, set up again", async () => {
    const dir = newDir();
    await mkdir(dir, { recursive: true });
    const setups: boolean[] = [];
    const writer = await startWriterThread(join(dir, "w.db"), 1_000, async (execute, restarted) => {
      setups.push(restarted);
      await execute("PRAGMA cache_size = -1234");
    });
    await writer.batch(["CREATE TABLE t (x)", { sql: "INSERT INTO t VALUES (?)", args: [1] }], "write");
    const before = writer.execute("SELECT 1 AS one");
    writer.crash();
    const waiting = Array.from({ length: 3 }, () => failure(writer.batch(["SELECT 1"], "write")));
    expect((await before).rows).toEqual([{ one: 1 }]);
    for (const error of await Promise.all(waiting)) expect(error?.message).toMatch(/writer thread failed: .*crash/);

    // What was committed is there, the connection is set up as the first was, and it writes.
    await writer.batch([{ sql: "INSERT INTO t VALUES (?)", args: [2] }], "write");
    expect((await writer.execute("SELECT x FROM t ORDER BY x")).rows).toEqual([{ x: 1 }, { x: 2 }]);
    expect((await writer.execute("PRAGMA cache_size")).rows).toEqual([{ cache_size: -1234 }]);
    expect(setups).toEqual([false, true]);
    await writer.close();
    await writer.close();
    expect((await failure(writer.execute("SELECT 1")))?.message).toMatch(/writer is closed/);
  });

  test("a thread that dies inside a batch leaves neither its writes nor its lock to the next", async () => {
    const dir = newDir();
    await mkdir(dir, { recursive: true });
    const path = join(dir, "w.db");
    const setup = await startWriterThread(path, 1_000);
    await setup.execute("PRAGMA journal_mode = WAL");
    await setup.execute("CREATE TABLE t (x INTEGER NOT NULL)");
    await setup.close();
    // The worker's own protocol, so that the crash comes while the batch's transaction is open for sure.
    const worker = new Worker(new URL("../plugins/stores/libsql/writer-worker.ts", import.meta.url).href);
    const replies: WriterReply[] = [];
    worker.addEventListener("message", (event: MessageEvent<WriterReply>) => void replies.push(event.data));
    const closed = new Promise((resolve) => worker.addEventListener("close", resolve));
    const post = (request: WriterRequest) => worker.postMessage(request);
    post({ id: 1, type: "open", path, busyTimeoutMs: 1_000 });
    post({ id: 2, type: "part", statements: [{ sql: "INSERT INTO t VALUES (?)", args: [1] }] });
    post({ id: 3, type: "crash" });
    await closed;
    expect(replies).toEqual([{ id: 1, results: [] }]);

    // A lock left behind would make this wait out the busy timeout and fail with "database is locked".
    const next = await startWriterThread(path, 1_000);
    try {
      await next.batch([{ sql: "INSERT INTO t VALUES (?)", args: [2] }], "write");
      expect((await next.execute("SELECT x FROM t")).rows).toEqual([{ x: 2 }]);
    } finally {
      await next.close();
    }
  });

  test("a new thread that cannot be set up fails its request, and the next request tries again", async () => {
    const dir = newDir();
    await mkdir(dir, { recursive: true });
    let refuse = false;
    const writer = await startWriterThread(join(dir, "w.db"), 1_000, async (execute) => {
      if (refuse) throw new Error("setup refused");
      await execute("SELECT 1");
    });
    refuse = true;
    writer.crash();
    // Requests the old thread took fail with its crash; once it is gone, the new thread's setup fails them.
    await waitFor(
      async () => (await failure(writer.execute("SELECT 0")))?.message === "setup refused",
      5_000,
      "a request failing with the setup's error",
    );
    refuse = false;
    expect((await writer.execute("SELECT 2 AS two")).rows).toEqual([{ two: 2 }]);
    await writer.close();
  });

  test("an open error keeps libSQL's wording", async () => {
    const opened = await failure(startWriterThread(join(newDir(), "no", "such", "dir", "w.db"), 1_000));
    expect(opened?.message).toMatch(/: 14"?\)?$/);
  });
});

describe("the store around it", () => {
  test("stop() is safe before start() and twice; a stopped store refuses commits instead of hanging", async () => {
    const idle = makeStore(newDir());
    await idle.stop();
    await idle.stop();

    const store = makeStore(newDir());
    await store.start();
    await store.commit(batch(run(1, 3)));
    await Promise.all([store.stop(), store.stop()]);
    await store.stop();
    expect((await failure(store.commit(batch(run(4, 4)))))?.message).toMatch(/not started/);
  });

  test("a commit of many updates runs while the event loop keeps ticking", async () => {
    const store = makeStore(newDir());
    await store.start();
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const started = performance.now();
    await store.commit(batch(run(1, 6_000)));
    const elapsed = performance.now() - started;
    clearInterval(timer);
    // Only the statements are made and posted on this thread; the old in-thread writer ticked a few times at most.
    expect(ticks).toBeGreaterThan(Math.min(10, elapsed / 20));
    expect((await store.position()).head).toBe(6_000);
  });
});
