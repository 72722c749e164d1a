/**
 * Hrana over WebSocket for the test libSQL server (./hrana-server.ts), answering as sqld does
 * (HRANA_3_SPEC.md, HRANA_2_SPEC.md; libsql-server/src/hrana/ws/ of tursodatabase/libsql). An upgrade of `GET /`
 * takes the newest of `hrana3`, `hrana2`, `hrana1` the client offers (none offered: hrana1; only others: 400);
 * messages are JSON text frames. `hello` authenticates (its `jwt` compared with the token as is; refused, a
 * `hello_error` and the connection closes) and, from Hrana 2, may come again. Each `request` is answered with its
 * `request_id` by a `response_ok` or a `response_error`, as each finishes. A connection holds its streams (each one
 * SQLite connection running its requests in order), its stored SQL texts and its cursors (Hrana 3;
 * ./hrana-ws-cursors.ts); closed, it rolls back what its streams left open. A protocol
 * error closes it with the error as the reason: 1008, or 1007 for JSON that does not parse, 1003 for a binary frame
 * (sqld drops some without a close frame, e.g. an unknown stream's). A request of a later Hrana than the connection's
 * is one (Hrana 1's statements and batches are taken as Hrana 2's: a `sql_id`, a batch condition).
 *
 * `silence()`: the connections open now stop answering, for good (what they are sent is read and dropped, and
 * counted: `dropped`), as one that a failover or a NAT that lost its entry leaves hanging; new connections are
 * answered.
 */
import type { Server, ServerWebSocket, WebSocketHandler } from "bun";
import {
  asHranaError,
  Crashed,
  ProtocolError,
  requireVersion,
  type SessionRequest,
  storeSql,
  type Version,
} from "./hrana-proto.ts";
import type { SqlSession } from "./hrana-sqlite.ts";
import {
  closeCursor,
  closeCursorsOf,
  type Cursor,
  type CursorRequest,
  fetchCursor,
  onStream,
  openCursor,
  streamOf,
  unlockedStreamOf,
  type WsStream,
} from "./hrana-ws-cursors.ts";

/** Preferred first, as sqld prefers them. */
const SUBPROTOCOLS: [string, Version][] = [
  ["hrana3", 3],
  ["hrana2", 2],
  ["hrana1", 1],
];
const SESSION_REQUESTS = new Set(["execute", "batch", "sequence", "describe", "get_autocommit"]);
/** sqld's limit on the SQL texts a connection stores (over WebSocket). */
const MOST_STORED_SQL = { count: 150 };

export interface Conn {
  version: Version;
  /** Past a `hello_ok`. */
  greeted: boolean;
  /** Answers nothing more: silenced, or its hello refused. */
  silent: boolean;
  streams: Map<number, WsStream>;
  /** Stored SQL texts: the connection's over WebSocket, not a stream's. */
  sqls: Map<number, string>;
  cursors: Map<number, Cursor>;
}

type WsRequest =
  | (SessionRequest & { stream_id: number })
  | { type: "open_stream" | "close_stream"; stream_id: number }
  | { type: "store_sql"; sql_id: number; sql: string }
  | { type: "close_sql"; sql_id: number }
  | CursorRequest;

/** A protocol error closing with a code other than 1008 (Policy). */
class Closing extends ProtocolError {
  constructor(
    message: string,
    readonly code: number,
  ) {
    super(message);
  }
}

export interface WsOptions {
  token?: string;
  connect(): SqlSession;
  /** True once the server crashed on purpose: nothing answers. */
  crashed(): boolean;
}

export function hranaWebSocket(options: WsOptions) {
  const open = new Set<ServerWebSocket<Conn>>();
  let dropped = 0;
  let opened = 0;
  let mostOpen = 0;
  /** Set by `silence(true)`: new connections answer nothing either. */
  let blackHole = false;

  function send(ws: ServerWebSocket<Conn>, message: Record<string, unknown>): void {
    if (!ws.data.silent && !options.crashed()) ws.send(JSON.stringify(message));
  }

  function fail(ws: ServerWebSocket<Conn>, error: unknown): void {
    if (error instanceof Crashed || options.crashed()) return;
    ws.data.silent = true;
    if (!(error instanceof ProtocolError)) ws.close(1011, "Internal server error");
    else ws.close(error instanceof Closing ? error.code : 1008, error.message.slice(0, 120));
  }

  function hello(ws: ServerWebSocket<Conn>, jwt: unknown): void {
    const conn = ws.data;
    if (conn.greeted) requireVersion(conn.version, 2, "Repeated hello message");
    if (options.token !== undefined && jwt !== options.token) {
      // sqld's words for a JWT it refuses.
      const [reason, code] =
        jwt == null
          ? ["Authentication is required but no JWT was specified", "AUTH_JWT_MISSING"]
          : ["The JWT is invalid", "AUTH_JWT_INVALID"];
      send(ws, { type: "hello_error", error: { message: `Authentication failed: ${reason}`, code } });
      conn.silent = true;
      ws.close(1000, "Thank you for using sqld");
      return;
    }
    conn.greeted = true;
    send(ws, { type: "hello_ok" });
  }

  async function run(conn: Conn, request: WsRequest): Promise<Record<string, unknown>> {
    switch (request.type) {
      case "open_stream":
        if (conn.streams.has(request.stream_id)) throw new ProtocolError(`Stream ${request.stream_id} already exists`);
        conn.streams.set(request.stream_id, { session: options.connect(), queue: Promise.resolve() });
        return { type: "open_stream" };
      case "close_stream": {
        const stream = streamOf(conn, request.stream_id);
        conn.streams.delete(request.stream_id);
        closeCursorsOf(conn, request.stream_id);
        await onStream(stream, () => stream.session.close());
        return { type: "close_stream" };
      }
      case "store_sql":
        requireVersion(conn.version, 2, "The `store_sql` request");
        storeSql(conn.sqls, request.sql_id, request.sql, MOST_STORED_SQL);
        return { type: "store_sql" };
      case "close_sql":
        requireVersion(conn.version, 2, "The `close_sql` request");
        conn.sqls.delete(request.sql_id);
        return { type: "close_sql" };
      case "open_cursor":
        openCursor(conn, request);
        return { type: "open_cursor" };
      case "fetch_cursor":
        return fetchCursor(conn, request);
      case "close_cursor":
        closeCursor(conn, request);
        return { type: "close_cursor" };
      default: {
        if (!SESSION_REQUESTS.has((request as { type?: unknown }).type as string))
          throw new ProtocolError("Request type not recognized");
        const stream = unlockedStreamOf(conn, request.stream_id);
        const sqls = new Map(conn.sqls);
        return onStream(stream, () =>
          stream.session.request(request, sqls, conn.version, "Request type not recognized"),
        );
      }
    }
  }

  async function respond(ws: ServerWebSocket<Conn>, requestId: unknown, request: WsRequest): Promise<void> {
    try {
      send(ws, { type: "response_ok", request_id: requestId, response: await run(ws.data, request) });
    } catch (error) {
      if (error instanceof Crashed || error instanceof ProtocolError) return fail(ws, error);
      const { message, code } = asHranaError(error);
      send(ws, { type: "response_error", request_id: requestId, error: { message, code } });
    }
  }

  function receive(ws: ServerWebSocket<Conn>, raw: string | Buffer): void {
    if (typeof raw !== "string")
      throw new Closing("Received a binary WebSocket message, which is not supported in this encoding", 1003);
    let message: { type?: unknown; jwt?: unknown; request_id?: unknown; request?: unknown };
    try {
      message = JSON.parse(raw);
    } catch (error) {
      throw new Closing(`Cannot deserialize client message from JSON: ${(error as Error).message}`, 1007);
    }
    if (message.type === "hello") {
      hello(ws, message.jwt);
      return;
    }
    if (message.type !== "request") throw new ProtocolError("ClientMsg type not recognized");
    if (!ws.data.greeted) throw new ProtocolError("Received a request before hello message");
    if (typeof message.request !== "object" || message.request === null)
      throw new Closing("Cannot deserialize client message from JSON: no request", 1007);
    void respond(ws, message.request_id, message.request as WsRequest);
  }

  const handler: WebSocketHandler<Conn> = {
    open(ws) {
      opened++;
      open.add(ws);
      mostOpen = Math.max(mostOpen, open.size);
      if (blackHole) ws.data.silent = true;
    },
    message(ws, raw) {
      if (ws.data.silent) dropped++;
      if (ws.data.silent || options.crashed()) return;
      try {
        receive(ws, raw);
      } catch (error) {
        fail(ws, error);
      }
    },
    close(ws) {
      open.delete(ws);
      // Each stream's connection closes once what it runs is over, rolling back what it left open.
      for (const stream of ws.data.streams.values()) void onStream(stream, () => stream.session.close());
      ws.data.streams.clear();
    },
  };

  return {
    handler,
    /** Takes `GET /` with `Upgrade: websocket`: undefined once upgraded, else the answer. */
    upgrade(request: Request, server: Server<Conn>): Response | undefined {
      const offered = request.headers.get("sec-websocket-protocol");
      const names = offered?.split(",").map((name) => name.trim().toLowerCase());
      const chosen = names ? SUBPROTOCOLS.find(([name]) => names.includes(name)) : undefined;
      if (names && !chosen) {
        const supported = SUBPROTOCOLS.map(([name]) => name).join(" ");
        return new Response(`Only these WebSocket subprotocols are supported: ${supported}`, { status: 400 });
      }
      const data: Conn = {
        version: chosen?.[1] ?? 1,
        greeted: false,
        silent: false,
        streams: new Map(),
        sqls: new Map(),
        cursors: new Map(),
      };
      // RFC 6455: no Sec-WebSocket-Protocol in the answer when the client offered none.
      const headers = chosen ? { "sec-websocket-protocol": chosen[0] } : undefined;
      if (server.upgrade(request, { data, headers })) return undefined;
      return new Response("Protocol error in HTTP upgrade", { status: 400 });
    },
    /**
     * Every connection open now answers nothing more; with `andNew` so does every one opened until the next call, its
     * hello included; how many.
     */
    silence(andNew = false): number {
      blackHole = andNew;
      for (const ws of open) ws.data.silent = true;
      return open.size;
    },
    /** Messages read and dropped so far by connections that answer nothing. */
    get dropped(): number {
      return dropped;
    },
    /** Connections accepted so far. */
    get opened(): number {
      return opened;
    },
    /** Connections open now. */
    get openNow(): number {
      return open.size;
    },
    /** The most connections open at once so far. */
    get mostOpen(): number {
      return mostOpen;
    },
  };
}
