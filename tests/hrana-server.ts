/**
 * A libSQL server for tests, backed by a local SQLite file: Hrana over HTTP with the JSON
 * encoding (HTTP_V2_SPEC.md, HRANA_3_SPEC.md of tursodatabase/libsql), answering as sqld does
 * (libsql-server/src/hrana/http/). A stream is one bun:sqlite connection kept between requests
 * (./hrana-streams.ts); several streams (clients) share the file through WAL. Protobuf
 * endpoints answer 404, so clients fall back to JSON.
 *
 * Fault injection: `crashOnCommit` crashes the server at a COMMIT, either before running it
 * (the transaction is lost) or after (it landed; the answer is lost). ./hrana-server-cli.ts
 * runs it as a process that kills itself there; in this process it stops at once instead.
 *
 * Not here: protobuf, Hrana over WebSocket, the v1 HTTP API, JWT validation (the token is
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
  HranaError,
  type HranaStmt,
  ProtocolError,
  sqlOf,
} from "./hrana-proto.ts";
import { SqlSession } from "./hrana-sqlite.ts";
import { type Stream, StreamExpired, Streams } from "./hrana-streams.ts";

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
  port: number;
  /** Streams open now, each holding a connection. */
  streamCount(): number;
  /** Resolves when the server has crashed on a commit. */
  crashed: Promise<void>;
  stop(): Promise<void>;
}

type StreamRequest =
  | { type: "close" }
  | { type: "execute"; stmt: HranaStmt }
  | { type: "batch"; batch: { steps: BatchStep[] } }
  | { type: "sequence" | "describe"; sql?: string | null; sql_id?: number | null }
  | { type: "store_sql"; sql_id: number; sql: string }
  | { type: "close_sql"; sql_id: number }
  | { type: "get_autocommit" };

/** sqld's limits on the SQL texts a stream stores. */
const MAX_SQL_COUNT = 50;
const MAX_STORED_SQL_BYTES = 5_000;

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

  async function handle(stream: Stream, request: StreamRequest, version: 2 | 3): Promise<Record<string, unknown>> {
    const { session, sqls } = stream;
    if (stream.closed) throw new ProtocolError("Stream for this baton was closed");
    switch (request.type) {
      case "close":
        stream.closed = true;
        return { type: "close" };
      case "execute":
        return { type: "execute", result: await session.execute(request.stmt, sqls) };
      case "batch":
        return { type: "batch", result: await session.batch(request.batch.steps, sqls, version) };
      case "sequence":
        session.sequence(sqlOf(request, sqls));
        return { type: "sequence" };
      case "describe":
        return { type: "describe", result: session.describe(sqlOf(request, sqls)) };
      case "store_sql":
        if (sqls.has(request.sql_id)) throw new ProtocolError(`SQL text ${request.sql_id} already exists`);
        if (sqls.size >= MAX_SQL_COUNT)
          throw new HranaError(
            `The server already stores ${sqls.size} SQL texts, it cannot store more`,
            "SQL_STORE_TOO_MANY",
          );
        if (Buffer.byteLength(request.sql) > MAX_STORED_SQL_BYTES)
          throw new HranaError("The statement is too large to be stored", "SQL_STORE_TOO_LARGE");
        sqls.set(request.sql_id, request.sql);
        return { type: "store_sql" };
      case "close_sql":
        sqls.delete(request.sql_id);
        return { type: "close_sql" };
      case "get_autocommit":
        if (version < 3)
          throw new ProtocolError(
            "The `get_autocommit` request is only supported in protocol version hrana3 and higher",
          );
        return { type: "get_autocommit", is_autocommit: session.autocommit };
      default:
        throw new ProtocolError("StreamRequest type not recognized");
    }
  }

  async function pipeline(body: { baton?: unknown; requests?: unknown }, version: 2 | 3): Promise<Response> {
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
    const lines: unknown[] = [{ baton: streams.release(stream, true), base_url: null }];
    result.step_results.forEach((step, i) => {
      const error = result.step_errors[i];
      if (error) lines.push({ type: "step_error", step: i, error });
      if (!step) return;
      lines.push({ type: "step_begin", step: i, cols: step.cols });
      for (const row of step.rows) lines.push({ type: "row", row });
      lines.push({
        type: "step_end",
        affected_row_count: step.affected_row_count,
        last_insert_rowid: step.last_insert_rowid,
      });
    });
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
    async fetch(request) {
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
    port,
    streamCount: () => streams.count,
    crashed: crashedPromise,
    async stop() {
      closeEverything();
      await server.stop(true);
    },
  };
}
