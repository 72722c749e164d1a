/**
 * Paged reads. SQLite builds each row's fields as a JSON array and joins a page into one
 * string, so a page costs one JSON.parse in JavaScript instead of a row object per row
 * (@libsql/client rows are slow). The stored object JSON of the rows comes as a second
 * string, joined by newlines (JSON.stringify, which wrote them, escapes every newline
 * inside), and is carried as it is (sdk/model.ts withObjectJson): envelopes embed it,
 * nothing parses it only to stringify it again (bench/replay.ts, 1,000,000 real-size pods:
 * log reads from the store went from 81,000 to 155,000 updates/s). Large results are read
 * in pages by rowid inside one read transaction, yielding to the event loop between pages
 * (statements block it).
 *
 * Remote (sqld, Turso): a read transaction is a server stream that the server closes once
 * idle for 10 s, rolling it back, and the next page fails with STREAM_EXPIRED. While a
 * page waits for a slow consumer (an SSE client on a slow link), the stream is pinged.
 * And sqld refuses a statement whose result passes 10 MB (--max-response-size), which one
 * page string of large objects can: remote pages are also bounded in bytes.
 */
import { yieldToEventLoop } from "../../../sdk/priority.ts";
import type { Client, InStatement, InValue, ResultSet } from "@libsql/client";

interface Executor {
  execute(statement: InStatement): Promise<ResultSet>;
}

export interface Selection<T> {
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

/**
 * Rows per page of readAll (the digests read at start): a few milliseconds of blocking each. Snapshots are read in
 * pages of their own size (sdk/sink-contract.ts SNAPSHOT_PAGE).
 */
const READ_ALL_PAGE = 2_000;
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
export async function readAll<T>(reader: Client, selection: Selection<T>): Promise<{ head: number; items: T[] }> {
  let head = 0;
  const items: T[] = [];
  for await (const page of readPages<T>(reader, selection, READ_ALL_PAGE)) {
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
export async function* readPages<T>(
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

/** Up to `limit` rows of a selection after rowid `after`, in one page (bounded in bytes when remote). */
export function readOnePage<T>(reader: Client, selection: Selection<T>, after: number, limit: number) {
  return readPage<T>(reader, selection, after, limit, isRemote(reader) ? REMOTE_PAGE_BYTES : undefined);
}
