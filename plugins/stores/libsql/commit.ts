/**
 * The statements of one commit, in groups (a group per chunk of rows), all run in one
 * transaction (on the writer's thread for `file:`, libsql/writer.ts). A few multi-row
 * statements per batch instead of one per row: preparing and binding per row is what makes
 * libSQL slow here.
 *
 * @libsql/client prepares every statement it runs, and SQLite compiles each row of a
 * multi-row VALUES (measured: 8.5 µs per row of 12 parameters, a third of a commit's
 * time). Rows of small values therefore go in as one JSON array read with json_each, a
 * statement that compiles once per chunk whatever its size. The updates themselves stay
 * bound: extracting their objects from JSON costs more than compiling their rows.
 */
import type { InStatement, InValue } from "@libsql/client";
import type { CommitBatch } from "../../../sdk/contract.ts";
import { objectJsonOf, type Update } from "../../../sdk/model.ts";

/** Rows per statement, each statement its own group. */
const ROWS_PER_STATEMENT = 250;

export const UPDATE_COLUMNS =
  "version, stream_id, stream_prev, type, kind, uid, namespace, name, node, resource_version, time, object";

/**
 * Moves meta.head from `before` to `after` if the writer's term is still the store's, or
 * fails the transaction: otherwise the CASE yields NULL and the NOT NULL constraint aborts.
 * This keeps the log gap-free against a second writer, and fences out a deposed leader.
 */
const GUARD_SQL = "UPDATE meta SET head = CASE WHEN head = ? AND term = ? THEN ? END WHERE id = 1";
export const GUARD_FAILURE = "NOT NULL constraint failed: meta.head";
/** The same guard for a write that moves no head (retention): it fails unless the writer's term is the store's. */
export const TERM_GUARD_SQL = "UPDATE meta SET head = CASE WHEN term = ? THEN head END WHERE id = 1";
/** Run after the guard, in its transaction: only the writer whose term is the store's marks the objects whole. */
const MARK_WHOLE_SQL = "UPDATE meta SET whole = 1 WHERE id = 1";

/**
 * Objects take their columns from the updates just inserted, so each object is bound once.
 * SQLite rewrites the index entries of every column an UPDATE sets, changed or not, so
 * `node` and `stream_id` are set only where they changed, by a first upsert (which also
 * inserts new objects); a second one moves every object to its new version. Both are
 * upserts because an UPDATE … FROM json_each plans a scan of every object.
 */
const UPSERT_FINAL = `WITH final (version, digest) AS (SELECT value ->> 0, value ->> 1 FROM json_each(?))
  INSERT INTO objects (kind, uid, namespace, node, stream_id, version, digest)
  SELECT u.kind, u.uid, u.namespace, u.node, u.stream_id, u.version, final.digest
  FROM final CROSS JOIN updates AS u ON u.version = final.version WHERE true`;
const MOVE_OBJECTS = `${UPSERT_FINAL}
  ON CONFLICT (kind, uid) DO UPDATE SET node = excluded.node, stream_id = excluded.stream_id
  WHERE objects.node IS NOT excluded.node OR objects.stream_id IS NOT excluded.stream_id`;
const UPSERT_OBJECTS = `${UPSERT_FINAL}
  ON CONFLICT (kind, uid) DO UPDATE SET version = excluded.version, digest = excluded.digest
  WHERE objects.version IS NOT excluded.version`;
const DELETE_OBJECTS = "DELETE FROM objects WHERE (kind, uid) IN (SELECT value ->> 0, value ->> 1 FROM json_each(?))";
/** New streams get their row, known ones a new head. */
const UPSERT_STREAMS = `INSERT INTO streams (id, name, head)
  SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each(?) WHERE true
  ON CONFLICT (id) DO UPDATE SET head = excluded.head`;
const UPSERT_RESUME_POINTS = `INSERT INTO resume_points (resource, resource_version)
  SELECT value ->> 0, value ->> 1 FROM json_each(?) WHERE true
  ON CONFLICT (resource) DO UPDATE SET resource_version = excluded.resource_version`;

const placeholderCache = new Map<string, string>();
/** `(?,…),(?,…)…`: `rows` rows of `columns` parameters, for a multi-row VALUES. */
export function placeholders(rows: number, columns: number): string {
  const key = `${rows}x${columns}`;
  let text = placeholderCache.get(key);
  if (!text) {
    const row = `(${Array.from({ length: columns }, () => "?").join(",")})`;
    text = Array.from({ length: rows }, () => row).join(",");
    placeholderCache.set(key, text);
  }
  return text;
}

/** One statement per chunk of rows, the chunk one JSON argument. */
function chunkedJson(rows: InValue[][], sql: string): InStatement[] {
  const statements: InStatement[] = [];
  for (let i = 0; i < rows.length; i += ROWS_PER_STATEMENT) {
    statements.push({ sql, args: [JSON.stringify(rows.slice(i, i + ROWS_PER_STATEMENT))] });
  }
  return statements;
}

/** One statement per chunk of rows, each row flattened into the arguments. */
export function chunked(rows: InValue[][], sql: (rowCount: number) => string): { sql: string; args: InValue[] }[] {
  const statements: { sql: string; args: InValue[] }[] = [];
  for (let i = 0; i < rows.length; i += ROWS_PER_STATEMENT) {
    const chunk = rows.slice(i, i + ROWS_PER_STATEMENT);
    statements.push({ sql: sql(chunk.length), args: chunk.flat() });
  }
  return statements;
}

/**
 * Stream names to their integer ids. Ids are handed out here, by the only writer, and
 * become known only once the commit that stores them succeeds.
 */
export class StreamIds {
  private readonly ids: Map<string, number>;
  private next: number;
  private pending = new Map<string, number>();

  constructor(known: Iterable<[string, number]>) {
    this.ids = new Map(known);
    this.next = 1;
    for (const id of this.ids.values()) this.next = Math.max(this.next, id + 1);
  }

  idOf(stream: string): number {
    let id = this.ids.get(stream) ?? this.pending.get(stream);
    if (id === undefined) {
      id = this.next + this.pending.size;
      this.pending.set(stream, id);
    }
    return id;
  }

  /** After the commit: the ids it stored are taken. */
  settle(committed: boolean): void {
    if (committed) {
      for (const [stream, id] of this.pending) this.ids.set(stream, id);
      this.next += this.pending.size;
    }
    this.pending = new Map();
  }
}

function updateRow(u: Update, streamIds: StreamIds): InValue[] {
  return [
    u.version,
    u.stream === null ? null : streamIds.idOf(u.stream),
    u.streamPrev,
    u.type,
    u.kind,
    u.uid,
    u.namespace,
    u.name,
    u.node,
    u.resourceVersion,
    u.time,
    objectJsonOf(u),
  ];
}

/** Throws unless the batch continues the log at `head` with consecutive versions. */
export function checkContiguous(batch: CommitBatch, head: number): void {
  const { updates, digests } = batch;
  if (digests.length !== updates.length)
    throw new Error(`commit refused: ${updates.length} updates but ${digests.length} digests`);
  updates.forEach((update, i) => {
    if (update.version !== head + 1 + i) {
      throw new Error(
        `commit refused: version ${update.version} at position ${i} does not continue the log at head ${head} ` +
          "(the log must stay gap-free)",
      );
    }
  });
}

/** The statement groups of a batch already checked by checkContiguous, written by the writer of `term`. */
export function commitStatements(
  batch: CommitBatch,
  head: number,
  term: number,
  streamIds: StreamIds,
): InStatement[][] {
  const { updates, digests } = batch;
  // Resume points alone are fenced too: a deposed leader must not move the next leader's resume points.
  const groups: InStatement[][] = [[{ sql: GUARD_SQL, args: [head, term, head + updates.length] }]];
  if (updates.length > 0) {
    const streamHeads = new Map<string, number>();
    for (const u of updates) if (u.stream !== null) streamHeads.set(u.stream, u.version);
    groups.push(
      chunkedJson(
        [...streamHeads].map(([stream, version]) => [streamIds.idOf(stream), stream, version]),
        UPSERT_STREAMS,
      ),
    );
    for (const statement of chunked(
      updates.map((u) => updateRow(u, streamIds)),
      (n) => `INSERT INTO updates (${UPDATE_COLUMNS}) VALUES ${placeholders(n, 12)}`,
    )) {
      groups.push([statement]);
    }
    // An object changed twice in one batch ends in its last state.
    const finalIndex = new Map<string, number>();
    updates.forEach((u, i) => {
      finalIndex.set(`${u.kind}\u0000${u.uid}`, i);
    });
    const upserts: InValue[][] = [];
    const deletes: InValue[][] = [];
    for (const i of finalIndex.values()) {
      const u = updates[i]!;
      if (u.type === "DELETED") deletes.push([u.kind, u.uid]);
      else upserts.push([u.version, digests[i]!]);
    }
    for (const statement of chunkedJson(upserts, MOVE_OBJECTS)) groups.push([statement]);
    for (const statement of chunkedJson(upserts, UPSERT_OBJECTS)) groups.push([statement]);
    for (const statement of chunkedJson(deletes, DELETE_OBJECTS)) groups.push([statement]);
  }
  groups.push(chunkedJson([...batch.resumePoints], UPSERT_RESUME_POINTS));
  if (batch.whole) groups.push([MARK_WHOLE_SQL]);
  return groups.filter((group) => group.length > 0);
}
