/**
 * The store's tables, as ordered migrations. A store records every migration it ran in
 * `schema_version`; opening runs the ones it has not, each in its own transaction, so a
 * later kubemeta can reshape an existing store. Never edit a released migration: append.
 */
import type { Writer } from "./writer.ts";
import { StoreTooNewError } from "../../../sdk/contract.ts";

const MIGRATIONS: readonly (readonly string[])[] = [
  [
    // One row: the epoch (random, created with the store) and the highest committed version.
    `CREATE TABLE meta (
      id INTEGER PRIMARY KEY CHECK (id = 1),
      epoch TEXT NOT NULL,
      head INTEGER NOT NULL
    )`,
    // The update log, gap-free from its oldest version to meta.head.
    `CREATE TABLE updates (
      version INTEGER PRIMARY KEY,
      stream TEXT,
      stream_prev INTEGER NOT NULL,
      type TEXT NOT NULL,
      kind TEXT NOT NULL,
      uid TEXT NOT NULL,
      namespace TEXT,
      name TEXT NOT NULL,
      node TEXT,
      resource_version TEXT NOT NULL,
      time TEXT NOT NULL,
      object TEXT NOT NULL
    )`,
    "CREATE INDEX updates_by_stream ON updates (stream, version)",
    // Current state. Snapshots page by rowid; each single-column index keeps rowid order within a value.
    `CREATE TABLE objects (
      kind TEXT NOT NULL,
      uid TEXT NOT NULL,
      namespace TEXT,
      name TEXT NOT NULL,
      node TEXT,
      stream TEXT,
      version INTEGER NOT NULL,
      resource_version TEXT NOT NULL,
      digest INTEGER NOT NULL,
      object TEXT NOT NULL,
      PRIMARY KEY (kind, uid)
    )`,
    "CREATE INDEX objects_by_kind ON objects (kind)",
    "CREATE INDEX objects_by_stream ON objects (stream)",
    "CREATE INDEX objects_by_namespace ON objects (namespace)",
    "CREATE INDEX objects_by_node ON objects (node) WHERE node IS NOT NULL",
    "CREATE TABLE streams (stream TEXT PRIMARY KEY, head INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE resume_points (resource TEXT PRIMARY KEY, resource_version TEXT NOT NULL) WITHOUT ROWID",
    "CREATE TABLE cursors (name TEXT PRIMARY KEY, version INTEGER NOT NULL) WITHOUT ROWID",
  ],
  // Each update's JSON written once: an object's current state is its latest update, so
  // `objects` keeps only what queries filter on and points at that update by version.
  // Streams get integer ids, which keep the stream index and the objects rows small.
  [
    // Retention keeps the updates current objects point at, so min(version) no longer
    // tells where the log is complete: the horizon is kept here instead.
    "ALTER TABLE meta ADD COLUMN pruned_through INTEGER NOT NULL DEFAULT 0",
    "UPDATE meta SET pruned_through = coalesce((SELECT min(version) - 1 FROM updates), head)",
    "ALTER TABLE streams RENAME TO streams_v1",
    `CREATE TABLE streams (
      id INTEGER PRIMARY KEY,
      name TEXT NOT NULL UNIQUE,
      head INTEGER NOT NULL
    )`,
    "INSERT INTO streams (name, head) SELECT stream, head FROM streams_v1",
    `INSERT INTO streams (name, head) SELECT stream, max(version) FROM updates
      WHERE stream IS NOT NULL AND stream NOT IN (SELECT name FROM streams) GROUP BY stream`,
    `INSERT INTO streams (name, head) SELECT DISTINCT stream, 0 FROM objects
      WHERE stream IS NOT NULL AND stream NOT IN (SELECT name FROM streams)`,
    "ALTER TABLE updates RENAME TO updates_v1",
    `CREATE TABLE updates (
      version INTEGER PRIMARY KEY,
      stream_id INTEGER,
      stream_prev INTEGER NOT NULL,
      type TEXT NOT NULL,
      kind TEXT NOT NULL,
      uid TEXT NOT NULL,
      namespace TEXT,
      name TEXT NOT NULL,
      node TEXT,
      resource_version TEXT NOT NULL,
      time TEXT NOT NULL,
      object TEXT NOT NULL
    )`,
    `INSERT INTO updates SELECT u.version, s.id, u.stream_prev, u.type, u.kind, u.uid, u.namespace, u.name, u.node,
      u.resource_version, u.time, u.object FROM updates_v1 AS u LEFT JOIN streams AS s ON s.name = u.stream`,
    // Objects whose update v1 retention already deleted: their state becomes that update
    // again, below the horizon, where no reader of the log sees it.
    `INSERT INTO updates SELECT o.version, s.id, 0, 'MODIFIED', o.kind, o.uid, o.namespace, o.name, o.node,
      o.resource_version, '', o.object FROM objects AS o LEFT JOIN streams AS s ON s.name = o.stream
      WHERE o.version NOT IN (SELECT version FROM updates)`,
    "ALTER TABLE objects RENAME TO objects_v1",
    `CREATE TABLE objects (
      kind TEXT NOT NULL,
      uid TEXT NOT NULL,
      namespace TEXT,
      node TEXT,
      stream_id INTEGER,
      version INTEGER NOT NULL,
      digest INTEGER NOT NULL,
      PRIMARY KEY (kind, uid)
    )`,
    `INSERT INTO objects SELECT o.kind, o.uid, o.namespace, o.node, s.id, o.version, o.digest
      FROM objects_v1 AS o LEFT JOIN streams AS s ON s.name = o.stream ORDER BY o.rowid`,
    "DROP TABLE objects_v1",
    "DROP TABLE updates_v1",
    "DROP TABLE streams_v1",
    // Renamed tables keep their indexes (and names): these come after the drops.
    "CREATE INDEX updates_by_stream ON updates (stream_id)",
    "CREATE INDEX objects_by_kind ON objects (kind)",
    "CREATE INDEX objects_by_stream ON objects (stream_id)",
    "CREATE INDEX objects_by_namespace ON objects (namespace)",
    "CREATE INDEX objects_by_node ON objects (node) WHERE node IS NOT NULL",
  ],
  // The writer's term (fencing): each leader raises it, and every commit checks it in its own transaction.
  ["ALTER TABLE meta ADD COLUMN term INTEGER NOT NULL DEFAULT 0"],
  // Per stream, the highest version deleted from it: a reader of a quiet stream resumes from further back than the
  // log's horizon, as long as nothing of its stream was deleted after its position. What was pruned before is not
  // known per stream: every stream starts at the log's horizon. A trigger raises it, so that whatever deletes an
  // update does (a kubemeta of the previous release still leading during a rolling upgrade too).
  [
    "CREATE TABLE stream_horizons (stream_id INTEGER PRIMARY KEY, pruned_through INTEGER NOT NULL)",
    "INSERT INTO stream_horizons SELECT id, (SELECT pruned_through FROM meta WHERE id = 1) FROM streams",
    `CREATE TRIGGER updates_deleted_raise_stream_horizon AFTER DELETE ON updates WHEN old.stream_id IS NOT NULL
    BEGIN
      INSERT INTO stream_horizons (stream_id, pruned_through) VALUES (old.stream_id, old.version)
        ON CONFLICT (stream_id) DO UPDATE SET pruned_through = max(pruned_through, excluded.pruned_through);
    END`,
  ],
  // Whether the objects are whole: the leader sets it with the commit that ends its sources' first sync, so that a
  // follower, or a process restarted during that sync, holds the state back until then. A store that held updates
  // before counts as whole (the rule until now): an upgrade never makes a running cluster's readers wait.
  ["ALTER TABLE meta ADD COLUMN whole INTEGER NOT NULL DEFAULT 0", "UPDATE meta SET whole = 1 WHERE head > 0"],
];

/** The schema version this build writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/**
 * Brings the store's schema to `target` (tests build older stores with it); refuses a store written by a newer
 * kubemeta. Returns the version the store had, 0 for a new one.
 */
export async function migrate(client: Writer, target = SCHEMA_VERSION): Promise<number> {
  const found = await schemaOf(client);
  for (let version = found + 1; version <= target; version++) {
    await migrateTo(client, version);
  }
  return found;
}

/**
 * For `--check`: a new store is made as a start makes it; one that exists is refused as a start would refuse it and
 * otherwise left as it is, since its migrations are a start's: once migrated, a kubemeta of an earlier schema (one
 * still serving it, or rolled back to) cannot open it. Says what the next start will migrate, if anything.
 */
export async function checkSchema(client: Writer): Promise<string[]> {
  const found = await schemaOf(client);
  if (found === 0) await migrate(client);
  if (found === 0 || found === SCHEMA_VERSION) return [];
  return [
    `the store has schema version ${found}, an earlier kubemeta's: the next start of this kubemeta migrates it to ` +
      `${SCHEMA_VERSION}, after which the earlier kubemeta cannot open it (no rollback on this store)`,
  ];
}

/** The schema version a store holds, 0 for a new one; refuses another application's database and a newer kubemeta's. */
async function schemaOf(client: Writer): Promise<number> {
  await refuseForeign(client);
  await client.execute(
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
  );
  const found = Number(
    (await client.execute("SELECT coalesce(max(version), 0) AS version FROM schema_version")).rows[0]?.version ?? 0,
  );
  if (found > SCHEMA_VERSION) {
    throw new StoreTooNewError(
      `the store has schema version ${found}, newer than this kubemeta supports (${SCHEMA_VERSION}); ` +
        "upgrade kubemeta or use another store",
    );
  }
  return found;
}

/**
 * Tables that tools keep in any database beside its own: SQLite's, libSQL's (its WASM functions), and Litestream's,
 * which replicates a `file:` store and may create them in a new one before kubemeta does.
 */
const TOOLS_TABLES = /^(sqlite_|libsql_|_litestream_)/;

/**
 * A database with tables and no `schema_version` is another application's: migrating it would add kubemeta's tables
 * to it (with `--check` too), or stop half-way on a table name they share.
 */
async function refuseForeign(client: Writer): Promise<void> {
  const { rows } = await client.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name");
  const tables = rows.map((row) => String(row.name)).filter((name) => !TOOLS_TABLES.test(name));
  if (tables.length === 0 || tables.includes("schema_version")) return;
  const named = tables.slice(0, 5).join(", ") + (tables.length > 5 ? `, … (${tables.length} tables)` : "");
  throw new Error(
    `it holds another application's tables (${named}), not a kubemeta store; give kubemeta a database of its own`,
  );
}

/** Runs one migration. Replicas opening a new shared store together race here: the loser finds it done. */
async function migrateTo(client: Writer, version: number): Promise<void> {
  try {
    await client.batch(
      [
        ...MIGRATIONS[version - 1]!,
        {
          sql: "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
          args: [version, new Date().toISOString()],
        },
      ],
      "write",
    );
  } catch (error) {
    const { rows } = await client.execute({ sql: "SELECT 1 FROM schema_version WHERE version = ?", args: [version] });
    if (rows.length === 0) throw error;
  }
}
