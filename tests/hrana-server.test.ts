/**
 * The test libSQL server (./hrana-server.ts) on the wire: what sqld answers to raw Hrana over
 * HTTP requests (batons, values, batch conditions, errors, auth, expiry, cursors), and to
 * @libsql/client's batches and transactions on several streams at once.
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { createClient } from "@libsql/client";
import { mkdtempSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startHranaServer, type HranaServer, type HranaServerOptions } from "./hrana-server.ts";

const root = mkdtempSync(join(tmpdir(), "kubemeta-hrana-"));
afterAll(() => rm(root, { recursive: true, force: true }));
let cases = 0;
const servers: HranaServer[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await server.stop();
});

function serve(options: Partial<HranaServerOptions> = {}): HranaServer {
  const server = startHranaServer({ path: join(root, `case-${++cases}`, "db.sqlite"), ...options });
  servers.push(server);
  return server;
}

type Json = Record<string, unknown>;
interface StmtResultJson {
  cols?: { name: string | null; decltype: string | null }[];
  rows?: unknown[][];
  affected_row_count?: number;
  last_insert_rowid?: string | null;
  step_results?: unknown[];
  step_errors?: ({ code: string } | null)[];
}
interface PipelineBody {
  baton: string | null;
  results: {
    type: string;
    response?: { type: string; is_autocommit?: boolean; result?: StmtResultJson };
    error?: Json;
  }[];
}

async function post(server: HranaServer, path: string, body: unknown, token?: string): Promise<Response> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  return fetch(`${server.url}${path}`, { method: "POST", headers, body: JSON.stringify(body) });
}

/** One pipeline request (Hrana 3); fails unless HTTP 200. */
async function pipeline(server: HranaServer, baton: string | null, requests: Json[]): Promise<PipelineBody> {
  const response = await post(server, "/v3/pipeline", { baton, requests });
  expect(response.status).toBe(200);
  return (await response.json()) as PipelineBody;
}

const execute = (sql: string, args: Json[] = []) => ({ type: "execute", stmt: { sql, args, want_rows: true } });

describe("endpoints and auth", () => {
  test("GET /v2 and /v3 answer 200, protobuf endpoints 404 (clients fall back to JSON)", async () => {
    const server = serve();
    for (const [path, status] of [
      ["/v2", 200],
      ["/v3", 200],
      ["/v3-protobuf", 404],
      ["/health", 200],
    ] as const) {
      expect((await fetch(`${server.url}${path}`)).status).toBe(status);
    }
    expect((await post(server, "/v3-protobuf/pipeline", {})).status).toBe(404);
  });

  test("with a token, requests without the right bearer get 401", async () => {
    const server = serve({ token: "s3cret" });
    const body = { baton: null, requests: [execute("SELECT 1"), { type: "close" }] };
    expect((await post(server, "/v2/pipeline", body)).status).toBe(401);
    expect((await post(server, "/v2/pipeline", body, "wrong")).status).toBe(401);
    expect((await post(server, "/v3/pipeline", body, "s3cret")).status).toBe(200);
  });
});

describe("streams and batons", () => {
  test("a stream keeps its connection between requests; the baton changes each time and is good once", async () => {
    const server = serve();
    const first = await pipeline(server, null, [execute("CREATE TEMP TABLE t (x)"), execute("BEGIN")]);
    expect(first.results.map((r) => r.type)).toEqual(["ok", "ok"]);
    const second = await pipeline(server, first.baton, [execute("INSERT INTO t VALUES (1)")]);
    expect(second.baton).not.toBe(first.baton);
    // Refused as sqld does: a protocol error, HTTP 400 in plain text; the stream lives on.
    const reused = await post(server, "/v3/pipeline", { baton: first.baton, requests: [] });
    expect([reused.status, await reused.text()]).toEqual([400, "Received a baton that has already been used"]);
    const baton = second.baton ?? "";
    const tampered = `${baton.slice(0, 10)}${baton[10] === "A" ? "B" : "A"}${baton.slice(11)}`;
    const forged = await post(server, "/v3/pipeline", { baton: tampered, requests: [] });
    expect([forged.status, await forged.text()]).toEqual([400, "Received an invalid baton"]);
    const third = await pipeline(server, second.baton, [
      { type: "get_autocommit" },
      execute("SELECT count(*) FROM t"),
      { type: "close" },
    ]);
    expect(third.baton).toBeNull();
    expect(third.results[0]?.response?.is_autocommit).toBe(false);
    expect(third.results[1]?.response?.result?.rows).toEqual([[{ type: "integer", value: "1" }]]);
    expect(server.streamCount()).toBe(0);
  });

  test("protocol errors fail the whole request with 400 and end the stream", async () => {
    const server = serve();
    const afterClose = await post(server, "/v3/pipeline", {
      baton: null,
      requests: [{ type: "close" }, execute("SELECT 1")],
    });
    expect([afterClose.status, await afterClose.text()]).toEqual([400, "Stream for this baton was closed"]);
    // get_autocommit is Hrana 3: /v2/pipeline refuses it.
    const v2 = await post(server, "/v2/pipeline", { baton: null, requests: [{ type: "get_autocommit" }] });
    expect(v2.status).toBe(400);
    const { baton } = await pipeline(server, null, [execute("BEGIN")]);
    const missing = await post(server, "/v3/pipeline", { baton, requests: [{ type: "execute", stmt: { sql_id: 7 } }] });
    expect([missing.status, await missing.text()]).toEqual([400, "SQL text 7 not found"]);
    expect(server.streamCount()).toBe(0);
  });

  test("an idle stream expires: its transaction rolls back and its baton answers STREAM_EXPIRED", async () => {
    const server = serve({ streamIdleMs: 100 });
    await pipeline(server, null, [execute("CREATE TABLE t (x)"), { type: "close" }]);
    const open = await pipeline(server, null, [execute("BEGIN IMMEDIATE"), execute("INSERT INTO t VALUES (1)")]);
    const deadline = Date.now() + 5_000;
    while (server.streamCount() > 0 && Date.now() < deadline) await Bun.sleep(10);
    expect(server.streamCount()).toBe(0);
    const expired = await post(server, "/v3/pipeline", { baton: open.baton, requests: [] });
    expect(expired.status).toBe(500);
    expect(await expired.json()).toEqual({
      message: "The stream has expired due to inactivity",
      code: "STREAM_EXPIRED",
    });
    const after = await pipeline(server, null, [execute("INSERT INTO t VALUES (2)"), execute("SELECT x FROM t")]);
    expect(after.results[1]?.response?.result?.rows).toEqual([[{ type: "integer", value: "2" }]]);
  });
});

describe("statements", () => {
  test("values keep their types both ways; results carry cols, affected rows and the last rowid", async () => {
    const server = serve();
    const values = [
      { type: "integer", value: "9223372036854775807" },
      { type: "float", value: 1.5 },
      { type: "text", value: "ünï\u0000code" },
      { type: "blob", base64: "AAEC/w==" },
      { type: "null" },
    ];
    const { results } = await pipeline(server, null, [
      execute("CREATE TABLE t (id INTEGER PRIMARY KEY, i INTEGER, f REAL, s TEXT, b BLOB, n)"),
      execute("INSERT INTO t (i, f, s, b, n) VALUES (?, ?, ?, ?, ?), (0, 2.0, '', x'', NULL)", values),
      execute("SELECT i, f, s, b, n FROM t ORDER BY id"),
      execute("SELECT :a AS named", []),
      { type: "close" },
    ]);
    expect(results[1]?.response?.result).toMatchObject({ affected_row_count: 2, last_insert_rowid: "2" });
    const select = results[2]?.response?.result ?? {};
    expect(select.cols).toEqual([
      { name: "i", decltype: "INTEGER" },
      { name: "f", decltype: "REAL" },
      { name: "s", decltype: "TEXT" },
      { name: "b", decltype: "BLOB" },
      { name: "n", decltype: null },
    ]);
    expect(select.rows?.[0]).toEqual(values);
    expect(select.rows?.[1]).toEqual([
      { type: "integer", value: "0" },
      { type: "float", value: 2 },
      { type: "text", value: "" },
      { type: "blob", base64: "" },
      { type: "null" },
    ]);
    expect(select.affected_row_count).toBe(0);
    expect(results[3]).toMatchObject({ type: "error", error: { code: "ARGS_INVALID" } });
  });

  test("statement errors are worded as sqld words them, with SQLite's primary code; the stream goes on", async () => {
    const server = serve({ maxResponseBytes: 1_000 });
    const { results } = await pipeline(server, null, [
      execute("CREATE TABLE t (x NOT NULL)"),
      execute("INSERT INTO t VALUES (NULL)"),
      execute("SELEC 1"),
      execute("SELECT * FROM nowhere"),
      execute("SELECT ?", []),
      { type: "store_sql", sql_id: 1, sql: "SELECT count(*) AS n FROM t" },
      { type: "execute", stmt: { sql_id: 1, want_rows: true } },
      { type: "close_sql", sql_id: 1 },
      { type: "sequence", sql: "INSERT INTO t VALUES (1); INSERT INTO t VALUES (2);" },
      { type: "describe", sql: "SELECT x FROM t WHERE x > ?" },
      execute("SELECT zeroblob(2000)"),
      { type: "close" },
    ]);
    expect(results[1]?.error).toEqual({
      message: "SQLite error: NOT NULL constraint failed: t.x",
      code: "SQLITE_CONSTRAINT",
    });
    expect(results.slice(2, 5).map((r) => r.error?.code)).toEqual([
      "SQL_PARSE_ERROR",
      "SQLITE_UNKNOWN",
      "ARGS_INVALID",
    ]);
    expect(results[6]?.response?.result?.rows).toEqual([[{ type: "integer", value: "0" }]]);
    expect(results[8]).toEqual({ type: "ok", response: { type: "sequence" } });
    expect(results[9]?.response?.result).toMatchObject({ params: [{ name: null }], is_readonly: true });
    expect(results[10]?.error).toEqual({ message: "Response is too large", code: "RESPONSE_TOO_LARGE" });
  });

  test("batch conditions: a failed step skips what depends on it, and the ROLLBACK step runs", async () => {
    const server = serve();
    await pipeline(server, null, [execute("CREATE TABLE t (x PRIMARY KEY)"), { type: "close" }]);
    const step = (sql: string, condition?: Json) => ({ stmt: { sql, want_rows: false }, condition });
    const { results } = await pipeline(server, null, [
      {
        type: "batch",
        batch: {
          steps: [
            step("BEGIN IMMEDIATE"),
            step("INSERT INTO t VALUES (1)", { type: "ok", step: 0 }),
            step("INSERT INTO t VALUES (1)", { type: "ok", step: 1 }),
            step("COMMIT", {
              type: "and",
              conds: [
                { type: "ok", step: 2 },
                { type: "not", cond: { type: "is_autocommit" } },
              ],
            }),
            step("ROLLBACK", { type: "not", cond: { type: "ok", step: 3 } }),
            step("SELECT 1", {
              type: "or",
              conds: [
                { type: "error", step: 2 },
                { type: "ok", step: 3 },
              ],
            }),
          ],
        },
      },
      execute("SELECT count(*) FROM t"),
      { type: "close" },
    ]);
    const { step_results, step_errors } = results[0]?.response?.result ?? {};
    expect(step_results?.map((r) => r !== null)).toEqual([true, true, false, false, true, true]);
    expect(step_errors?.map((e) => e?.code ?? null)).toEqual([null, null, "SQLITE_CONSTRAINT", null, null, null]);
    expect(results[1]?.response?.result?.rows).toEqual([[{ type: "integer", value: "0" }]]);
  });

  test("the v3 cursor streams a batch's entries after a line with the baton", async () => {
    const server = serve();
    const body = {
      baton: null,
      batch: { steps: [{ stmt: { sql: "SELECT 1 AS a UNION ALL SELECT 2" } }, { stmt: { sql: "SELEC" } }] },
    };
    const lines = (await (await post(server, "/v3/cursor", body)).text())
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { type?: string; baton?: string; row?: unknown });
    expect(lines[0]?.baton).toEqual(expect.any(String));
    expect(lines.slice(1).map((l) => l.type)).toEqual(["step_begin", "row", "row", "step_end", "step_error"]);
    expect(lines[2]?.row).toEqual([{ type: "integer", value: "1" }]);
  });
});

describe("@libsql/client", () => {
  test("a read transaction refuses writes; a write transaction holds others' writes until it commits", async () => {
    const server = serve();
    const [a, b] = [createClient({ url: server.url }), createClient({ url: server.url })];
    try {
      await a.execute("CREATE TABLE t (x)");
      const read = await a.transaction("read");
      await expect(read.execute("INSERT INTO t VALUES (0)")).rejects.toThrow(/readonly/);
      read.close();

      const write = await a.transaction("write");
      await write.execute("INSERT INTO t VALUES (1)");
      // b waits on the lock without stalling the server: a's commit gets through meanwhile.
      const waiting = b.execute("INSERT INTO t VALUES (2)");
      const deadline = Date.now() + 5_000;
      while (server.streamCount() < 2 && Date.now() < deadline) await Bun.sleep(5);
      expect(server.streamCount()).toBe(2);
      await write.commit();
      await waiting;
      expect((await b.execute("SELECT x FROM t ORDER BY x")).rows.map((r) => r.x)).toEqual([1, 2]);
    } finally {
      a.close();
      b.close();
    }
  });

  test("crash after COMMIT: the batch lands, its answer never comes", async () => {
    const path = join(root, "crash", "db.sqlite");
    const server = serve({ path, crashOnCommit: { when: "after", skip: 1 } });
    const client = createClient({ url: server.url });
    try {
      await client.batch(["CREATE TABLE t (x)"], "write");
      await expect(client.batch(["INSERT INTO t VALUES (1)"], "write")).rejects.toThrow();
      await server.crashed;
    } finally {
      client.close();
    }
    const check = createClient({ url: serve({ path }).url });
    try {
      expect((await check.execute("SELECT x FROM t")).rows.map((r) => r.x)).toEqual([1]);
    } finally {
      check.close();
    }
  });
});
