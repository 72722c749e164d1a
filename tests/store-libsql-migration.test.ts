/**
 * The libsql store opening a store written by an older kubemeta: schema version 1 kept each
 * object's JSON in `objects` and stream names in the log; version 2 points objects at their
 * latest update and numbers the streams. Nothing a user sees may change.
 */
import * as v from "valibot";
import { afterAll, expect, test } from "bun:test";
import { createClient } from "@libsql/client";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import libsql from "../plugins/stores/libsql.ts";
import { migrate, SCHEMA_VERSION } from "../plugins/stores/libsql/schema.ts";
import { createMetrics } from "../host/metrics.ts";
import { silentLogger } from "../host/logger.ts";
import type { Update } from "../sdk/model.ts";

const root = await mkdtemp(join(tmpdir(), "kubemeta-store-migration-"));
afterAll(() => rm(root, { recursive: true, force: true }));

const objectOf = (version: number) => ({ metadata: { name: `pod-${version}`, labels: { v: String(version) } } });

/** A version-1 store after v1 retention pruned versions 1 and 2: pod-a's current state exists only in `objects`. */
async function writeVersion1Store(path: string): Promise<void> {
  const client = createClient({ url: `file:${path}` });
  try {
    await migrate(client, 1);
    const update = (version: number, stream: string | null, uid: string, node: string | null) => ({
      sql: `INSERT INTO updates
        (version, stream, stream_prev, type, kind, uid, namespace, name, node, resource_version, time, object)
        VALUES (?, ?, 0, 'ADDED', 'Pod', ?, 'default', ?, ?, ?, '2026-11-28T06:00:00.000Z', ?)`,
      args: [version, stream, uid, `pod-${version}`, node, String(100 + version), JSON.stringify(objectOf(version))],
    });
    const object = (version: number, stream: string | null, uid: string, node: string | null) => ({
      sql: `INSERT INTO objects (kind, uid, namespace, name, node, stream, version, resource_version, digest, object)
        VALUES ('Pod', ?, 'default', ?, ?, ?, ?, ?, ?, ?)`,
      args: [
        uid,
        `pod-${version}`,
        node,
        stream,
        version,
        String(100 + version),
        version * 7,
        JSON.stringify(objectOf(version)),
      ],
    });
    await client.batch(
      [
        "INSERT INTO meta (id, epoch, head) VALUES (1, '00112233aabbccdd', 5)",
        update(3, "node/a", "b", "a"),
        update(4, "shared", "c", null),
        update(5, "node/a", "d", "a"),
        object(1, "node/z", "a", "z"),
        object(4, "shared", "c", null),
        object(5, "node/a", "d", "a"),
        "INSERT INTO streams (stream, head) VALUES ('node/z', 1), ('node/a', 5), ('shared', 4)",
        "INSERT INTO resume_points (resource, resource_version) VALUES ('pods', '105')",
        "INSERT INTO cursors (name, version) VALUES ('sink/nats', 4)",
      ],
      "write",
    );
  } finally {
    client.close();
  }
}

test(
  "a version-1 store opens migrated: " + "same epoch, head, horizon, log, objects, streams, cursors; commits go on",
  async () => {
    const path = join(root, "v1.db");
    await writeVersion1Store(path);
    const store = libsql.create(v.parse(libsql.schema, { url: `file:${path}` }), {
      name: "libsql",
      cluster: "test",
      logger: silentLogger,
      metrics: createMetrics(),
    });
    try {
      const state = await store.start();
      expect(state).toMatchObject({ epoch: "00112233aabbccdd", head: 5, oldest: 3, whole: true });
      expect(Object.fromEntries(state.streamHeads)).toEqual({ "node/z": 1, "node/a": 5, shared: 4 });
      expect(Object.fromEntries(state.resumePoints)).toEqual({ pods: "105" });
      expect(await store.cursor("sink/nats")).toBe(4);

      // What was pruned before is not known per stream: each starts at the log's horizon, so the row kept for a's
      // state (below it) is no update a reader of node/z sees.
      const migrated = new Map([
        ["node/z", 2],
        ["node/a", 2],
        ["shared", 2],
      ]);
      expect(await store.horizons!()).toEqual(migrated);
      expect(await store.readUpdates({ stream: "node/z", after: 0, limit: 10 })).toEqual([]);

      const log = await store.readUpdates({ stream: "all", after: 0, limit: 10 });
      expect(log.map((u) => [u.version, u.stream, u.uid])).toEqual([
        [3, "node/a", "b"],
        [4, "shared", "c"],
        [5, "node/a", "d"],
      ]);
      expect(log[0]!.object).toEqual(objectOf(3));

      const { version, objects } = await store.snapshot({});
      expect(version).toBe(5);
      expect(objects.find((o) => o.uid === "a")).toEqual({
        kind: "Pod",
        uid: "a",
        namespace: "default",
        name: "pod-1",
        node: "z",
        stream: "node/z",
        version: 1,
        resourceVersion: "101",
        object: objectOf(1),
      });
      expect(objects.map((o) => o.uid).sort()).toEqual(["a", "c", "d"]);
      expect((await store.snapshot({ stream: "node/a" })).objects.map((o) => o.uid)).toEqual(["d"]);
      expect((await store.digests()).map((d) => [d.uid, d.digest, d.stream]).sort()).toEqual([
        ["a", 7, "node/z"],
        ["c", 28, "shared"],
        ["d", 35, "node/a"],
      ]);

      const next: Update = {
        ...log[2]!,
        version: 6,
        streamPrev: 5,
        type: "MODIFIED",
        uid: "a",
        name: "pod-1",
        node: "a",
        object: objectOf(6),
      };
      const fresh: Update = {
        ...next,
        version: 7,
        streamPrev: 0,
        stream: "node/new",
        node: "new",
        uid: "e",
        type: "ADDED",
      };
      await store.commit({ updates: [next, fresh], digests: [60, 70], resumePoints: new Map() });
      expect((await store.readUpdates({ stream: "node/a", after: 4, limit: 10 })).map((u) => u.version)).toEqual([
        5, 6,
      ]);
      expect((await store.readUpdates({ stream: "node/new", after: 0, limit: 10 })).map((u) => u.uid)).toEqual(["e"]);
      expect((await store.snapshot({ stream: "node/a" })).objects.map((o) => o.uid).sort()).toEqual(["a", "d"]);
      // The migrated horizon: versions 1 and 2 were pruned; a's old state goes once it changed.
      expect(await store.prune({ maxAgeMs: 0, maxUpdates: 3 })).toEqual({ removed: 2, oldest: 5 });
      // Versions 1 (a's old state) and 3 (b's) went: node/a's horizon is 3 now; node/new lost nothing.
      expect(await store.horizons!()).toEqual(new Map([...migrated, ["node/a", 3]]));
      expect(await store.horizon!("node/new")).toBe(0);
    } finally {
      await store.stop();
    }
    const check = createClient({ url: `file:${path}` });
    try {
      expect((await check.execute("SELECT max(version) AS v FROM schema_version")).rows[0]!.v).toBe(SCHEMA_VERSION);
      expect((await check.execute("SELECT name FROM sqlite_master WHERE name LIKE '%_v1'")).rows).toEqual([]);
    } finally {
      check.close();
    }
  },
);

/** A store of the previous schema (before the first sync's end was recorded) holding `head` updates' worth. */
async function openPreviousSchemaStore(name: string, head: number) {
  const path = join(root, name);
  const client = createClient({ url: `file:${path}` });
  try {
    await migrate(client, SCHEMA_VERSION - 1);
    await client.execute({ sql: "INSERT INTO meta (id, epoch, head) VALUES (1, '00112233aabbccdd', ?)", args: [head] });
  } finally {
    client.close();
  }
  const store = libsql.create(v.parse(libsql.schema, { url: `file:${path}` }), {
    name: "libsql",
    cluster: "test",
    logger: silentLogger,
    metrics: createMetrics(),
  });
  return { store, state: await store.start() };
}

test("a store of the previous schema that held updates counts as whole: an upgrade makes no reader wait", async () => {
  const held = await openPreviousSchemaStore("previous-held.db", 5);
  const empty = await openPreviousSchemaStore("previous-empty.db", 0);
  try {
    expect([held.state.whole, (await held.store.position()).whole]).toEqual([true, true]);
    // One that held nothing had not synced yet: its first sync is still to come.
    expect([empty.state.whole, (await empty.store.position()).whole]).toEqual([false, false]);
  } finally {
    await held.store.stop();
    await empty.store.stop();
  }
});
