/**
 * The statements of one commit, in groups that run in one transaction; the store may
 * yield to the event loop between groups. A few multi-row statements per batch instead of
 * one per row: preparing and binding per row is what makes libSQL slow here.
 */
import type { InStatement, InValue } from "@libsql/client";
import type { CommitBatch } from "../../../core/contract.ts";
import type { Update } from "../../../core/types.ts";

/** Rows per statement: each is one group, so this bounds how long a commit blocks between yields (~10 ms here). */
const ROWS_PER_STATEMENT = 250;

const UPDATE_COLUMNS = "version, stream, stream_prev, type, kind, uid, namespace, name, node, resource_version, time, object";

/**
 * Moves meta.head from `before` to `after`, or fails the transaction: when head is not
 * `before`, the CASE yields NULL and the NOT NULL constraint aborts. This keeps the log
 * gap-free even against a second writer on the same file.
 */
const GUARD_SQL = "UPDATE meta SET head = CASE WHEN head = ? THEN ? END WHERE id = 1";
export const GUARD_FAILURE = "NOT NULL constraint failed: meta.head";

/**
 * Objects take their columns from the updates just inserted, so each object is bound once.
 * The upsert leaves `node` and `stream` alone: SQLite rewrites the index entries of every
 * column it sets, changed or not, so a separate statement moves only the objects that moved.
 */
const FINAL = (rows: number) => `WITH final (version, digest) AS (VALUES ${placeholders(rows, 2)})`;
const upsertObjectsSql = (rows: number) => `${FINAL(rows)}
  INSERT INTO objects (kind, uid, namespace, name, node, stream, version, resource_version, digest, object)
  SELECT u.kind, u.uid, u.namespace, u.name, u.node, u.stream, u.version, u.resource_version, final.digest, u.object
  FROM final JOIN updates AS u ON u.version = final.version WHERE true
  ON CONFLICT (kind, uid) DO UPDATE SET version = excluded.version, resource_version = excluded.resource_version,
    digest = excluded.digest, object = excluded.object`;
const moveObjectsSql = (rows: number) => `${FINAL(rows)}
  UPDATE objects SET node = u.node, stream = u.stream
  FROM final JOIN updates AS u ON u.version = final.version
  WHERE objects.kind = u.kind AND objects.uid = u.uid AND (objects.node IS NOT u.node OR objects.stream IS NOT u.stream)`;

const placeholderCache = new Map<string, string>();
function placeholders(rows: number, columns: number): string {
  const key = `${rows}x${columns}`;
  let text = placeholderCache.get(key);
  if (!text) {
    const row = `(${Array.from({ length: columns }, () => "?").join(",")})`;
    text = Array.from({ length: rows }, () => row).join(",");
    placeholderCache.set(key, text);
  }
  return text;
}

/** One statement per chunk of rows, each row flattened into the arguments. */
function chunked(rows: InValue[][], sql: (rowCount: number) => string): InStatement[] {
  const statements: InStatement[] = [];
  for (let i = 0; i < rows.length; i += ROWS_PER_STATEMENT) {
    const chunk = rows.slice(i, i + ROWS_PER_STATEMENT);
    statements.push({ sql: sql(chunk.length), args: chunk.flat() });
  }
  return statements;
}

function updateRow(u: Update): InValue[] {
  return [u.version, u.stream, u.streamPrev, u.type, u.kind, u.uid, u.namespace, u.name, u.node, u.resourceVersion, u.time, JSON.stringify(u.object)];
}

/** Throws unless the batch continues the log at `head` with consecutive versions. */
export function checkContiguous(batch: CommitBatch, head: number): void {
  const { updates, digests } = batch;
  if (digests.length !== updates.length) throw new Error(`commit refused: ${updates.length} updates but ${digests.length} digests`);
  updates.forEach((update, i) => {
    if (update.version !== head + 1 + i) {
      throw new Error(`commit refused: version ${update.version} at position ${i} does not continue the log at head ${head} (the log must stay gap-free)`);
    }
  });
}

/** The statement groups of a batch already checked by checkContiguous. */
export function commitStatements(batch: CommitBatch, head: number): InStatement[][] {
  const { updates, digests } = batch;
  const groups: InStatement[][] = [];
  if (updates.length > 0) {
    const last = updates[updates.length - 1]!.version;
    groups.push([{ sql: GUARD_SQL, args: [head, last] }]);
    for (const statement of chunked(updates.map(updateRow), (n) => `INSERT INTO updates (${UPDATE_COLUMNS}) VALUES ${placeholders(n, 12)}`)) {
      groups.push([statement]);
    }
    // An object changed twice in one batch ends in its last state.
    const finalIndex = new Map<string, number>();
    updates.forEach((u, i) => finalIndex.set(`${u.kind}\u0000${u.uid}`, i));
    const upserts: InValue[][] = [];
    const deletes: InValue[][] = [];
    for (const i of finalIndex.values()) {
      const u = updates[i]!;
      if (u.type === "DELETED") deletes.push([u.kind, u.uid]);
      else upserts.push([u.version, digests[i]!]);
    }
    for (const statement of chunked(upserts, moveObjectsSql)) groups.push([statement]);
    for (const statement of chunked(upserts, upsertObjectsSql)) groups.push([statement]);
    for (const statement of chunked(deletes, (n) => `DELETE FROM objects WHERE (kind, uid) IN (VALUES ${placeholders(n, 2)})`)) {
      groups.push([statement]);
    }
    const streamHeads = new Map<string, number>();
    for (const u of updates) if (u.stream !== null) streamHeads.set(u.stream, u.version);
    groups.push(
      chunked([...streamHeads], (n) => `INSERT INTO streams (stream, head) VALUES ${placeholders(n, 2)} ON CONFLICT (stream) DO UPDATE SET head = excluded.head`),
    );
  }
  groups.push(
    chunked(
      [...batch.resumePoints],
      (n) => `INSERT INTO resume_points (resource, resource_version) VALUES ${placeholders(n, 2)} ON CONFLICT (resource) DO UPDATE SET resource_version = excluded.resource_version`,
    ),
  );
  return groups.filter((group) => group.length > 0);
}
