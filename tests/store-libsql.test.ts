/**
 * The libsql store on a real file in a temp dir: lifecycle, epoch, commit and the gap-free
 * guard, per-stream reads, current objects and snapshots, digests, retention, cursors,
 * config validation, and the connection pitfalls of @libsql/client on `file:`.
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import * as v from "valibot";
import { createClient } from "@libsql/client";
import { existsSync, statSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import libsql from "../plugins/stores/libsql.ts";
import { BUSY_TIMEOUT_MS, filePathOf, openConnections, type Connections } from "../plugins/stores/libsql/connection.ts";
import { startCheckpointer } from "../plugins/stores/libsql/checkpointer.ts";
import { migrate } from "../plugins/stores/libsql/schema.ts";
import { createMetrics, type Metrics } from "../core/metrics.ts";
import { silentLogger } from "../core/logger.ts";
import type { CommitBatch, Store } from "../core/contract.ts";
import type { ChangeType, Update } from "../core/types.ts";

const root = await mkdtemp(join(tmpdir(), "kubemeta-store-test-"));
afterAll(() => rm(root, { recursive: true, force: true }));

let dirs = 0;
const newDir = () => join(root, `case-${++dirs}`);
const open: Store[] = [];
afterEach(async () => {
  for (const store of open.splice(0)) await store.stop();
});

function makeStore(dir: string, metrics: Metrics = createMetrics()): Store {
  const config = v.parse(libsql.schema, { url: `file:${join(dir, "nested", "kubemeta.db")}` });
  const store = libsql.create(config, { name: "libsql", cluster: "test", logger: silentLogger, metrics });
  open.push(store);
  return store;
}

interface Spec {
  type?: ChangeType;
  kind?: string;
  uid?: string;
  stream?: string | null;
  namespace?: string | null;
  node?: string | null;
  time?: string;
}

function update(version: number, spec: Spec = {}): Update {
  const uid = spec.uid ?? `uid-${version}`;
  const stream = spec.stream === undefined ? "shared" : spec.stream;
  return {
    version,
    stream,
    streamPrev: 0,
    type: spec.type ?? "ADDED",
    kind: spec.kind ?? "Pod",
    uid,
    namespace: spec.namespace === undefined ? "default" : spec.namespace,
    name: `name-${uid}`,
    node: spec.node === undefined ? (stream?.startsWith("node/") ? stream.slice(5) : null) : spec.node,
    resourceVersion: String(1000 + version),
    time: spec.time ?? new Date().toISOString(),
    object: { metadata: { name: `name-${uid}`, labels: { app: "web", version: String(version) } }, nested: [1, "two", null, { three: true }] },
  };
}

function batch(updates: Update[], resumePoints: Record<string, string> = {}): CommitBatch {
  return { updates, digests: updates.map((u) => u.version * 10), resumePoints: new Map(Object.entries(resumePoints)) };
}

/** Versions from..to, each its own object, cycling over three streams. */
function run(from: number, to: number, spec: (version: number) => Spec = () => ({})): Update[] {
  const streams = ["shared", "node/a", "node/b"];
  return Array.from({ length: to - from + 1 }, (_, i) => update(from + i, { stream: streams[(from + i) % 3], ...spec(from + i) }));
}

describe("lifecycle and epoch", () => {
  test("start creates the directory, the file and an epoch; an empty store starts at 0", async () => {
    const dir = newDir();
    const state = await makeStore(dir).start();
    expect(existsSync(join(dir, "nested", "kubemeta.db"))).toBe(true);
    expect(state.epoch).toMatch(/^[0-9a-f]{16}$/);
    expect(state).toMatchObject({ head: 0, oldest: 1 });
    expect(state.streamHeads.size).toBe(0);
    expect(state.resumePoints.size).toBe(0);
  });

  test("a reopened store keeps epoch, head, stream heads, resume points and cursors", async () => {
    const dir = newDir();
    const first = makeStore(dir);
    const { epoch } = await first.start();
    await first.commit(batch(run(1, 5), { pods: "77", nodes: "12" }));
    await first.saveCursor("sink/webhook", 4);
    await first.stop();

    const state = await makeStore(dir).start();
    expect(state.epoch).toBe(epoch);
    expect(state.head).toBe(5);
    expect(state.oldest).toBe(1);
    expect(Object.fromEntries(state.streamHeads)).toEqual({ shared: 3, "node/a": 4, "node/b": 5 });
    expect(Object.fromEntries(state.resumePoints)).toEqual({ pods: "77", nodes: "12" });
    expect(await open[1]!.cursor("sink/webhook")).toBe(4);
  });

  test("a wiped store gets a new epoch and starts over", async () => {
    const dir = newDir();
    const first = makeStore(dir);
    const { epoch } = await first.start();
    await first.commit(batch(run(1, 3)));
    await first.stop();
    await rm(join(dir, "nested"), { recursive: true });

    const state = await makeStore(dir).start();
    expect(state.epoch).not.toBe(epoch);
    expect(state.head).toBe(0);
  });

  test("stop without start, start twice, stop twice, start again after stop", async () => {
    const store = makeStore(newDir());
    await store.stop();
    const a = await store.start();
    const b = await store.start();
    expect(b.epoch).toBe(a.epoch);
    await store.commit(batch(run(1, 2)));
    await store.stop();
    await store.stop();
    await expect(store.readUpdates({ stream: "all", after: 0, limit: 10 })).rejects.toThrow(/not started/);
    await expect(store.checkWritable()).rejects.toThrow(/not started/);
    const again = await store.start();
    expect(again).toMatchObject({ epoch: a.epoch, head: 2 });
  });
});

describe("commit and the log", () => {
  test("updates round-trip exactly and read per stream with after, to and limit", async () => {
    const store = makeStore(newDir());
    await store.start();
    const updates = run(1, 9);
    updates[3] = update(4, { stream: null, namespace: null, node: null });
    await store.commit(batch(updates));

    expect(await store.readUpdates({ stream: "all", after: 0, limit: 100 })).toEqual(updates);
    const versions = async (stream: string, after: number, limit: number, to?: number) =>
      (await store.readUpdates({ stream, after, to, limit })).map((u) => u.version);
    expect(await versions("all", 2, 3)).toEqual([3, 4, 5]);
    expect(await versions("all", 2, 100, 6)).toEqual([3, 4, 5, 6]);
    expect(await versions("shared", 0, 100)).toEqual([3, 6, 9]);
    expect(await versions("node/a", 1, 100)).toEqual([7]);
    expect(await versions("node/b", 0, 1)).toEqual([2]);
    expect(await versions("node/b", 0, 100, 5)).toEqual([2, 5]);
    expect(await versions("node/unknown", 0, 100)).toEqual([]);
    expect(await versions("all", 9, 100)).toEqual([]);
    expect(await versions("all", 0, 0)).toEqual([]);
  });

  test("a batch that does not continue the log is refused and nothing of it is written", async () => {
    const store = makeStore(newDir());
    await store.start();
    await store.commit(batch(run(1, 3)));
    await expect(store.commit(batch(run(5, 6)))).rejects.toThrow(/gap-free/);
    await expect(store.commit(batch(run(3, 4)))).rejects.toThrow(/gap-free/);
    await expect(store.commit(batch([update(4), update(6)]))).rejects.toThrow(/gap-free/);
    expect((await store.readUpdates({ stream: "all", after: 0, limit: 100 })).map((u) => u.version)).toEqual([1, 2, 3]);
    await store.commit(batch(run(4, 4)));
    expect((await store.readUpdates({ stream: "all", after: 3, limit: 100 })).map((u) => u.version)).toEqual([4]);
  });

  test("a second writer on the same file makes the first one's next commit fail, never fork the log", async () => {
    const dir = newDir();
    const first = makeStore(dir);
    const second = makeStore(dir);
    await first.start();
    await second.start();
    await second.commit(batch(run(1, 2)));
    await expect(first.commit(batch(run(1, 1)))).rejects.toThrow(/another kubemeta/);
    expect((await first.readUpdates({ stream: "all", after: 0, limit: 10 })).map((u) => u.uid)).toEqual(["uid-1", "uid-2"]);
  });

  test("a batch of only resume points (bookmarks) commits", async () => {
    const dir = newDir();
    const store = makeStore(dir);
    await store.start();
    await store.commit({ updates: [], digests: [], resumePoints: new Map([["pods", "900"]]) });
    await store.stop();
    const state = await makeStore(dir).start();
    expect(state.resumePoints.get("pods")).toBe("900");
    expect(state.head).toBe(0);
  });

  test("a large commit yields to the event loop and is timed in kubemeta_store_commit_seconds", async () => {
    const metrics = createMetrics();
    const store = makeStore(newDir(), metrics);
    await store.start();
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    await store.commit(batch(run(1, 6000)));
    clearInterval(timer);
    expect(ticks).toBeGreaterThan(0);
    expect(metrics.render()).toContain("kubemeta_store_commit_seconds_count 1");
  });
});

describe("current objects", () => {
  test("ADDED and MODIFIED upsert, DELETED deletes; the last change in a batch wins", async () => {
    const store = makeStore(newDir());
    await store.start();
    await store.commit(
      batch([
        update(1, { uid: "p1", stream: null, node: null }),
        update(2, { uid: "p2", stream: "node/a" }),
        update(3, { uid: "gone", stream: "node/a" }),
        update(4, { uid: "gone", type: "DELETED", stream: "node/a" }),
        update(5, { uid: "svc", kind: "Service", stream: "shared", namespace: "payments" }),
      ]),
    );
    await store.commit(
      batch([
        update(6, { uid: "p1", type: "MODIFIED", stream: "node/b" }),
        update(7, { uid: "p2", type: "MODIFIED", stream: "node/a" }),
        update(8, { uid: "p2", type: "DELETED", stream: "node/a" }),
      ]),
    );
    const { version, objects } = await store.snapshot({});
    expect(version).toBe(8);
    expect(objects.map((o) => [o.kind, o.uid, o.stream, o.node, o.version]).sort()).toEqual([
      ["Pod", "p1", "node/b", "b", 6],
      ["Service", "svc", "shared", null, 5],
    ]);
    const p1 = objects.find((o) => o.uid === "p1")!;
    expect(p1).toEqual({
      kind: "Pod",
      uid: "p1",
      namespace: "default",
      name: "name-p1",
      node: "b",
      stream: "node/b",
      version: 6,
      resourceVersion: "1006",
      object: update(6, { uid: "p1" }).object,
    });
    expect((await store.digests()).sort((a, b) => a.uid.localeCompare(b.uid))).toEqual([
      { kind: "Pod", uid: "p1", digest: 60, stream: "node/b" },
      { kind: "Service", uid: "svc", digest: 50, stream: "shared" },
    ]);
  });

  test("53-bit digests and stream names that need JSON escaping round-trip", async () => {
    const store = makeStore(newDir());
    await store.start();
    const odd = 'node/"quoted"\\ünïcode';
    await store.commit({ updates: [update(1, { uid: "big", stream: odd })], digests: [Number.MAX_SAFE_INTEGER], resumePoints: new Map([['pods"x', "9"]]) });
    expect(await store.digests()).toEqual([{ kind: "Pod", uid: "big", digest: Number.MAX_SAFE_INTEGER, stream: odd }]);
    expect((await store.readUpdates({ stream: odd, after: 0, limit: 10 })).map((u) => u.stream)).toEqual([odd]);
    await store.stop();
    expect((await store.start()).resumePoints.get('pods"x')).toBe("9");
  });

  test("snapshot filters by stream, kind, namespace, node and uids", async () => {
    const store = makeStore(newDir());
    await store.start();
    await store.commit(
      batch([
        update(1, { uid: "a1", stream: "node/a", namespace: "x" }),
        update(2, { uid: "a2", stream: "node/a", namespace: "y" }),
        update(3, { uid: "b1", stream: "node/b", namespace: "x" }),
        update(4, { uid: "pending", stream: null, node: null, namespace: "x" }),
        update(5, { uid: "ns", kind: "Namespace", stream: "shared", namespace: null }),
        update(6, { uid: "n-a", kind: "Node", stream: "node/a", namespace: null }),
      ]),
    );
    const uids = async (query: Parameters<Store["snapshot"]>[0]) => (await store.snapshot(query)).objects.map((o) => o.uid).sort();
    expect(await uids({ stream: "all" })).toEqual(["a1", "a2", "b1", "n-a", "ns", "pending"]);
    expect(await uids({ stream: "node/a" })).toEqual(["a1", "a2", "n-a"]);
    expect(await uids({ stream: "shared" })).toEqual(["ns"]);
    expect(await uids({ kind: "Pod" })).toEqual(["a1", "a2", "b1", "pending"]);
    expect(await uids({ kind: "Pod", namespace: "x" })).toEqual(["a1", "b1", "pending"]);
    expect(await uids({ node: "a" })).toEqual(["a1", "a2", "n-a"]);
    expect(await uids({ stream: "node/a", kind: "Node" })).toEqual(["n-a"]);
    expect(await uids({ kind: "Pod", uids: ["a2", "pending", "missing"] })).toEqual(["a2", "pending"]);
    expect(await uids({ uids: [] })).toEqual([]);
  });

  test("each snapshot is consistent with its version while commits run, across pages", async () => {
    const store = makeStore(newDir());
    await store.start();
    await store.commit(batch(run(1, 4500)));
    const commits = (async () => {
      for (let from = 4501; from <= 9000; from += 500) await store.commit(batch(run(from, from + 499)));
    })();
    const snapshots = [];
    for (let i = 0; i < 6; i++) snapshots.push(await store.snapshot({}));
    await commits;
    snapshots.push(await store.snapshot({}));
    for (const { version, objects } of snapshots) {
      expect(objects.length).toBe(version);
      expect(Math.max(...objects.map((o) => o.version))).toBe(version);
      expect(new Set(objects.map((o) => o.uid)).size).toBe(version);
    }
    expect(snapshots.at(-1)!.version).toBe(9000);
  });

  test("a burst of snapshots beside replays neither fails nor exhausts the reader's connections", async () => {
    const store = makeStore(newDir());
    await store.start();
    await store.commit(batch(run(1, 50)));
    const results = await Promise.all([
      ...Array.from({ length: 40 }, () => store.snapshot({ stream: "shared" })),
      ...Array.from({ length: 40 }, () => store.readUpdates({ stream: "all", after: 0, limit: 100 })),
    ]);
    for (const result of results) {
      if (Array.isArray(result)) expect(result.length).toBe(50);
      else expect(result.objects.length).toBe(16);
    }
  });
});

describe("retention", () => {
  /** Versions from..to changing the objects uid-1..uid-<objects> in turn. */
  const churn = (from: number, to: number, objects: number) =>
    run(from, to, (version) => ({ uid: `uid-${((version - 1) % objects) + 1}`, type: version > objects ? "MODIFIED" : "ADDED" }));

  test("prune by count keeps the newest updates and the current state of every object, reports oldest", async () => {
    const metrics = createMetrics();
    const store = makeStore(newDir(), metrics);
    await store.start();
    await store.commit(batch(churn(1, 12_000, 3_000)));
    const before = await store.snapshot({});
    expect(await store.prune({ maxAgeMs: 0, maxUpdates: 0 })).toEqual({ removed: 0, oldest: 1 });
    // Versions 9,001..12,000 are each object's current state: retention keeps all of them.
    expect(await store.prune({ maxAgeMs: 0, maxUpdates: 1000 })).toEqual({ removed: 9_000, oldest: 11_001 });
    expect(metrics.render()).toContain("kubemeta_store_pruned_updates_total 9000");
    expect((await store.readUpdates({ stream: "all", after: 0, limit: 2 })).map((u) => u.version)).toEqual([11_001, 11_002]);
    expect((await store.readUpdates({ stream: "shared", after: 0, limit: 1 })).map((u) => u.version)).toEqual([11_001]);
    expect(await store.snapshot({})).toEqual(before);
    expect(await store.prune({ maxAgeMs: 0, maxUpdates: 1000 })).toEqual({ removed: 0, oldest: 11_001 });
  });

  test("an update kept for its object goes once the object changes or is deleted", async () => {
    const dir = newDir();
    const store = makeStore(dir);
    await store.start();
    await store.commit(batch([update(1, { uid: "kept" }), update(2, { uid: "changed" }), update(3, { uid: "deleted" }), ...run(4, 10)]));
    expect(await store.prune({ maxAgeMs: 0, maxUpdates: 2 })).toEqual({ removed: 0, oldest: 9 });
    await store.commit(batch([update(11, { uid: "changed", type: "MODIFIED" }), update(12, { uid: "deleted", type: "DELETED" })]));
    expect(await store.prune({ maxAgeMs: 0, maxUpdates: 2 })).toEqual({ removed: 2, oldest: 11 });
    const objects = (await store.snapshot({})).objects;
    expect(objects.find((o) => o.uid === "kept")).toMatchObject({ version: 1, name: "name-kept", resourceVersion: "1001", object: update(1, { uid: "kept" }).object });
    expect(objects.find((o) => o.uid === "changed")).toMatchObject({ version: 11, resourceVersion: "1011" });
    expect(objects.map((o) => o.uid)).not.toContain("deleted");
    await store.stop();
    expect(await makeStore(dir).start()).toMatchObject({ head: 12, oldest: 11 });
  });

  test("prune by age removes what is older, and an emptied log has oldest = head + 1", async () => {
    const dir = newDir();
    const store = makeStore(dir);
    await store.start();
    const hoursAgo = (h: number) => new Date(Date.now() - h * 3_600_000).toISOString();
    await store.commit(batch(churn(1, 10, 2).map((u) => ({ ...u, time: hoursAgo(u.version <= 6 ? 48 : 1) }))));
    expect(await store.prune({ maxAgeMs: 24 * 3_600_000, maxUpdates: 0 })).toEqual({ removed: 6, oldest: 7 });
    expect(await store.prune({ maxAgeMs: 30 * 60_000, maxUpdates: 0 })).toEqual({ removed: 2, oldest: 11 });
    expect(await store.readUpdates({ stream: "all", after: 0, limit: 10 })).toEqual([]);
    expect((await store.snapshot({})).objects.map((o) => o.version).sort()).toEqual([10, 9]);
    await store.stop();
    expect(await makeStore(dir).start()).toMatchObject({ head: 10, oldest: 11 });
  });
});

describe("cursors and writability", () => {
  test("cursors are undefined until saved, then overwritten", async () => {
    const store = makeStore(newDir());
    await store.start();
    expect(await store.cursor("sink/nats")).toBeUndefined();
    await store.saveCursor("sink/nats", 10);
    await store.saveCursor("sink/nats", 12);
    await store.saveCursor("sink/webhook", 3);
    expect(await store.cursor("sink/nats")).toBe(12);
    expect(await store.cursor("sink/webhook")).toBe(3);
    await store.checkWritable();
  });
});

describe("config", () => {
  test("defaults to file:./data/kubemeta.db and accepts remote URLs with a token", () => {
    expect(v.parse(libsql.schema, {})).toEqual({ url: "file:./data/kubemeta.db" });
    for (const url of ["libsql://db-org.turso.io", "https://db.example.com", "http://127.0.0.1:8080", "wss://db.example.com", "file:///var/lib/k.db"]) {
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

  test("file URL paths", () => {
    expect(filePathOf("file:./data/k.db")).toBe("./data/k.db");
    expect(filePathOf("file:/abs/k.db")).toBe("/abs/k.db");
    expect(filePathOf("file:///abs/k.db")).toBe("/abs/k.db");
    expect(filePathOf("file://localhost/abs/my%20k.db")).toBe("/abs/my k.db");
  });
});

describe("libSQL file: pitfalls", () => {
  const pragma = async (client: { execute(sql: string): Promise<{ rows: ArrayLike<unknown>[] }> }, name: string) =>
    (await client.execute(`PRAGMA ${name}`)).rows[0]![0];

  test("the pitfall: UPDATE … FROM json_each scans every object, an upsert fed by json_each looks each one up", async () => {
    const dir = newDir();
    await mkdir(dir, { recursive: true });
    const client = createClient({ url: `file:${join(dir, "plan.db")}` });
    try {
      await migrate(client);
      const plan = async (sql: string) => (await client.execute({ sql: `EXPLAIN QUERY PLAN ${sql}`, args: ["[]"] })).rows.map((r) => String(r.detail));
      const rows = "json_each(?) AS f CROSS JOIN updates AS u ON u.version = f.value ->> 0";
      const update = await plan(`UPDATE objects SET node = u.node FROM ${rows} WHERE objects.kind = u.kind AND objects.uid = u.uid`);
      expect(update.some((step) => step.startsWith("SCAN objects"))).toBe(true);
      const upsert = await plan(`INSERT INTO objects (kind, uid, version, digest) SELECT u.kind, u.uid, u.version, 0 FROM ${rows} WHERE true
        ON CONFLICT (kind, uid) DO UPDATE SET node = excluded.node WHERE objects.node IS NOT excluded.node`);
      expect(upsert.some((step) => step.startsWith("SCAN objects"))).toBe(false);
    } finally {
      client.close();
    }
  });

  test("the pitfall: a PRAGMA set with execute() is lost on the connection opened while a transaction holds one", async () => {
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
  });

  test("the store's connections: one writer keeps synchronous=NORMAL, WAL persists, every connection has busy_timeout", async () => {
    const dir = newDir();
    const url = `file:${join(dir, "k.db")}`;
    const c: Connections = await openConnections(url, silentLogger);
    try {
      expect(c.journalMode).toBe("wal");
      const tx = await c.writer.transaction("write");
      await tx.execute("CREATE TABLE t (x)");
      await tx.commit();
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
  });

  test("the checkpoint worker copies the WAL into the file and truncates a WAL past its bound", async () => {
    const dir = newDir();
    const path = join(dir, "k.db");
    const c = await openConnections(`file:${path}`, silentLogger);
    await c.close();
    const writer = createClient({ url: `file:${path}` });
    await writer.execute("PRAGMA wal_autocheckpoint = 0");
    await writer.execute("CREATE TABLE t (x)");
    await writer.execute({ sql: "INSERT INTO t SELECT randomblob(1000) FROM json_each(?)", args: [JSON.stringify(Array(2000).fill(0))] });
    const fileBefore = statSync(path).size;
    const walBefore = statSync(`${path}-wal`).size;
    expect(walBefore).toBeGreaterThan(1_000_000);

    const checkpointer = startCheckpointer({ url: `file:${path}`, walPath: `${path}-wal`, busyTimeoutMs: 1000, truncateBytes: 100_000, logger: silentLogger });
    try {
      const deadline = Date.now() + 10_000;
      while (statSync(path).size <= fileBefore && Date.now() < deadline) await Bun.sleep(20);
      expect(statSync(path).size).toBeGreaterThan(fileBefore);
      await checkpointer.bound();
      expect(statSync(`${path}-wal`).size).toBe(0);
      expect((await writer.execute("SELECT count(*) AS n FROM t")).rows[0]!.n).toBe(2000);
    } finally {
      await checkpointer.stop();
      writer.close();
    }
  });
});
