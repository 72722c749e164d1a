/**
 * What storing an object costs SQLite itself, as a floor for the store: the same rows the store writes for an initial
 * sync (an `updates` row with the slim object's JSON, an `objects` row, in kubemeta's own schema and indexes), inserted
 * one row at a time through statements prepared once, 1,000 rows a transaction, with the store's PRAGMAs and a PASSIVE
 * checkpoint every 500 ms on the same thread, as the checkpointer does. Then the same rows committed through the libsql
 * store (its writer and checkpointer threads): the ratio of CPU per row says how far the store is from SQLite's floor.
 * CPU is the process's (every thread), user and system; the system part is the kernel's: WAL writes, checkpoints and
 * fresh page-cache pages, dear on a machine whose page faults are (README, Benchmarks).
 *
 *   bun bench/sqlite-floor.ts [--rows 150000]
 */
import Database from "libsql";
import * as v from "valibot";
import { mkdtemp, rm } from "node:fs/promises";
import { statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import libsql from "../plugins/stores/libsql.ts";
import { createMetrics } from "../host/metrics.ts";
import { silentLogger } from "../host/logger.ts";
import { prepareChange } from "../core/prepare.ts";
import { makePod } from "../simulator/objects.ts";
import { withObjectJson, type Update } from "../sdk/model.ts";
import type { PreparedChange } from "../sdk/prepared.ts";
import { fmt, machine, threadCpu } from "./processes.ts";

const { values } = parseArgs({
  options: { rows: { type: "string", default: "150000" } },
});
const rows = Number(values.rows);
const BATCH = 1_000;
const NODES = 5_000;
const CHECKPOINT_EVERY_MS = 500;

type Slim = Extract<PreparedChange, { json: string }>;

/** Real-size pods as the core slims them: 200 shapes, each row its own uid, name and node. */
const shapes: Slim[] = Array.from({ length: 200 }, (_, i) => {
  const pod = makePod({
    name: `api-${i}-7d9f8c6b5-x2x9q`,
    namespace: `team-${i % 40}`,
    node: `ip-10-0-${i % 20}-${i % 250}.eu-west-1.compute.internal`,
    owner: { kind: "ReplicaSet", name: "api-7d9f8c6b5", uid: crypto.randomUUID() },
  });
  return prepareChange({ kind: "Pod", apiVersion: "v1", ...pod }) as Slim;
});
const nodeName = (i: number) => `ip-10-${(i >> 8) & 255}-${i & 255}.eu-west-1.compute.internal`;
const uids = Array.from({ length: rows }, () => crypto.randomUUID());

function update(i: number): Update {
  const shape = shapes[i % shapes.length]!;
  const node = nodeName(i % NODES);
  return withObjectJson(
    {
      version: i + 1,
      stream: `node/${node}`,
      streamPrev: 0,
      type: "ADDED" as const,
      kind: "Pod",
      uid: uids[i]!,
      namespace: shape.namespace,
      name: `${shape.name}-${i}`,
      node,
      resourceVersion: String(1_000 + i),
      time: new Date().toISOString(),
    },
    shape.json,
  );
}

/** A new store's file, made by the store itself: kubemeta's tables, indexes and migrations. */
async function newStore(dir: string, name: string) {
  const file = join(dir, name);
  const metrics = createMetrics();
  const store = libsql.create(v.parse(libsql.schema, { url: `file:${file}` }), {
    name: "libsql",
    cluster: "bench",
    logger: silentLogger,
    metrics,
  });
  await store.start();
  return { file, store };
}

function report(label: string, started: number, cpu: { user: number; system: number }, bytes: number) {
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  const perRow = (micros: number) => (micros / rows).toFixed(1);
  console.log(
    `${label}: ${fmt(rows)} rows in ${seconds.toFixed(2)} s (${fmt(Math.round(rows / seconds))}/s), ` +
      `${fmt(Math.round(bytes / 2 ** 20))} MiB on disk; CPU ${perRow(used.user + used.system)} µs a row ` +
      `(user ${perRow(used.user)}, system ${perRow(used.system)})`,
  );
  return (used.user + used.system) / rows;
}

const sizeOf = (file: string) => statSync(file).size + (statSync(`${file}-wal`, { throwIfNoEntry: false })?.size ?? 0);

async function floor(dir: string): Promise<number> {
  const { file, store } = await newStore(dir, "floor.db");
  await store.stop();
  const db = new Database(file);
  for (const pragma of ["journal_mode = WAL", "synchronous = NORMAL", "cache_size = -65536", "wal_autocheckpoint = 0"])
    db.exec(`PRAGMA ${pragma}`);
  const streamIds = new Map<string, number>();
  const insertStream = db.prepare("INSERT INTO streams (id, name, head) VALUES (?, ?, 0)");
  const insertUpdate = db.prepare(
    "INSERT INTO updates (version, stream_id, stream_prev, type, kind, uid, namespace, name, node, " +
      "resource_version, time, object) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
  );
  const insertObject = db.prepare(
    "INSERT INTO objects (kind, uid, namespace, node, stream_id, version, digest) VALUES (?,?,?,?,?,?,?)",
  );
  const started = performance.now();
  const cpu = process.cpuUsage();
  let checkpointed = started;
  for (let from = 0; from < rows; from += BATCH) {
    db.exec("BEGIN IMMEDIATE");
    for (let i = from; i < Math.min(rows, from + BATCH); i++) {
      const u = update(i);
      let streamId = streamIds.get(u.stream!);
      if (streamId === undefined) {
        streamId = streamIds.size + 1;
        streamIds.set(u.stream!, streamId);
        insertStream.run([streamId, u.stream]);
      }
      const args = [u.kind, u.uid, u.namespace, u.name, u.node, u.resourceVersion, u.time, shapes[i % 200]!.json];
      insertUpdate.run([u.version, streamId, 0, u.type, ...args]);
      insertObject.run([u.kind, u.uid, u.namespace, u.node, streamId, u.version, i]);
    }
    db.exec("COMMIT");
    if (performance.now() - checkpointed >= CHECKPOINT_EVERY_MS) {
      db.exec("PRAGMA wal_checkpoint(PASSIVE)");
      checkpointed = performance.now();
    }
  }
  const perRow = report("SQLite alone (prepared single-row inserts)", started, cpu, sizeOf(file));
  db.close();
  return perRow;
}

async function throughStore(dir: string): Promise<number> {
  const { file, store } = await newStore(dir, "store.db");
  const threadsBefore = new Map(await threadCpu(process.pid));
  const started = performance.now();
  const cpu = process.cpuUsage();
  for (let from = 0; from < rows; from += BATCH) {
    const updates = Array.from({ length: Math.min(BATCH, rows - from) }, (_, k) => update(from + k));
    await store.commit({
      updates,
      digests: updates.map((u) => u.version),
      resumePoints: new Map([["pods", updates[updates.length - 1]!.resourceVersion]]),
    });
  }
  const perRow = report("the libsql store (its writer and checkpointer threads)", started, cpu, sizeOf(file));
  const byThread = (await threadCpu(process.pid))
    .map(([name, seconds]) => [name, ((seconds - (threadsBefore.get(name) ?? 0)) * 1e6) / rows] as const)
    .filter(([, micros]) => micros >= 0.5)
    .map(([name, micros]) => `${name} ${micros.toFixed(1)}`);
  console.log(`  µs a row by thread: ${byThread.join(", ")} (the main thread also makes the rows, as above)`);
  await store.stop();
  return perRow;
}

console.log(machine());
console.log(`${fmt(rows)} slim pods of ${fmt(Math.round(shapes[0]!.json.length))} bytes of JSON, ${fmt(NODES)} nodes`);
const dir = await mkdtemp(join(tmpdir(), "kubemeta-bench-sqlite-"));
try {
  const alone = await floor(dir);
  const store = await throughStore(dir);
  console.log(`the store spends ${(store / alone).toFixed(2)}x SQLite's floor a row`);
} finally {
  await rm(dir, { recursive: true, force: true });
}
