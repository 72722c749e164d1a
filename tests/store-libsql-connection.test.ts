/** The libsql store's config validation and the connection pitfalls of @libsql/client on `file:`. */
import { describe, expect, test } from "bun:test";
import * as v from "valibot";
import { createClient } from "@libsql/client";
import Database from "libsql";
import { existsSync, statSync } from "node:fs";
import { copyFile, mkdir, readdir, readlink } from "node:fs/promises";
import { join } from "node:path";
import libsql from "../plugins/stores/libsql.ts";
import { BUSY_TIMEOUT_MS, filePathOf, openConnections, type Connections } from "../plugins/stores/libsql/connection.ts";
import { startCheckpointer } from "../plugins/stores/libsql/checkpointer.ts";
import { migrate } from "../plugins/stores/libsql/schema.ts";
import { createLogger, silentLogger } from "../host/logger.ts";
import { createMetrics } from "../host/metrics.ts";
import { batch, run, storeSandbox } from "./store-libsql-setup.ts";
import { waitFor } from "../testing/index.ts";

const { newDir, makeStore, urlOf } = storeSandbox();
/** A file's size; 0 when it does not exist (a WAL folded in and deleted). */
const sizeOf = (path: string) => statSync(path, { throwIfNoEntry: false })?.size ?? 0;

describe("config", () => {
  test("defaults to file:./data/kubemeta.db and accepts remote URLs with a token", () => {
    expect(v.parse(libsql.schema, {})).toEqual({ url: "file:./data/kubemeta.db", timeout: 60_000 });
    for (const url of [
      "libsql://db-org.turso.io",
      "https://db.example.com",
      "http://127.0.0.1:8080",
      "wss://db.example.com",
      "file:///var/lib/k.db",
    ]) {
      expect(v.safeParse(libsql.schema, { url, authToken: "t" }).success).toBe(true);
    }
    expect(v.safeParse(libsql.schema, libsql.example).success).toBe(true);
  });

  test("rejects other schemes and unknown keys with a clear message", () => {
    const bad = v.safeParse(libsql.schema, { url: "postgres://db:5432/k" });
    expect(bad.success).toBe(false);
    expect(bad.issues?.[0]?.message).toContain("use file:<path>, libsql://<host>");
    expect(v.safeParse(libsql.schema, { url: "libsql://" }).success).toBe(false);
    expect(v.safeParse(libsql.schema, { url: "file:" }).success).toBe(false);
    expect(v.safeParse(libsql.schema, { url: "file:x.db", batchSize: 10 }).success).toBe(false);
  });

  test("a file: URL with a query, a fragment, another host or :memory: is refused, saying how to write it", () => {
    const messageOf = (url: string) => v.safeParse(libsql.schema, { url }).issues?.[0]?.message;
    // libSQL refuses the first two at once, and the readers' client the last three once the writer made the file.
    expect(messageOf("file:/var/lib/k.db?mode=ro")).toMatch(/^a file: url takes no query \(\?mode\): .* %3F$/);
    // A value may be a token: the keys alone are named.
    expect(messageOf("file:k.db?tls=0&authToken=s3cret")).toMatch(/^a file: url takes no query \(\?tls, \?authToken\)/);
    expect(messageOf("file:./data/k#1.db")).toBe(
      "a file: url takes no fragment (#1.db): write a # in a file's name as %23",
    );
    expect(messageOf("file://data/k.db")).toMatch(/^a file: url names a file on this host, not on "data"/);
    expect(messageOf("file:./100%.db")).toMatch(/percent-encoded .* %25$/);
    for (const url of ["file:./a\0b.db", "file:./a%00b.db"])
      expect(messageOf(url)).toBe(
        "a file: url's path holds a NUL character (written, or as %00), which no file name can",
      );
    // It failed at the open as `no such table: meta`: the readers' database was not the one migrated.
    expect(messageOf("file::memory:")).toMatch(/^a file: url names a file, and :memory: is none: .* tmpfs/);
    for (const url of ["file://localhost/abs/my%20k.db", "file:./what%3F%23.db", "file:k.db"])
      expect(messageOf(url)).toBeUndefined();
  });

  test("a file: URL refused creates nothing: neither its file nor its directory", async () => {
    const dir = newDir();
    const url = `file:${join(dir, "kubemeta.db")}?mode=ro`;
    const store = libsql.create(
      { url, timeout: 60_000 },
      { name: "libsql", cluster: "test", logger: silentLogger, metrics: createMetrics() },
    );
    await expect(store.start()).rejects.toThrow("unusable store url: a file: url takes no query (?mode)");
    await store.stop();
    expect(existsSync(dir)).toBe(false);
  });

  test("file URL paths", () => {
    expect(filePathOf("file:./data/k.db")).toBe("./data/k.db");
    expect(filePathOf("file:/abs/k.db")).toBe("/abs/k.db");
    expect(filePathOf("file:///abs/k.db")).toBe("/abs/k.db");
    expect(filePathOf("file://localhost/abs/my%20k.db")).toBe("/abs/my k.db");
  });
});

describe("libSQL file: pitfalls", () => {
  /** The first column: rows of the store's writer are plain records, named by column only. */
  const pragma = async (client: { execute(sql: string): Promise<{ rows: object[] }> }, name: string) =>
    Object.values((await client.execute(`PRAGMA ${name}`)).rows[0]!)[0];

  test(
    "the pitfall: UPDATE … FROM json_each scans every object, " + "an upsert fed by json_each looks each one up",
    async () => {
      const dir = newDir();
      await mkdir(dir, { recursive: true });
      const client = createClient({ url: `file:${join(dir, "plan.db")}` });
      try {
        await migrate(client);
        const plan = async (sql: string) =>
          (await client.execute({ sql: `EXPLAIN QUERY PLAN ${sql}`, args: ["[]"] })).rows.map((r) => String(r.detail));
        const rows = "json_each(?) AS f CROSS JOIN updates AS u ON u.version = f.value ->> 0";
        const update = await plan(
          `UPDATE objects SET node = u.node FROM ${rows} WHERE objects.kind = u.kind AND objects.uid = u.uid`,
        );
        expect(update.some((step) => step.startsWith("SCAN objects"))).toBe(true);
        const upsert = await plan(`INSERT INTO objects (kind, uid, version, digest)
        SELECT u.kind, u.uid, u.version, 0 FROM ${rows} WHERE true
        ON CONFLICT (kind, uid) DO UPDATE SET node = excluded.node WHERE objects.node IS NOT excluded.node`);
        expect(upsert.some((step) => step.startsWith("SCAN objects"))).toBe(false);
      } finally {
        client.close();
      }
    },
  );

  test(
    "the pitfall: a PRAGMA set with execute() is lost " + "on the connection opened while a transaction holds one",
    async () => {
      const dir = newDir();
      const url = `file:${join(dir, "plain.db")}`;
      await mkdir(dir, { recursive: true });
      const client = createClient({ url });
      try {
        await client.execute("PRAGMA synchronous = NORMAL");
        expect(await pragma(client, "synchronous")).toBe(1);
        const tx = await client.transaction("write");
        expect(await pragma(client, "synchronous")).toBe(2);
        await tx.rollback();
        await expect(client.batch(["PRAGMA synchronous = NORMAL"], "write")).rejects.toThrow(/inside a transaction/);
      } finally {
        client.close();
      }
    },
  );

  test(
    "the store's connections: one writer keeps synchronous=NORMAL, WAL persists, " +
      "every connection has busy_timeout",
    async () => {
      const dir = newDir();
      const url = `file:${join(dir, "k.db")}`;
      const c: Connections = await openConnections(url, silentLogger);
      try {
        expect(c.journalMode).toBe("wal");
        await c.writer.batch(["CREATE TABLE t (x)"], "write");
        await c.writer.batch(["INSERT INTO t VALUES (1)"], "write");
        expect(await pragma(c.writer, "synchronous")).toBe(1);
        expect(await pragma(c.writer, "busy_timeout")).toBe(BUSY_TIMEOUT_MS);

        const held = await c.reader.transaction("read");
        expect(await pragma(c.reader, "journal_mode")).toBe("wal");
        expect(await pragma(c.reader, "busy_timeout")).toBe(BUSY_TIMEOUT_MS);
        held.close();
      } finally {
        await c.close();
      }
    },
  );

  test(
    "the checkpoint worker copies the WAL into the file and, past its bound, restarts it under commits that never " +
      "pause, keeping its file (a truncated WAL grows again into fresh pages)",
    async () => {
      const dir = newDir();
      const path = join(dir, "k.db");
      const c = await openConnections(`file:${path}`, silentLogger);
      await c.close();
      const writer = createClient({ url: `file:${path}` });
      await writer.execute("PRAGMA wal_autocheckpoint = 0");
      await writer.execute("CREATE TABLE t (x)");
      const logged: string[] = [];
      const checkpointer = startCheckpointer({
        url: `file:${path}`,
        walPath: `${path}-wal`,
        busyTimeoutMs: 1000,
        restartBytes: 1_000_000,
        logger: createLogger({ level: "debug", write: (line) => void logged.push(JSON.parse(line).msg) }),
      });
      const walSize = () => sizeOf(`${path}-wal`);
      let rows = 0;
      let grown = 0;
      try {
        const deadline = Date.now() + 20_000;
        while (!logged.includes("WAL restarted") && Date.now() < deadline) {
          await checkpointer.bound();
          // A file once grown is never cut back: the restarted WAL is written from its start over the pages it has.
          expect(walSize()).toBeGreaterThanOrEqual(grown);
          await writer.execute({
            sql: "INSERT INTO t SELECT randomblob(1000) FROM json_each(?)",
            args: [JSON.stringify(Array(50).fill(0))],
          });
          rows += 50;
          grown = walSize();
          expect(grown).toBeLessThanOrEqual(2 * 1_000_000 + 100_000);
          // file: statements run on this thread: let the checkpointer's replies in, as the store's own writer does.
          await new Promise((resolve) => setImmediate(resolve));
        }
        expect(logged).toContain("WAL restarted");
        // Every row but the last statement's (written after the restart) was copied into the file.
        expect(statSync(path).size).toBeGreaterThan((rows - 50) * 1000);
        const size = walSize();
        await writer.execute("INSERT INTO t VALUES (1)");
        expect(walSize()).toBe(size);
        expect((await writer.execute("SELECT count(*) AS n FROM t")).rows[0]!.n).toBe(rows + 1);
      } finally {
        await checkpointer.stop();
        writer.close();
      }
    },
  );
});

describe("a stopped file: store is its file alone", () => {
  test("the quirk: libSQL's close() keeps the connection open while a statement it prepared lives", async () => {
    const dir = newDir();
    await mkdir(dir, { recursive: true });
    const live: Database.Statement[] = [];
    /** Writes 8 rows of 1 KB into a new WAL database, then closes it; with a prepared statement that stays alive. */
    const writeAndClose = (path: string, prepared: boolean) => {
      const db = new Database(path);
      db.exec("PRAGMA journal_mode = WAL");
      db.exec("CREATE TABLE t (x)");
      const insert = "INSERT INTO t SELECT randomblob(1000) FROM json_each(json_array(1, 2, 3, 4, 5, 6, 7, 8))";
      if (prepared) {
        const statement = db.prepare(insert);
        statement.run();
        live.push(statement);
      } else db.exec(insert);
      db.close();
    };
    const plain = join(dir, "plain.db");
    writeAndClose(plain, false);
    expect(sizeOf(`${plain}-wal`)).toBe(0);
    expect(sizeOf(plain)).toBeGreaterThan(8000);
    // libsql has no finalize(): close() leaves a connection whose statements live, to close once they are collected.
    const kept = join(dir, "kept.db");
    writeAndClose(kept, true);
    expect(sizeOf(`${kept}-wal`)).toBeGreaterThan(8000);
    expect(sizeOf(kept)).toBeLessThan(8000);
    expect(live).toHaveLength(1);
  });

  test.skipIf(process.platform !== "linux")(
    "a store started and stopped again and again keeps no file of it open",
    async () => {
      const dir = newDir();
      const path = filePathOf(urlOf(dir));
      /** This process's descriptors on the store's files (the database, its WAL and shared memory). */
      const openFiles = async () => {
        const targets = await Promise.all(
          (await readdir("/proc/self/fd")).map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => "")),
        );
        return targets.filter((target) => target.startsWith(path)).length;
      };
      for (let round = 0; round < 4; round++) {
        const store = makeStore(dir);
        const { head } = await store.start();
        await store.commit(batch(run(head + 1, head + 50), { pods: String(round) }));
        expect(await store.readUpdates({ stream: "all", after: head, limit: 100 })).toHaveLength(50);
        await store.stop();
      }
      // The reader's statements live on this thread until its collector takes them; the other threads are gone.
      await waitFor(
        async () => {
          Bun.gc(true);
          return (await openFiles()) === 0;
        },
        5_000,
        "no descriptor left on the store's files",
      );
    },
    15_000,
  );

  test("stop folds the WAL into the file: a copy of the file alone holds every update", async () => {
    const dir = newDir();
    const path = filePathOf(urlOf(dir));
    const store = makeStore(dir);
    await store.start();
    const updates = run(1, 500);
    await store.commit(batch(updates, { pods: "1500" }));
    expect(sizeOf(`${path}-wal`)).toBeGreaterThan(0);
    await store.stop();
    // Nothing beside the file: no WAL, not even an empty one, and no shared memory.
    expect([existsSync(`${path}-wal`), existsSync(`${path}-shm`)]).toEqual([false, false]);

    const copy = newDir();
    const copied = filePathOf(urlOf(copy));
    await mkdir(join(copied, ".."), { recursive: true });
    await copyFile(path, copied);
    const reopened = makeStore(copy);
    const state = await reopened.start();
    expect(state.head).toBe(500);
    expect(state.resumePoints.get("pods")).toBe("1500");
    expect(await reopened.readUpdates({ stream: "all", after: 0, limit: 1000 })).toEqual(updates);
  });
});
