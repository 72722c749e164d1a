/**
 * The store's tables, as ordered migrations. A store records every migration it ran in
 * `schema_version`; opening runs the ones it has not, each in its own transaction, so a
 * later kubemeta can reshape an existing store. Never edit a released migration: append.
 */
import type { Client } from "@libsql/client";

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
];

/** The schema version this build writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/** Brings the store's schema to SCHEMA_VERSION; refuses a store written by a newer kubemeta. */
export async function migrate(client: Client): Promise<void> {
  await client.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)");
  const found = Number((await client.execute("SELECT coalesce(max(version), 0) AS version FROM schema_version")).rows[0]?.version ?? 0);
  if (found > SCHEMA_VERSION) {
    throw new Error(`the store has schema version ${found}, newer than this kubemeta supports (${SCHEMA_VERSION}); upgrade kubemeta or use another store`);
  }
  for (let version = found + 1; version <= SCHEMA_VERSION; version++) {
    await client.batch(
      [
        ...MIGRATIONS[version - 1]!,
        { sql: "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)", args: [version, new Date().toISOString()] },
      ],
      "write",
    );
  }
}
