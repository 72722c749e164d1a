/**
 * What a sync or an ingest cannot go below on this machine, whatever its design, as long as it keeps kubemeta's data
 * model: every object's JSON read (managedFields skipped: skim.ts), slimmed, serialized and digested (the core's
 * prepareChange), and its rows written by SQLite itself through statements prepared once, as the store writes them
 * (commit.ts's multi-row statements; a sync: an `updates` and an `objects` row inserted; an
 * ingested change: an `updates` row inserted, its object moved to it by an upsert).
 * Measured in this process, one thread, nothing else: no TLS, no HTTP, no hand-over between threads, no event loop.
 * sync.ts and ingest.ts measure it at the start of a run and at its end, take each part at its faster (fastestRates),
 * add the other processes' CPU and divide by the cores (perfect parallelism) to show how far their targets are from
 * reach; sqlite-floor.ts compares the store with the SQLite part.
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
import { makePod } from "../simulator/pods.ts";
import { withObjectJson, type KubeObject, type Update } from "../sdk/model.ts";
import type { PreparedChange } from "../sdk/prepared.ts";
import type { InValue } from "@libsql/client";
import { chunked, placeholders, UPDATE_COLUMNS } from "../plugins/stores/libsql/commit.ts";
import { fmt } from "./processes.ts";

type Slim = Extract<PreparedChange, { json: string }>;

const SHAPES = 200;
const NODES = 5_000;
/**
 * Rows a transaction: the store's commits take all that is pending, up to its queue's 5,000 (core/pipeline.ts
 * highWater) when it is the slower part, as in a sync. Written so, SQLite alone spent 26.7–30.2 µs of CPU a row on
 * machine I (bench/sqlite-floor.ts) against 35.6 one row a statement and 1,000 a transaction, as this floor measured
 * it before: ~3 µs of libsql's binding a statement, and more WAL pages a row in smaller transactions.
 */
export const TRANSACTION_ROWS = 5_000;
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

/** Each measure writes a file of its own: a run measures its floor more than once (fastestRates). */
let floorFiles = 0;

/** A new file of kubemeta's schema opened by SQLite alone with the store's PRAGMAs, its statements prepared once. */
async function floorDatabase(dir: string) {
  const { file, store } = await newStore(dir, `floor-${++floorFiles}.db`);
  await store.stop();
  const db = new Database(file);
  for (const pragma of ["journal_mode = WAL", "synchronous = NORMAL", "cache_size = -65536", "wal_autocheckpoint = 0"])
    db.exec(`PRAGMA ${pragma}`);
  const streamIds = new Map<string, number>();
  const insertStream = db.prepare("INSERT INTO streams (id, name, head) VALUES (?, ?, 0)");
  const prepared = new Map<string, Database.Statement>();
  /** The store's multi-row statements (commit.ts), each prepared once by its text as the store's writer keeps them. */
  const multiRow = (sql: (values: string) => string, columns: number) => (rows: InValue[][]) => {
    for (const statement of chunked(rows, (n) => sql(placeholders(n, columns)))) {
      let compiled = prepared.get(statement.sql);
      if (!compiled) {
        compiled = db.prepare(statement.sql);
        prepared.set(statement.sql, compiled);
      }
      compiled.run(statement.args);
    }
  };
  const insertUpdates = multiRow((values) => `INSERT INTO updates (${UPDATE_COLUMNS}) VALUES ${values}`, 12);
  const objectsInsert = (values: string) =>
    `INSERT INTO objects (kind, uid, namespace, node, stream_id, version, digest) VALUES ${values}`;
  const insertObjects = multiRow(objectsInsert, 7);
  const moveObjects = multiRow(
    (values) =>
      `${objectsInsert(values)} ON CONFLICT (kind, uid) DO UPDATE ` +
      "SET version = excluded.version, digest = excluded.digest",
    7,
  );
  const streamId = (stream: string): number => {
    let id = streamIds.get(stream);
    if (id === undefined) {
      id = streamIds.size + 1;
      streamIds.set(stream, id);
      insertStream.run([id, stream]);
    }
    return id;
  };
  /** The `updates` rows of `updates` (the i-th's object the i-th slim pod shape), and their objects' rows. */
  const rowsOf = (updates: Update[], first: number) => {
    const ids = updates.map((u) => streamId(u.stream!));
    const updateRows = updates.map((u, k): InValue[] => {
      const { version, type, kind, uid, namespace, name, node, resourceVersion, time } = u;
      const json = slimPods[(first + k) % SHAPES]!.json;
      return [version, ids[k]!, 0, type, kind, uid, namespace, name, node, resourceVersion, time, json];
    });
    const objectRows = updates.map((u, k): InValue[] => {
      const { kind, uid, namespace, node, version } = u;
      return [kind, uid, namespace, node, ids[k]!, version, first + k];
    });
    return { updateRows, objectRows };
  };
  return {
    file,
    db,
    insert(updates: Update[], first: number) {
      const { updateRows, objectRows } = rowsOf(updates, first);
      insertUpdates(updateRows);
      insertObjects(objectRows);
    },
    modify(updates: Update[], first: number) {
      const { updateRows, objectRows } = rowsOf(updates, first);
      insertUpdates(updateRows);
      moveObjects(objectRows);
    },
  };
}

/**
 * `count` rows written by `write` in transactions of TRANSACTION_ROWS, with a PASSIVE checkpoint every 500 ms on the
 * same thread (as the checkpointer), and what that cost. `write(from, to)` writes rows [from, to).
 */
function inTransactions(
  db: Database.Database,
  file: string,
  count: number,
  write: (from: number, to: number) => void,
): Spent {
  const started = performance.now();
  const cpu = process.cpuUsage();
  let checkpointed = started;
  for (let from = 0; from < count; from += TRANSACTION_ROWS) {
    db.exec("BEGIN IMMEDIATE");
    write(from, Math.min(count, from + TRANSACTION_ROWS));
    db.exec("COMMIT");
    if (performance.now() - checkpointed >= CHECKPOINT_EVERY_MS) {
      db.exec("PRAGMA wal_checkpoint(PASSIVE)");
      checkpointed = performance.now();
    }
  }
  const used = process.cpuUsage(cpu);
  return { seconds: (performance.now() - started) / 1000, ...used, bytes: sizeOf(file) };
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, k) => from + k);

/** A slim pod for each uid inserted (an `updates` and an `objects` row each), and what that cost. */
function insertPods(floor: Awaited<ReturnType<typeof floorDatabase>>, uids: string[]): Spent {
  return inTransactions(floor.db, floor.file, uids.length, (from, to) =>
    floor.insert(
      range(from, to).map((i) => podUpdate(i, uids[i]!)),
      from,
    ),
  );
}

/** `uids.length` slim pods inserted by SQLite alone in kubemeta's schema: an `updates` and an `objects` row each. */
export async function sqliteAlone(dir: string, uids: string[]): Promise<Spent> {
  const floor = await floorDatabase(dir);
  const spent = insertPods(floor, uids);
  floor.db.close();
  return spent;
}

/**
 * `changes` modifications of `objects` slim pods by SQLite alone (inserted first, not counted): each a new `updates`
 * row and its object moved to it, the least an ingested change that is kept costs.
 */
export async function sqliteChurn(dir: string, objects: number, changes: number): Promise<Spent> {
  const floor = await floorDatabase(dir);
  const uids = Array.from({ length: objects }, () => crypto.randomUUID());
  insertPods(floor, uids);
  const spent = inTransactions(floor.db, floor.file, changes, (from, to) =>
    floor.modify(
      range(from, to).map((k) => ({
        ...podUpdate(k % objects, uids[k % objects]!),
        version: objects + k + 1,
        type: "MODIFIED" as const,
      })),
      from,
    ),
  );
  floor.db.close();
  return spent;
}

/**
 * CPU nanoseconds a byte of watch lines of real-size pods costs to skim, parse and prepare (slim, serialize, digest,
 * route) on one thread: the parse thread's work without decoding and hand-over. The fastest of three windows of at
 * least `ms` each, after as long a warm-up: the JIT's last tier takes seconds to reach (the first second ran at
 * about half the rate on a 2-core machine).
 */
export function preparePerByte(ms = 1_000): number {
  const lines = pods(2_000).map((pod) => JSON.stringify({ type: "ADDED", object: pod }));
  const bytes = lines.reduce((sum, line) => sum + Buffer.byteLength(line), 0);
  const prepareAll = () => {
    for (const line of lines) prepareChange((parseSkimmed(line) as { object: KubeObject }).object);
  };
  /** CPU nanoseconds a byte over rounds of prepareAll lasting at least `ms`. */
  const window = () => {
    const cpu = process.cpuUsage();
    let rounds = 0;
    let used: NodeJS.CpuUsage;
    do {
      prepareAll();
      rounds++;
      used = process.cpuUsage(cpu);
    } while (used.user + used.system < ms * 1_000);
    return ((used.user + used.system) * 1_000) / (rounds * bytes);
  };
  window();
  return Math.min(window(), window(), window());
}

/** What the floor's two parts cost on one thread, measured at one moment of a run. */
export interface FloorRates {
  /** CPU nanoseconds a byte of watch lines skimmed, parsed and prepared (preparePerByte). */
  parseNs: number;
  /** CPU microseconds a row of SQLite's own writes. */
  sqliteMicros: number;
}

/**
 * Each part at its fastest over the measures of one run, taken minutes apart (before and after what the run
 * measures): a machine's speed drifts from one minute to the next (on M by up to 1.8×, bench/RESULTS.md), and a floor
 * is what the machine can do, so each part takes its best minute.
 */
export function fastestRates(measures: FloorRates[]): FloorRates {
  return {
    parseNs: Math.min(...measures.map((m) => m.parseNs)),
    sqliteMicros: Math.min(...measures.map((m) => m.sqliteMicros)),
  };
}

/** Each measure's rates, for the floor's line: `183 and 246` MB/s, `29.3 and 30.8` µs. */
export function measuredRates(measures: FloorRates[]): { parseMBps: string; sqliteMicros: string } {
  return {
    parseMBps: measures.map((m) => fmt(1e3 / m.parseNs)).join(" and "),
    sqliteMicros: measures.map((m) => m.sqliteMicros.toFixed(1)).join(" and "),
  };
}
