/**
 * Reads. SQLite builds each row's JSON and joins a page into one string, so a page costs
 * one JSON.parse in JavaScript instead of a row object and a parse per row (measured:
 * 1.2-1.5x the replay throughput). Large results are read in pages by rowid inside one
 * read transaction, yielding to the event loop between pages (statements block it).
 */
import { yieldToEventLoop } from "./connection.ts";
import type { Client, InStatement, InValue, ResultSet } from "@libsql/client";
import type { ObjectDigest, ObjectQuery, StoreState, UpdateQuery } from "../../../core/contract.ts";
import { ALL, type CurrentObject, type Update } from "../../../core/types.ts";

interface Executor {
  execute(statement: InStatement): Promise<ResultSet>;
}

interface Selection {
  table: "updates" | "objects";
  /** A JSON object expression over the table's columns. */
  json: string;
  /** Conditions ANDed with the rowid bound. */
  where: string[];
  args: InValue[];
}

const UPDATE_JSON = `json_object('version', version, 'stream', stream, 'streamPrev', stream_prev, 'type', type, 'kind', kind,
  'uid', uid, 'namespace', namespace, 'name', name, 'node', node, 'resourceVersion', resource_version, 'time', time,
  'object', json(object))`;
const OBJECT_JSON = `json_object('kind', kind, 'uid', uid, 'namespace', namespace, 'name', name, 'node', node, 'stream', stream,
  'version', version, 'resourceVersion', resource_version, 'object', json(object))`;
const DIGEST_JSON = "json_object('kind', kind, 'uid', uid, 'digest', digest, 'stream', stream)";

/** Objects per page of a snapshot: a few milliseconds of blocking each. */
const SNAPSHOT_PAGE = 2_000;
/**
 * Read transactions open at once per client. Each holds one of the client's pooled
 * connections, and once transactions hold them all, @libsql/client fails every other call
 * (TRANSACTION_ACTIVE) instead of queueing it: a burst of snapshots (SSE clients all
 * resetting) would break replays. More than a few gains nothing on one event loop anyway.
 */
const READ_TRANSACTIONS = 4;
const waitingForTransaction = new WeakMap<Client, { active: number; queue: (() => void)[] }>();

async function withReadSlot<T>(reader: Client, work: () => Promise<T>): Promise<T> {
  let slots = waitingForTransaction.get(reader);
  if (!slots) waitingForTransaction.set(reader, (slots = { active: 0, queue: [] }));
  if (slots.active < READ_TRANSACTIONS) slots.active++;
  else await new Promise<void>((resolve) => slots.queue.push(resolve));
  try {
    return await work();
  } finally {
    const next = slots.queue.shift();
    if (next) next();
    else slots.active--;
  }
}

/**
 * Up to `limit` rows after rowid `after`; `last` is the last rowid read. SQLite aggregates
 * the ordered subquery in its order; `group_concat(… ORDER BY rid)` would say so but costs
 * a sort (a fifth of replay throughput), so readers that need the order check it instead.
 */
async function readPage<T>(db: Executor, selection: Selection, after: number, limit: number): Promise<{ items: T[]; last: number }> {
  const where = ["rowid > ?", ...selection.where].join(" AND ");
  const sql = `SELECT max(rid) AS last, '[' || group_concat(j, ',') || ']' AS items
    FROM (SELECT rowid AS rid, ${selection.json} AS j FROM ${selection.table} WHERE ${where} ORDER BY rowid LIMIT ?)`;
  const row = (await db.execute({ sql, args: [after, ...selection.args, limit] })).rows[0];
  if (!row || row.items === null) return { items: [], last: after };
  return { items: JSON.parse(row.items as string) as T[], last: Number(row.last) };
}

/** Every row of a selection, page by page, in one read transaction that also reads meta.head first. */
function readAll<T>(reader: Client, selection: Selection): Promise<{ head: number; items: T[] }> {
  return withReadSlot(reader, () => readAllNow<T>(reader, selection));
}

async function readAllNow<T>(reader: Client, selection: Selection): Promise<{ head: number; items: T[] }> {
  const tx = await reader.transaction("read");
  try {
    const head = Number((await tx.execute("SELECT head FROM meta WHERE id = 1")).rows[0]?.head ?? 0);
    const items: T[] = [];
    let after = 0;
    for (;;) {
      const page = await readPage<T>(tx, selection, after, SNAPSHOT_PAGE);
      items.push(...page.items);
      if (page.items.length < SNAPSHOT_PAGE) return { head, items };
      after = page.last;
      await yieldToEventLoop();
    }
  } finally {
    tx.close();
  }
}

export async function readUpdates(reader: Client, query: UpdateQuery): Promise<Update[]> {
  if (query.limit <= 0) return [];
  const where = ["rowid <= ?"];
  const args: InValue[] = [query.to ?? Number.MAX_SAFE_INTEGER];
  if (query.stream !== ALL) {
    where.push("stream = ?");
    args.push(query.stream);
  }
  const { items } = await readPage<Update>(reader, { table: "updates", json: UPDATE_JSON, where, args }, query.after, query.limit);
  const ordered = items.every((update, i) => i === 0 || items[i - 1]!.version < update.version);
  return ordered ? items : items.sort((a, b) => a.version - b.version);
}

export async function snapshot(reader: Client, query: ObjectQuery): Promise<{ version: number; objects: CurrentObject[] }> {
  const where: string[] = [];
  const args: InValue[] = [];
  const equal = (column: string, value: string | undefined) => {
    if (value === undefined) return;
    where.push(`${column} = ?`);
    args.push(value);
  };
  if (query.stream !== ALL) equal("stream", query.stream);
  equal("kind", query.kind);
  equal("namespace", query.namespace);
  equal("node", query.node);
  if (query.uids) {
    where.push("uid IN (SELECT value FROM json_each(?))");
    args.push(JSON.stringify(query.uids));
  }
  const { head, items } = await readAll<CurrentObject>(reader, { table: "objects", json: OBJECT_JSON, where, args });
  return { version: head, objects: items };
}

export async function digests(reader: Client): Promise<ObjectDigest[]> {
  return (await readAll<ObjectDigest>(reader, { table: "objects", json: DIGEST_JSON, where: [], args: [] })).items;
}

/** What the store holds, read in one transaction. */
export async function loadState(reader: Client): Promise<StoreState> {
  const [meta, oldest, streams, resumePoints] = await reader.batch(
    [
      "SELECT epoch, head FROM meta WHERE id = 1",
      "SELECT min(version) AS oldest FROM updates",
      "SELECT stream, head FROM streams",
      "SELECT resource, resource_version FROM resume_points",
    ],
    "read",
  );
  const row = meta!.rows[0];
  if (!row) throw new Error("the store has no meta row (not initialised)");
  const head = Number(row.head);
  return {
    epoch: String(row.epoch),
    head,
    oldest: oldest!.rows[0]?.oldest == null ? head + 1 : Number(oldest!.rows[0].oldest),
    streamHeads: new Map(streams!.rows.map((r) => [String(r.stream), Number(r.head)])),
    resumePoints: new Map(resumePoints!.rows.map((r) => [String(r.resource), String(r.resource_version)])),
  };
}
