/**
 * A libSQL server for tests, backed by a local SQLite file: Hrana over HTTP with the JSON
 * encoding (HTTP_V2_SPEC.md, HRANA_3_SPEC.md of tursodatabase/libsql), answering as sqld does
 * (libsql-server/src/hrana/http/), and over WebSocket on the same port (`wsUrl`; ./hrana-ws.ts).
 * A stream is one bun:sqlite connection kept between requests (./hrana-streams.ts); several
 * streams (clients) share the file through WAL. Protobuf endpoints answer 404, so clients
 * fall back to JSON.
 *
 * Fault injection: `crashOnCommit` crashes the server at a COMMIT, either before running it
 * (the transaction is lost) or after (it landed; the answer is lost). ./hrana-server-cli.ts
 * runs it as a process that kills itself there; in this process it stops at once instead.
 *
 * `silenceWebSockets()` leaves the WebSocket connections open then hanging for good (./hrana-ws.ts); a process of
 * its own (./hrana-server-cli.ts) stopped with SIGSTOP hangs both ways until SIGCONT.
 *
 * Not here: protobuf, the v1 HTTP API, JWT validation (the token is
 * compared as is), base_url, replication_index, the 32 MB total response limit, refusing
 * several statements in one `execute` (bun:sqlite runs the first and ignores the rest).
 * bun:sqlite binds an integral JS number as INTEGER, so a Hrana float such as 5.0 is stored
 * as 5 where sqld stores 5.0 (no API forces REAL); `describe` has no parameter names and
 * guesses is_readonly from the first keyword.
 */
import { Database } from "bun:sqlite";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import {
  asHranaError,
  type BatchStep,
  Crashed,
  cursorEntries,
  ProtocolError,
  type SessionRequest,
  storeSql,
  type Version,
} from "./hrana-proto.ts";
import { SqlSession } from "./hrana-sqlite.ts";
import { type Stream, StreamExpired, Streams } from "./hrana-streams.ts";
import { hranaWebSocket } from "./hrana-ws.ts";

export interface CrashOnCommit {
  when: "before" | "after";
  /** COMMITs let through first. */
  skip?: number;
}

export interface HranaServerOptions {
  /** The database file; its directory is created. */
  path: string;
  /** 0 (default): a free port. */
  port?: number;
  hostname?: string;
  /** Requests must carry `Authorization: Bearer <token>`. */
  token?: string;
  /** A stream unused this long is closed, its transaction rolled back (sqld: 10 s). */
  streamIdleMs?: number;
  /** How long a statement waits for another stream's lock before SQLITE_BUSY. */
  busyTimeoutMs?: number;
  /** A statement's rows beyond this fail with RESPONSE_TOO_LARGE (sqld's --max-response-size: 10 MB). */
  maxResponseBytes?: number;
  /**
   * Seconds a connection may stay idle before the server closes it (Bun's default: 10; at most 255). A request hung
   * on a cut path (./tcp-proxy.ts) fails when the server closes its connection: a longer one leaves it to the client.
   */
  idleTimeoutS?: number;
  crashOnCommit?: CrashOnCommit;
  /** What a crash does; default: stop serving at once and close every connection, answering nothing. */
  onCrash?: () => void;
}

export interface HranaServer {
  url: string;
  /** The same server, Hrana over WebSocket. */
  wsUrl: string;
  port: number;
  /** Streams open now, each holding a connection. */
  streamCount(): number;
  /**
   * The WebSocket connections open now answer nothing more, for good; new ones are answered (a failover), or with
   * `andNew` answer nothing either (a server or a path that hangs); how many.
   */
  silenceWebSockets(andNew?: boolean): number;
  /** Messages the silenced connections read and dropped so far. */
  droppedWebSocketMessages(): number;
  /** WebSocket connections accepted so far. */
  webSocketsOpened(): number;
  /** WebSocket connections open now. */
  webSocketsOpen(): number;
  /** The most WebSocket connections open at once so far. */
  mostWebSocketsOpen(): number;
  /** Resolves when the server has crashed on a commit. */
  crashed: Promise<void>;
  stop(): Promise<void>;
}

type StreamRequest =
  | SessionRequest
  | { type: "close" }
  | { type: "store_sql"; sql_id: number; sql: string }
  | { type: "close_sql"; sql_id: number };

/** sqld's limits on the SQL texts a stream stores (over HTTP). */
const MOST_STORED_SQL = { count: 50, bytes: 5_000 };

const json = (body: unknown, status = 200) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
/** Content types exactly as sqld sends them: @libsql/hrana-client reads an error body only for these. */
const text = (body: string, status: number) =>
  new Response(body, { status, headers: { "content-type": "text/plain" } });

export function startHranaServer(options: HranaServerOptions): HranaServer {
  const { path, token, crashOnCommit } = options;
  mkdirSync(dirname(path), { recursive: true });
  // WAL is a property of the file: set once, every connection uses it.
  const setup = new Database(path, { create: true });
  setup.run("PRAGMA journal_mode = WAL");
  setup.close();

  let commits = 0;
  let crashed = false;
  let markCrashed = () => {};
  const crashedPromise = new Promise<void>((resolve) => (markCrashed = resolve));

  function commitHook(phase: "before" | "after"): void {
    if (!crashOnCommit || crashed) return;
    if (phase === "before") commits++;
    if (phase !== crashOnCommit.when || commits <= (crashOnCommit.skip ?? 0)) return;
    crashed = true;
    markCrashed();
    (options.onCrash ?? closeEverything)();
    throw new Crashed("crashed on purpose at a COMMIT");
  }

  const sessionOptions = {
    path,
    busyTimeoutMs: options.busyTimeoutMs ?? 5_000,
    maxResponseBytes: options.maxResponseBytes ?? 10_000_000,
    commitHook,
  };
  const streams = new Streams(() => new SqlSession(sessionOptions), options.streamIdleMs ?? 10_000);
  const ws = hranaWebSocket({ token, connect: () => new SqlSession(sessionOptions), crashed: () => crashed });

  async function handle(stream: Stream, request: StreamRequest, version: Version): Promise<Record<string, unknown>> {
    const { session, sqls } = stream;
    if (stream.closed) throw new ProtocolError("Stream for this baton was closed");
    switch (request.type) {
      case "close":
        stream.closed = true;
        return { type: "close" };
      case "store_sql":
        storeSql(sqls, request.sql_id, request.sql, MOST_STORED_SQL);
        return { type: "store_sql" };
      case "close_sql":
        sqls.delete(request.sql_id);
        return { type: "close_sql" };
      default:
        return session.request(request, sqls, version, "StreamRequest type not recognized");
    }
  }

  async function pipeline(body: { baton?: unknown; requests?: unknown }, version: Version): Promise<Response> {
    if (!Array.isArray(body.requests)) throw new ProtocolError("Cannot deserialize client message from JSON");
    const stream = streams.acquire(body.baton);
    const results: unknown[] = [];
    try {
      for (const request of body.requests as StreamRequest[]) {
        try {
          results.push({ type: "ok", response: await handle(stream, request, version) });
        } catch (error) {
          if (error instanceof Crashed || error instanceof ProtocolError) throw error;
          const { message, code } = asHranaError(error);
          results.push({ type: "error", error: { message, code } });
        }
      }
    } catch (error) {
      if (!crashed) streams.release(stream, false);
      throw error;
    }
    return json({ baton: streams.release(stream, true), base_url: null, results });
  }

  /** Hrana 3's cursor: the batch's results as newline-separated entries after a first line with the baton. */
  async function cursor(body: { baton?: unknown; batch?: { steps?: unknown } }): Promise<Response> {
    if (!Array.isArray(body.batch?.steps)) throw new ProtocolError("Cannot deserialize client message from JSON");
    const stream = streams.acquire(body.baton);
    let result: Awaited<ReturnType<SqlSession["batch"]>>;
    try {
      if (stream.closed) throw new ProtocolError("Stream for this baton was closed");
      result = await stream.session.batch(body.batch.steps as BatchStep[], stream.sqls, 3);
    } catch (error) {
      if (!crashed) streams.release(stream, false);
      throw error;
    }
    const lines = [{ baton: streams.release(stream, true), base_url: null }, ...cursorEntries(result)];
    return text(lines.map((line) => `${JSON.stringify(line)}\n`).join(""), 200);
  }

  const ENDPOINTS: Record<string, [kind: "pipeline" | "cursor", version: 2 | 3]> = {
    "/v2/pipeline": ["pipeline", 2],
    "/v3/pipeline": ["pipeline", 3],
    "/v3/cursor": ["cursor", 3],
  };

  async function route(request: Request): Promise<Response> {
    const { pathname } = new URL(request.url);
    if (pathname === "/health") return text("", 200);
    if (token !== undefined && request.headers.get("authorization") !== `Bearer ${token}`) {
      return text("Unauthorized: a valid bearer token is required", 401);
    }
    if (request.method === "GET" && (pathname === "/v2" || pathname === "/v3")) {
      return text("Hello, this is HTTP API v2 (Hrana over HTTP)", 200);
    }
    const endpoint = request.method === "POST" ? ENDPOINTS[pathname] : undefined;
    if (!endpoint) return text("Not Found", 404);
    try {
      const body = (await request.json().catch(() => {
        throw new ProtocolError("Cannot deserialize client message from JSON");
      })) as Record<string, unknown>;
      return endpoint[0] === "cursor" ? await cursor(body) : await pipeline(body, endpoint[1]);
    } catch (error) {
      if (error instanceof ProtocolError) return text(error.message, 400);
      if (error instanceof StreamExpired) return json({ message: error.message, code: error.code }, 500);
      throw error;
    }
  }

  const server = Bun.serve({
    port: options.port ?? 0,
    ...(options.idleTimeoutS !== undefined && { idleTimeout: options.idleTimeoutS }),
    hostname: options.hostname ?? "127.0.0.1",
    websocket: ws.handler,
    async fetch(request, server) {
      const upgrade = request.method === "GET" && request.headers.get("upgrade")?.toLowerCase() === "websocket";
      if (upgrade && new URL(request.url).pathname === "/") return ws.upgrade(request, server);
      try {
        return await route(request);
      } catch (error) {
        // A crash answers nothing: the connection is cut by the stop (or the process dies).
        if (error instanceof Crashed || crashed) return new Promise<Response>(() => {});
        return text(`Internal error: ${(error as Error).message}`, 500);
      }
    },
  });

  function closeEverything(): void {
    void server.stop(true);
    streams.closeAll();
  }

  const port = server.port as number;
  return {
    url: `http://${server.hostname}:${port}`,
    wsUrl: `ws://${server.hostname}:${port}`,
    port,
    streamCount: () => streams.count,
    silenceWebSockets: (andNew) => ws.silence(andNew),
    droppedWebSocketMessages: () => ws.dropped,
    webSocketsOpened: () => ws.opened,
    webSocketsOpen: () => ws.openNow,
    mostWebSocketsOpen: () => ws.mostOpen,
    crashed: crashedPromise,
    async stop() {
      closeEverything();
      await server.stop(true);
    },
  };
}
