/**
 * A WebSocket connection's streams and their cursors (Hrana 3) for the test libSQL server (./hrana-ws.ts). A stream
 * runs its requests one after the other; a cursor's batch runs whole when it opens, its entries then fetched, and a
 * fetch says `done` once it looks past the last entry, as sqld's does. While a cursor is open on a stream, the spec
 * forbids any other request on it: one is refused as the protocol error it is (sqld checks nothing, and would run it
 * beside the cursor's batch on the same connection).
 */
import { asHranaError, type BatchStep, Crashed, cursorEntries, ProtocolError, requireVersion } from "./hrana-proto.ts";
import type { SqlSession } from "./hrana-sqlite.ts";
import type { Conn } from "./hrana-ws.ts";

export interface WsStream {
  session: SqlSession;
  /** Its requests, run one after the other. */
  queue: Promise<unknown>;
}

export interface Cursor {
  stream: number;
  /** Settles once the batch has run on its stream; what it rejects with is a protocol error. */
  ran: Promise<void>;
  entries: Record<string, unknown>[];
}

export type CursorRequest =
  | { type: "open_cursor"; stream_id: number; cursor_id: number; batch: { steps: BatchStep[] } }
  | { type: "close_cursor"; cursor_id: number }
  | { type: "fetch_cursor"; cursor_id: number; max_count: number };

/** `job` run on `stream` once what it was given before is over. */
export function onStream<T>(stream: WsStream, job: () => T | Promise<T>): Promise<T> {
  const run = stream.queue.then(job);
  stream.queue = run.catch(() => {});
  return run;
}

export function streamOf(conn: Conn, id: number): WsStream {
  const stream = conn.streams.get(id);
  if (!stream) throw new ProtocolError(`Stream ${id} not found`);
  return stream;
}

function hasCursor(conn: Conn, streamId: number): boolean {
  return [...conn.cursors.values()].some((c) => c.stream === streamId);
}

/** The stream a request of its own runs on: refused while a cursor is open on it. */
export function unlockedStreamOf(conn: Conn, id: number): WsStream {
  const stream = streamOf(conn, id);
  if (hasCursor(conn, id))
    throw new ProtocolError(`Stream ${id} has an open cursor: no request may run on it until the cursor is closed`);
  return stream;
}

function cursorOf(conn: Conn, id: number): Cursor {
  const cursor = conn.cursors.get(id);
  if (!cursor) throw new ProtocolError(`Cursor ${id} not found`);
  return cursor;
}

export function openCursor(conn: Conn, request: Extract<CursorRequest, { type: "open_cursor" }>): void {
  requireVersion(conn.version, 3, "The `open_cursor` request");
  const stream = streamOf(conn, request.stream_id);
  if (hasCursor(conn, request.stream_id))
    throw new ProtocolError(`Stream ${request.stream_id} already has an open cursor`);
  if (conn.cursors.has(request.cursor_id)) throw new ProtocolError(`Cursor ${request.cursor_id} already exists`);
  const cursor: Cursor = { stream: request.stream_id, ran: Promise.resolve(), entries: [] };
  // As sqld does, the stored SQL a request names is what it is when the request comes, not when it runs.
  const sqls = new Map(conn.sqls);
  cursor.ran = onStream(stream, async () => {
    try {
      cursor.entries = cursorEntries(await stream.session.batch(request.batch.steps, sqls, conn.version));
    } catch (error) {
      if (error instanceof Crashed || error instanceof ProtocolError) throw error;
      const { message, code } = asHranaError(error);
      cursor.entries = [{ type: "error", error: { message, code } }];
    }
  });
  cursor.ran.catch(() => {});
  conn.cursors.set(request.cursor_id, cursor);
}

export async function fetchCursor(
  conn: Conn,
  request: Extract<CursorRequest, { type: "fetch_cursor" }>,
): Promise<Record<string, unknown>> {
  requireVersion(conn.version, 3, "The `fetch_cursor` request");
  const cursor = cursorOf(conn, request.cursor_id);
  await cursor.ran;
  const entries = cursor.entries.splice(0, request.max_count);
  // As sqld: done once a fetch looks past the last entry, not by the fetch that takes it.
  return { type: "fetch_cursor", entries, done: entries.length < request.max_count };
}

export function closeCursor(conn: Conn, request: Extract<CursorRequest, { type: "close_cursor" }>): void {
  requireVersion(conn.version, 3, "The `close_cursor` request");
  cursorOf(conn, request.cursor_id);
  conn.cursors.delete(request.cursor_id);
}

/** A stream's cursor is closed with it. */
export function closeCursorsOf(conn: Conn, streamId: number): void {
  for (const [id, cursor] of conn.cursors) if (cursor.stream === streamId) conn.cursors.delete(id);
}
