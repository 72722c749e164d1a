/**
 * What the initial sync cannot go below on this machine, whatever its design, as long as it keeps kubemeta's data
 * model: every object's JSON read (managedFields skipped: skim.ts), slimmed, serialized and digested (the core's
 * prepareChange), and its two rows (`updates`, `objects`) inserted by SQLite itself through statements prepared once.
 * Measured in this process, one thread, nothing else: no TLS, no HTTP, no hand-over between threads, no event loop.
 * sync.ts adds the API server's CPU and divides by the cores (perfect parallelism) to show how far its target of 4×
 * the informer's speed is from reach; sqlite-floor.ts compares the store with the SQLite part.
 */
import Database from "libsql";
import * as v from "valibot";
import { statSync } from "node:fs";
import { join } from "node:path";
import libsql from "../plugins/stores/libsql.ts";
import { createMetrics } from "../host/metrics.ts";
import { silentLogger } from "../host/logger.ts";
import { prepareChange } from "../core/prepare.ts";
import { parseSkimmed } from "../plugins/sources/kubernetes/skim.ts";
import { makePod } from "../simulator/objects.ts";
import { withObjectJson, type KubeObject, type Update } from "../sdk/model.ts";
import type { PreparedChange } from "../sdk/prepared.ts";

type Slim = Extract<PreparedChange, { json: string }>;

const SHAPES = 200;
const NODES = 5_000;
const BATCH = 1_000;
const CHECKPOINT_EVERY_MS = 500;

/** The simulator's real-size pods, each of its own name, node and owner. */
function pods(count: number): KubeObject[] {
  return Array.from({ length: count }, (_, i) => ({
    kind: "Pod",
    apiVersion: "v1",
    ...makePod({
      name: `api-${i}-7d9f8c6b5-x2x9q`,
      namespace: `team-${i % 40}`,
      node: `ip-10-0-${i % 20}-${i % 250}.eu-west-1.compute.internal`,
      owner: { kind: "ReplicaSet", name: "api-7d9f8c6b5", uid: crypto.randomUUID() },
    }),
  }));
}

/** Real-size pods as the core slims them: the rows' objects. */
export const slimPods: Slim[] = pods(SHAPES).map((pod) => prepareChange(pod) as Slim);

const nodeName = (i: number) => `ip-10-${(i >> 8) & 255}-${i & 255}.eu-west-1.compute.internal`;

/** The i-th update of an initial sync of slim pods (version i + 1), on one of 5,000 nodes. */
export function podUpdate(i: number, uid: string): Update {
  const shape = slimPods[i % SHAPES]!;
  const node = nodeName(i % NODES);
  return withObjectJson(
    {
      version: i + 1,
      stream: `node/${node}`,
      streamPrev: 0,
      type: "ADDED" as const,
      kind: "Pod",
      uid,
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
export async function newStore(dir: string, name: string) {
  const file = join(dir, name);
  const store = libsql.create(v.parse(libsql.schema, { url: `file:${file}` }), {
    name: "libsql",
    cluster: "bench",
    logger: silentLogger,
    metrics: createMetrics(),
  });
  await store.start();
  return { file, store };
}

/** What a run cost this process: wall seconds, CPU microseconds (every thread), and the database's bytes. */
export interface Spent {
  seconds: number;
  user: number;
  system: number;
  bytes: number;
}

export const sizeOf = (file: string) =>
  statSync(file).size + (statSync(`${file}-wal`, { throwIfNoEntry: false })?.size ?? 0);

/**
 * `rows` slim pods inserted by SQLite alone in kubemeta's schema, with the store's PRAGMAs: an `updates` and an
 * `objects` row each, 1,000 a transaction, a PASSIVE checkpoint every 500 ms on the same thread (as the checkpointer).
 */
export async function sqliteAlone(dir: string, uids: string[]): Promise<Spent> {
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
  for (let from = 0; from < uids.length; from += BATCH) {
    db.exec("BEGIN IMMEDIATE");
    for (let i = from; i < Math.min(uids.length, from + BATCH); i++) {
      const u = podUpdate(i, uids[i]!);
      let streamId = streamIds.get(u.stream!);
      if (streamId === undefined) {
        streamId = streamIds.size + 1;
        streamIds.set(u.stream!, streamId);
        insertStream.run([streamId, u.stream]);
      }
      const args = [u.kind, u.uid, u.namespace, u.name, u.node, u.resourceVersion, u.time, slimPods[i % SHAPES]!.json];
      insertUpdate.run([u.version, streamId, 0, u.type, ...args]);
      insertObject.run([u.kind, u.uid, u.namespace, u.node, streamId, u.version, i]);
    }
    db.exec("COMMIT");
    if (performance.now() - checkpointed >= CHECKPOINT_EVERY_MS) {
      db.exec("PRAGMA wal_checkpoint(PASSIVE)");
      checkpointed = performance.now();
    }
  }
  const used = process.cpuUsage(cpu);
  const spent = { seconds: (performance.now() - started) / 1000, ...used, bytes: sizeOf(file) };
  db.close();
  return spent;
}

/**
 * CPU nanoseconds a byte of watch lines of real-size pods costs to skim, parse and prepare (slim, serialize, digest,
 * route) on one thread, over at least `ms` after a warm-up: the parse thread's work without decoding and hand-over.
 */
export function preparePerByte(ms = 1_500): number {
  const lines = pods(2_000).map((pod) => JSON.stringify({ type: "ADDED", object: pod }));
  const bytes = lines.reduce((sum, line) => sum + Buffer.byteLength(line), 0);
  const prepareAll = () => {
    for (const line of lines) prepareChange((parseSkimmed(line) as { object: KubeObject }).object);
  };
  prepareAll();
  const cpu = process.cpuUsage();
  let rounds = 0;
  let used: NodeJS.CpuUsage;
  do {
    prepareAll();
    rounds++;
    used = process.cpuUsage(cpu);
  } while (used.user + used.system < ms * 1_000);
  return ((used.user + used.system) * 1_000) / (rounds * bytes);
}
