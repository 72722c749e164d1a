/**
 * The test libSQL server's Hrana over WebSocket (./hrana-ws.ts) on the wire: what sqld answers to raw messages
 * (subprotocols, hello, streams, stored SQL, cursors, versions, protocol errors), what a closed connection leaves,
 * and a silenced connection.
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TIMED_OUT, until } from "../protocol/retry.ts";
import { waitFor } from "../testing/index.ts";
import { startHranaServer, type HranaServer } from "./hrana-server.ts";

const root = mkdtempSync(join(tmpdir(), "kubemeta-hrana-ws-"));
afterAll(() => rm(root, { recursive: true, force: true }));
let cases = 0;
const servers: HranaServer[] = [];
const sockets: WebSocket[] = [];
afterEach(async () => {
  for (const ws of sockets.splice(0)) ws.close();
  for (const server of servers.splice(0)) await server.stop();
});

function serve(token?: string): HranaServer {
  const server = startHranaServer({ path: join(root, `case-${++cases}`, "db.sqlite"), token });
  servers.push(server);
  return server;
}

type Json = Record<string, unknown>;

/** A raw WebSocket to the server: what it sent, and how it closed. */
async function peer(server: HranaServer, protocols: string[] = ["hrana3"]) {
  const ws = new WebSocket(server.wsUrl, protocols);
  sockets.push(ws);
  const inbox: Json[] = [];
  let closed: { code: number; reason: string } | undefined;
  ws.onmessage = (event) => inbox.push(JSON.parse(String(event.data)));
  ws.onclose = (event) => (closed = { code: event.code, reason: event.reason });
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });
  let ids = 0;
  const send = (message: Json) => ws.send(JSON.stringify(message));
  return {
    protocol: ws.protocol,
    inbox,
    send,
    raw: (text: string) => ws.send(text),
    /** The next message, taken from the inbox. */
    async next(): Promise<Json> {
      await waitFor(() => inbox.length > 0, 5_000, "a message");
      return inbox.shift()!;
    },
    async request(request: Json): Promise<Json> {
      const id = ++ids;
      send({ type: "request", request_id: id, request });
      const at = await waitFor(() => inbox.findIndex((m) => m.request_id === id) + 1, 5_000, `response ${id}`);
      return inbox.splice(at - 1, 1)[0]!;
    },
    closed: () => waitFor(() => closed, 5_000, "the connection to close"),
  };
}

/** A peer past its hello. */
async function greeted(server: HranaServer, protocols?: string[]) {
  const p = await peer(server, protocols);
  p.send({ type: "hello", jwt: null });
  expect(await p.next()).toEqual({ type: "hello_ok" });
  return p;
}

const stmt = (sql: string, args: Json[] = []) => ({ sql, args, want_rows: true });

describe("handshake", () => {
  test("the upgrade takes the newest subprotocol offered, hrana1 when none is; protobuf alone gets 400", async () => {
    const server = serve();
    expect((await peer(server, ["hrana1", "hrana3", "hrana2"])).protocol).toBe("hrana3");
    expect((await peer(server, ["hrana2", "hrana1"])).protocol).toBe("hrana2");
    expect((await peer(server, [])).protocol).toBe("");
    const refused = await fetch(`${server.url}/`, {
      headers: {
        upgrade: "websocket",
        connection: "Upgrade",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        "sec-websocket-version": "13",
        "sec-websocket-protocol": "hrana3-protobuf",
      },
    });
    expect([refused.status, await refused.text()]).toEqual([
      400,
      "Only these WebSocket subprotocols are supported: hrana3 hrana2 hrana1",
    ]);
  });

  test("hello: a wrong or missing jwt gets hello_error and the close; the right one, again from Hrana 2", async () => {
    const server = serve("s3cret");
    for (const [jwt, code] of [
      ["wrong", "AUTH_JWT_INVALID"],
      [null, "AUTH_JWT_MISSING"],
    ] as const) {
      const p = await peer(server);
      p.send({ type: "hello", jwt });
      expect(await p.next()).toMatchObject({ type: "hello_error", error: { code } });
      expect((await p.closed()).code).toBe(1000);
    }
    const p = await peer(server, ["hrana2"]);
    p.send({ type: "hello", jwt: "s3cret" });
    p.send({ type: "hello", jwt: "s3cret" });
    expect([await p.next(), await p.next()]).toEqual([{ type: "hello_ok" }, { type: "hello_ok" }]);
    const v1 = await peer(server, []);
    v1.send({ type: "hello", jwt: "s3cret" });
    v1.send({ type: "hello", jwt: "s3cret" });
    expect(await v1.next()).toEqual({ type: "hello_ok" });
    expect(await v1.closed()).toEqual({
      code: 1008,
      reason: "Repeated hello message is only supported in protocol version hrana2 and higher",
    });
  });

  test("protocol errors close the connection with sqld's words", async () => {
    const server = serve();
    const early = await peer(server);
    early.send({ type: "request", request_id: 1, request: { type: "open_stream", stream_id: 1 } });
    expect(await early.closed()).toEqual({ code: 1008, reason: "Received a request before hello message" });
    const unknown = await greeted(server);
    unknown.send({
      type: "request",
      request_id: 1,
      request: { type: "execute", stream_id: 9, stmt: stmt("SELECT 1") },
    });
    expect(await unknown.closed()).toEqual({ code: 1008, reason: "Stream 9 not found" });
    const garbled = await greeted(server);
    garbled.send({ type: "request", request_id: 1, request: { type: "teleport" } });
    expect(await garbled.closed()).toEqual({ code: 1008, reason: "Request type not recognized" });
    const v2 = await greeted(server, ["hrana2"]);
    await v2.request({ type: "open_stream", stream_id: 1 });
    v2.send({ type: "request", request_id: 9, request: { type: "get_autocommit", stream_id: 1 } });
    expect(await v2.closed()).toEqual({
      code: 1008,
      reason: "The `get_autocommit` request is only supported in protocol version hrana3 and higher",
    });
    const notJson = await greeted(server);
    notJson.raw("{");
    expect((await notJson.closed()).code).toBe(1007);
    const binary = await greeted(server);
    sockets.at(-1)!.send(new Uint8Array([1]));
    expect((await binary.closed()).code).toBe(1003);
  });
});

describe("streams", () => {
  test("execute, batch, stored SQL, describe, sequence, autocommit; a failed statement: response_error", async () => {
    const p = await greeted(serve());
    expect(await p.request({ type: "open_stream", stream_id: 1 })).toEqual({
      type: "response_ok",
      request_id: 1,
      response: { type: "open_stream" },
    });
    await p.request({ type: "sequence", stream_id: 1, sql: "CREATE TABLE t (a INTEGER, b TEXT); BEGIN" });
    expect(await p.request({ type: "get_autocommit", stream_id: 1 })).toMatchObject({
      response: { is_autocommit: false },
    });
    await p.request({ type: "store_sql", sql_id: 7, sql: "INSERT INTO t VALUES (?, ?)" });
    const args = [
      { type: "integer", value: "1" },
      { type: "text", value: "x" },
    ];
    const inserted = await p.request({ type: "execute", stream_id: 1, stmt: { sql_id: 7, args } });
    expect(inserted).toMatchObject({ response: { result: { affected_row_count: 1, last_insert_rowid: "1" } } });
    const failed = await p.request({ type: "execute", stream_id: 1, stmt: stmt("SELECT nope FROM t") });
    expect(failed).toMatchObject({ type: "response_error", error: { code: "SQLITE_UNKNOWN" } });
    const batch = await p.request({
      type: "batch",
      stream_id: 1,
      batch: {
        steps: [{ stmt: stmt("COMMIT") }, { stmt: stmt("SELECT a, b FROM t"), condition: { type: "ok", step: 0 } }],
      },
    });
    expect(batch).toMatchObject({ response: { result: { step_results: [{}, { rows: [args] }] } } });
    const described = await p.request({ type: "describe", stream_id: 1, sql: "SELECT a FROM t WHERE b = ?" });
    expect(described).toMatchObject({ response: { result: { params: [{ name: null }], is_readonly: true } } });
    expect(await p.request({ type: "close_stream", stream_id: 1 })).toMatchObject({ type: "response_ok" });
  });

  test("a cursor (Hrana 3) hands a batch's entries out in pieces; a closed one is unknown", async () => {
    const p = await greeted(serve());
    await p.request({ type: "open_stream", stream_id: 1 });
    const steps = [{ stmt: stmt("SELECT 1 UNION ALL SELECT 2") }, { stmt: stmt("SELECT nope") }];
    await p.request({ type: "open_cursor", stream_id: 1, cursor_id: 3, batch: { steps } });
    const first = await p.request({ type: "fetch_cursor", cursor_id: 3, max_count: 2 });
    expect(first).toMatchObject({
      response: { done: false, entries: [{ type: "step_begin", step: 0 }, { type: "row" }] },
    });
    const rest = await p.request({ type: "fetch_cursor", cursor_id: 3, max_count: 10 });
    expect(rest).toMatchObject({
      response: { done: true, entries: [{ type: "row" }, { type: "step_end" }, { type: "step_error" }] },
    });
    await p.request({ type: "close_cursor", cursor_id: 3 });
    p.send({ type: "request", request_id: 99, request: { type: "fetch_cursor", cursor_id: 3, max_count: 1 } });
    expect(await p.closed()).toEqual({ code: 1008, reason: "Cursor 3 not found" });
  });

  test("a cursor is done only once a fetch finds its end, not with the fetch taking its last entries", async () => {
    const p = await greeted(serve());
    await p.request({ type: "open_stream", stream_id: 1 });
    await p.request({
      type: "open_cursor",
      stream_id: 1,
      cursor_id: 1,
      batch: { steps: [{ stmt: stmt("SELECT 1") }] },
    });
    // step_begin, row, step_end: as sqld, done is said by the fetch that asked past them.
    const all = await p.request({ type: "fetch_cursor", cursor_id: 1, max_count: 3 });
    expect(all).toMatchObject({ response: { done: false, entries: [{}, {}, {}] } });
    const end = await p.request({ type: "fetch_cursor", cursor_id: 1, max_count: 3 });
    expect(end).toMatchObject({ response: { done: true, entries: [] } });
    const after = await p.request({ type: "fetch_cursor", cursor_id: 1, max_count: 3 });
    expect(after).toMatchObject({ response: { done: true, entries: [] } });
  });

  test("a request on a stream whose cursor is open is a protocol error; free once it is closed", async () => {
    const server = serve();
    const steps = [{ stmt: stmt("SELECT 1") }];
    for (const request of [
      { type: "execute", stream_id: 1, stmt: stmt("SELECT 2") },
      { type: "batch", stream_id: 1, batch: { steps } },
      { type: "sequence", stream_id: 1, sql: "SELECT 2" },
      { type: "describe", stream_id: 1, sql: "SELECT 2" },
      { type: "get_autocommit", stream_id: 1 },
    ]) {
      const p = await greeted(server);
      await p.request({ type: "open_stream", stream_id: 1 });
      await p.request({ type: "open_cursor", stream_id: 1, cursor_id: 1, batch: { steps } });
      p.send({ type: "request", request_id: 99, request });
      expect([request.type, await p.closed()]).toEqual([
        request.type,
        { code: 1008, reason: "Stream 1 has an open cursor: no request may run on it until the cursor is closed" },
      ]);
    }
    const p = await greeted(server);
    for (const stream_id of [1, 2]) {
      await p.request({ type: "open_stream", stream_id });
      await p.request({ type: "open_cursor", stream_id, cursor_id: stream_id, batch: { steps } });
    }
    await p.request({ type: "close_cursor", cursor_id: 1 });
    await p.request({ type: "close_stream", stream_id: 2 });
    await p.request({ type: "open_stream", stream_id: 2 });
    for (const stream_id of [1, 2])
      expect(await p.request({ type: "execute", stream_id, stmt: stmt("SELECT 2") })).toMatchObject({
        type: "response_ok",
      });
  });

  test("a connection that closes rolls back its streams' transactions, releasing their locks", async () => {
    const server = serve();
    const first = await greeted(server);
    await first.request({ type: "open_stream", stream_id: 1 });
    await first.request({ type: "sequence", stream_id: 1, sql: "CREATE TABLE t (a); BEGIN IMMEDIATE" });
    await first.request({ type: "execute", stream_id: 1, stmt: stmt("INSERT INTO t VALUES (1)") });
    sockets.shift()!.close();
    const second = await greeted(server);
    await second.request({ type: "open_stream", stream_id: 1 });
    const written = await second.request({ type: "execute", stream_id: 1, stmt: stmt("INSERT INTO t VALUES (2)") });
    expect(written).toMatchObject({ type: "response_ok" });
    const rows = await second.request({ type: "execute", stream_id: 1, stmt: stmt("SELECT a FROM t") });
    expect(rows).toMatchObject({ response: { result: { rows: [[{ type: "integer", value: "2" }]] } } });
  });
});

test("silenceWebSockets: the connections open then answer nothing more; a new one is answered", async () => {
  const server = serve();
  const hung = await greeted(server);
  await hung.request({ type: "open_stream", stream_id: 1 });
  expect(server.silenceWebSockets()).toBe(1);
  const unanswered = hung.request({ type: "execute", stream_id: 1, stmt: stmt("SELECT 1") });
  unanswered.catch(() => {});
  const fresh = await greeted(server);
  await fresh.request({ type: "open_stream", stream_id: 1 });
  const answered = await fresh.request({ type: "execute", stream_id: 1, stmt: stmt("SELECT 1") });
  expect(answered).toMatchObject({ type: "response_ok" });
  expect(await until(unanswered, Date.now() + 300)).toBe(TIMED_OUT);
  expect(hung.inbox).toEqual([]);
});

test("silenceWebSockets(true): new connections answer nothing either, until a call without it", async () => {
  const server = serve();
  await greeted(server);
  expect(server.silenceWebSockets(true)).toBe(1);
  const unanswered = await peer(server);
  unanswered.send({ type: "hello", jwt: null });
  expect(await until(unanswered.next(), Date.now() + 300)).toBe(TIMED_OUT);
  expect(server.silenceWebSockets()).toBe(2);
  await greeted(server);
  expect([server.webSocketsOpened(), server.mostWebSocketsOpen()]).toEqual([3, 3]);
});
