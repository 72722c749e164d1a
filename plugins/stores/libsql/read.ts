/**
 * Reads. SQLite builds each row's fields as a JSON array and joins a page into one string,
 * so a page costs one JSON.parse in JavaScript instead of a row object per row (@libsql/client
 * rows are slow). The stored object JSON of the rows comes as a second string, joined by
 * newlines (JSON.stringify, which wrote them, escapes every newline inside), and is carried
 * as it is (sdk/model.ts withObjectJson): envelopes embed it, nothing parses it only to
 * stringify it again (bench/replay.ts, 1,000,000 real-size pods: log reads from the store went
 * from 81,000 to 155,000 updates/s). Large results are read in pages by rowid inside one read
 * transaction, yielding to the event loop between pages (statements block it).
 *
 * Remote (sqld, Turso): a read transaction is a server stream that the server closes once
 * idle for 10 s, rolling it back, and the next page fails with STREAM_EXPIRED. While a
 * page waits for a slow consumer (an SSE client on a slow link), the stream is pinged.
 * And sqld refuses a statement whose result passes 10 MB (--max-response-size), which one
 * page string of large objects can: remote pages are also bounded in bytes.
 */
import { yieldToEventLoop } from "./connection.ts";
import type { Client, InStatement, InValue, ResultSet } from "@libsql/client";
import type { ObjectDigest, ObjectQuery, StoreState, UpdateQuery } from "../../../sdk/contract.ts";
import { ALL } from "../../../protocol/streams.ts";
import { type CurrentObject, type Update, withObjectJson } from "../../../sdk/model.ts";

interface Executor {
  execute(statement: InStatement): Promise<ResultSet>;
}

interface Selection<T> {
  /** Tables and joins; the first is the one paged by rowid, named `t`. */
  from: string;
  /** A JSON array expression over the tables' columns: the fields `decode` takes. */
  fields: string;
  /** An expression for the stored JSON text of each row's object, if the rows have one. */
  object?: string;
  /** The item of one row, from its fields and its object's JSON text ("" when the selection has none). */
  decode(fields: unknown[], objectJson: string): T;
  /** Conditions ANDed with the rowid bound. */
  where: string[];
  args: InValue[];
  /** An SQL expression: rows at or below it are never read (default: none). */
  floor?: string;
  /** The floor's parameters. */
  floorArgs?: InValue[];
}

/** The id of the stream named by a parameter (NULL, matching nothing, when it has none). */
const STREAM_ID = "(SELECT id FROM streams WHERE name = ?)";
/** Versions at or below it are pruned or kept only as the current state of an object. */
const PRUNED_THROUGH = "(SELECT pruned_through FROM meta WHERE id = 1)";
/** The same for one stream (named by a parameter): below it, retention deleted updates of that stream. */
const STREAM_PRUNED_THROUGH = `coalesce(
  (SELECT pruned_through FROM stream_horizons WHERE stream_id = ${STREAM_ID}), 0)`;

const UPDATES = "updates AS t LEFT JOIN streams AS s ON s.id = t.stream_id";
const UPDATE_FIELDS = `json_array(t.version, s.name, t.stream_prev, t.type, t.kind, t.uid, t.namespace, t.name,
  t.node, t.resource_version, t.time)`;
/** The store wrote each field from the type the model gives it. */
function decodeUpdate(row: unknown[], objectJson: string): Update {
  const [version, stream, streamPrev, type, kind, uid, namespace, name, node, resourceVersion, time] = row;
  const fields = { version, stream, streamPrev, type, kind, uid, namespace, name, node, resourceVersion, time };
  return withObjectJson(fields as Omit<Update, "object">, objectJson);
}

/** An object's state is its latest update; CROSS JOIN keeps objects the outer loop, in rowid order. */
const OBJECTS =
  "objects AS t CROSS JOIN updates AS u ON u.version = t.version LEFT JOIN streams AS s ON s.id = t.stream_id";
const OBJECT_FIELDS = "json_array(t.kind, t.uid, u.namespace, u.name, t.node, s.name, t.version, u.resource_version)";
function decodeObject(row: unknown[], objectJson: string): CurrentObject {
  const [kind, uid, namespace, name, node, stream, version, resourceVersion] = row;
  const fields = { kind, uid, namespace, name, node, stream, version, resourceVersion };
  return withObjectJson(fields as Omit<CurrentObject, "object">, objectJson);
}

const DIGESTS = "objects AS t LEFT JOIN streams AS s ON s.id = t.stream_id";
const DIGEST_FIELDS = "json_array(t.kind, t.uid, t.digest, s.name)";
function decodeDigest(row: unknown[]): ObjectDigest {
  const [kind, uid, digest, stream] = row;
  return { kind, uid, digest, stream } as ObjectDigest;
}

/** Objects per page of a snapshot: a few milliseconds of blocking each. */
const SNAPSHOT_PAGE = 2_000;
/**
 * Read transactions open at once per client. Each holds one of the client's pooled
 * connections, and once transactions hold them all, @libsql/client fails every other call
 * (TRANSACTION_ACTIVE) instead of queueing it: a burst of snapshots (SSE clients all
 * resetting) would break replays. More than a few gains nothing on one event loop anyway.
 */
const READ_TRANSACTIONS = 4;
/** Well inside sqld's 10 s idle limit for streams. */
const KEEP_ALIVE_MS = 3_000;
/** Well inside sqld's 10 MB limit on a statement's result; the JSON of one object may pass it alone. */
const REMOTE_PAGE_BYTES = 4_000_000;

/** A file: client runs statements in this process; anything else is a server with its limits. */
const isRemote = (reader: Client) => reader.protocol !== "file";

export interface PageOptions {
  /** How often a remote read transaction is pinged while its consumer holds a page. */
  keepAliveMs?: number;
}
const waitingForTransaction = new WeakMap<Client, { active: number; queue: (() => void)[] }>();

/** Waits for a read slot; the returned function gives it back. */
async function takeReadSlot(reader: Client): Promise<() => void> {
  let slots = waitingForTransaction.get(reader);
  if (!slots) {
    slots = { active: 0, queue: [] };
    waitingForTransaction.set(reader, slots);
  }
  if (slots.active < READ_TRANSACTIONS) slots.active++;
  else await new Promise<void>((resolve) => slots.queue.push(resolve));
  const held = slots;
  return () => {
    const next = held.queue.shift();
    if (next) next();
    else held.active--;
  };
}

/** The items of a page's two strings: the rows' field arrays as one JSON array, their objects joined by newlines. */
function decodePage<T>(selection: Selection<T>, fieldsJson: string, objectsText: string | null): T[] {
  const rows = JSON.parse(fieldsJson) as unknown[][];
  const objects = selection.object === undefined ? [] : (objectsText ?? "").split("\n");
  if (selection.object !== undefined && objects.length !== rows.length)
    throw new Error(`a page of ${rows.length} rows came with ${objects.length} objects`);
  return rows.map((fields, i) => selection.decode(fields, objects[i] ?? ""));
}

/**
 * Up to `limit` rows after rowid `after`; `last` is the last rowid read. SQLite aggregates
 * the ordered subquery in its order, both strings in the same pass; `group_concat(… ORDER BY
 * rid)` would say so but costs a sort (a fifth of replay throughput), so readers that need
 * the order check it instead. With `maxBytes` (remote), each statement returns rows within
 * that many bytes (at least one), and statements follow until `limit` rows or the end.
 */
async function readPage<T>(
  db: Executor,
  selection: Selection<T>,
  after: number,
  limit: number,
  maxBytes?: number,
): Promise<{ items: T[]; last: number }> {
  const floor = selection.floor ? `max(?, ${selection.floor})` : "?";
  const floorArgs = selection.floorArgs ?? [];
  const where = [`t.rowid > ${floor}`, ...selection.where].join(" AND ");
  const rows = `SELECT t.rowid AS rid, ${selection.fields} AS j, ${selection.object ?? "NULL"} AS o
      FROM ${selection.from} WHERE ${where} ORDER BY t.rowid LIMIT ?`;
  const columns = "max(rid) AS last, '[' || group_concat(j, ',') || ']' AS items, group_concat(o, char(10)) AS objects";
  if (maxBytes === undefined) {
    const sql = `SELECT ${columns} FROM (${rows})`;
    const row = (await db.execute({ sql, args: [after, ...floorArgs, ...selection.args, limit] })).rows[0];
    if (!row || row.items === null) return { items: [], last: after };
    return { items: decodePage(selection, row.items as string, row.objects as string | null), last: Number(row.last) };
  }
  // `before`: the bytes of the rows ahead of this one; `cut` when rows within `limit` were left out.
  const bytes = "(length(CAST(j AS BLOB)) + ifnull(length(CAST(o AS BLOB)), 0))";
  const sql = `SELECT ${columns}, max(n) > count(*) AS cut
    FROM (SELECT rid, j, o, count(*) OVER () AS n,
        sum(${bytes}) OVER (ORDER BY rid ROWS UNBOUNDED PRECEDING) - ${bytes} AS before
      FROM (${rows}))
    WHERE before < ?`;
  const items: T[] = [];
  let last = after;
  while (items.length < limit) {
    const args = [last, ...floorArgs, ...selection.args, limit - items.length, maxBytes];
    const row = (await db.execute({ sql, args })).rows[0];
    if (!row || row.items === null) break;
    items.push(...decodePage(selection, row.items as string, row.objects as string | null));
    last = Number(row.last);
    if (!row.cut) break;
  }
  return { items, last };
}

/** Every row of a selection, page by page, in one read transaction that also reads meta.head first. */
async function readAll<T>(reader: Client, selection: Selection<T>): Promise<{ head: number; items: T[] }> {
  let head = 0;
  const items: T[] = [];
  for await (const page of readPages<T>(reader, selection, SNAPSHOT_PAGE)) {
    head = page.head;
    items.push(...page.items);
  }
  return { head, items };
}

/**
 * The rows of a selection `limit` at a time, in one read transaction (one consistent view)
 * that also reads meta.head first. The first page comes even when it is empty. The read
 * slot and the transaction are held until the last page is taken or the loop is left.
 */
async function* readPages<T>(
  reader: Client,
  selection: Selection<T>,
  limit: number,
  { keepAliveMs = KEEP_ALIVE_MS }: PageOptions = {},
): AsyncGenerator<{ head: number; items: T[] }> {
  const release = await takeReadSlot(reader);
  try {
    const tx = await reader.transaction("read");
    // A file: transaction is its connection's and never expires.
    const remote = isRemote(reader);
    try {
      const head = Number((await tx.execute("SELECT head FROM meta WHERE id = 1")).rows[0]?.head ?? 0);
      let after = 0;
      for (;;) {
        const page = await readPage<T>(tx, selection, after, limit, remote ? REMOTE_PAGE_BYTES : undefined);
        // The client queues a ping behind a page read and vice versa; a ping cut by tx.close() fails harmlessly.
        const ping = remote ? setInterval(() => void tx.execute("SELECT 1").catch(() => {}), keepAliveMs) : undefined;
        // A consumer that never resumes must not keep the process alive.
        ping?.unref();
        try {
          yield { head, items: page.items };
        } finally {
          clearInterval(ping);
        }
        if (page.items.length < limit) return;
        after = page.last;
        await yieldToEventLoop();
      }
    } finally {
      tx.close();
    }
  } finally {
    release();
  }
}

export async function readUpdates(reader: Client, query: UpdateQuery): Promise<Update[]> {
  if (query.limit <= 0) return [];
  const where = ["t.rowid <= ?"];
  const args: InValue[] = [query.to ?? Number.MAX_SAFE_INTEGER];
  const single = query.stream !== ALL;
  if (single) {
    where.push(`t.stream_id = ${STREAM_ID}`);
    args.push(query.stream);
  }
  const selection = {
    from: UPDATES,
    fields: UPDATE_FIELDS,
    object: "t.object",
    decode: decodeUpdate,
    where,
    args,
    floor: single ? STREAM_PRUNED_THROUGH : PRUNED_THROUGH,
    floorArgs: single ? [query.stream] : [],
  };
  const maxBytes = isRemote(reader) ? REMOTE_PAGE_BYTES : undefined;
  const { items } = await readPage<Update>(reader, selection, query.after, query.limit, maxBytes);
  const ordered = items.every((update, i) => i === 0 || items[i - 1]!.version < update.version);
  return ordered ? items : items.sort((a, b) => a.version - b.version);
}

function objectSelection(query: ObjectQuery): Selection<CurrentObject> {
  const where: string[] = [];
  const args: InValue[] = [];
  const equal = (condition: string, value: string | undefined) => {
    if (value === undefined) return;
    where.push(condition);
    args.push(value);
  };
  if (query.stream !== ALL) equal(`t.stream_id = ${STREAM_ID}`, query.stream);
  equal("t.kind = ?", query.kind);
  equal("t.namespace = ?", query.namespace);
  equal("t.node = ?", query.node);
  if (query.uids) {
    where.push("t.uid IN (SELECT value FROM json_each(?))");
    args.push(JSON.stringify(query.uids));
  }
  return { from: OBJECTS, fields: OBJECT_FIELDS, object: "u.object", decode: decodeObject, where, args };
}

export async function snapshot(
  reader: Client,
  query: ObjectQuery,
): Promise<{ version: number; objects: CurrentObject[] }> {
  const { head, items } = await readAll<CurrentObject>(reader, objectSelection(query));
  return { version: head, objects: items };
}

export async function* snapshotPages(
  reader: Client,
  query: ObjectQuery,
  pageSize: number,
  options?: PageOptions,
): AsyncGenerator<{ version: number; objects: CurrentObject[] }> {
  for await (const { head, items } of readPages<CurrentObject>(reader, objectSelection(query), pageSize, options))
    yield { version: head, objects: items };
}

export async function digests(reader: Client): Promise<ObjectDigest[]> {
  return (await readAll(reader, { from: DIGESTS, fields: DIGEST_FIELDS, decode: decodeDigest, where: [], args: [] }))
    .items;
}

/** What the store holds, read in one transaction. */
export async function loadState(reader: Client): Promise<StoreState> {
  const [meta, streams, resumePoints] = await reader.batch(
    [
      "SELECT epoch, head, pruned_through FROM meta WHERE id = 1",
      "SELECT name, head FROM streams",
      "SELECT resource, resource_version FROM resume_points",
    ],
    "read",
  );
  const row = meta!.rows[0];
  if (!row) throw new Error("the store has no meta row (not initialised)");
  return {
    epoch: String(row.epoch),
    head: Number(row.head),
    oldest: Number(row.pruned_through) + 1,
    streamHeads: new Map(streams!.rows.map((r) => [String(r.name), Number(r.head)])),
    resumePoints: new Map(resumePoints!.rows.map((r) => [String(r.resource), String(r.resource_version)])),
  };
}

/** Each stream's horizon: the last of its updates retention deleted (streams it deleted none of are absent). */
export async function loadHorizons(reader: Client): Promise<Map<string, number>> {
  const sql = "SELECT s.name, h.pruned_through FROM stream_horizons AS h JOIN streams AS s ON s.id = h.stream_id";
  return new Map((await reader.execute(sql)).rows.map((r) => [String(r.name), Number(r.pruned_through)]));
}

/** One stream's horizon, 0 when retention deleted none of its updates. */
export async function streamHorizon(reader: Client, stream: string): Promise<number> {
  const sql = `SELECT pruned_through FROM stream_horizons WHERE stream_id = ${STREAM_ID}`;
  return Number((await reader.execute({ sql, args: [stream] })).rows[0]?.pruned_through ?? 0);
}

/** The id of every stream, for the writer that hands out new ones. */
export async function loadStreamIds(reader: Client): Promise<[string, number][]> {
  return (await reader.execute("SELECT name, id FROM streams")).rows.map((r) => [String(r.name), Number(r.id)]);
}
