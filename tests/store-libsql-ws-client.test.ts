/**
 * The remote store's client over `ws(s)://` (plugins/stores/libsql/ws-client.ts) as its callers meet it, against the
 * test libSQL server (./hrana-server.ts): what it answers once closed, to what kubemeta never asks of it, and the
 * WebSockets it leaves open.
 */
import { afterEach, expect, setSystemTime, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BoundedWsClient } from "../plugins/stores/libsql/ws-client.ts";
import { waitFor } from "../testing/index.ts";
import { startHranaServer, type HranaServer } from "./hrana-server.ts";

const TIMEOUT_MS = 2_000;
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function serve(): HranaServer {
  const root = mkdtempSync(join(tmpdir(), "kubemeta-ws-client-"));
  const server = startHranaServer({ path: join(root, "db.sqlite") });
  cleanups.push(
    () => rm(root, { recursive: true, force: true }),
    () => server.stop(),
  );
  return server;
}

function clientOf(server: HranaServer): BoundedWsClient {
  const client = new BoundedWsClient({ url: server.wsUrl }, TIMEOUT_MS);
  cleanups.push(() => client.close());
  return client;
}

/** What `call` returns, or what it threw synchronously: callers are async, and await what they get. */
function returned(call: () => unknown): unknown {
  try {
    return call();
  } catch (error) {
    return `thrown synchronously: ${(error as Error).message}`;
  }
}

test("closed, every request is a rejected Promise (CLIENT_CLOSED), as @libsql/client's clients answer", async () => {
  const client = clientOf(serve());
  await client.execute("SELECT 1");
  client.close();
  const requests: [string, () => unknown][] = [
    ["execute", () => client.execute("SELECT 1")],
    ["batch", () => client.batch(["SELECT 1"])],
    ["migrate", () => client.migrate(["SELECT 1"])],
    ["executeMultiple", () => client.executeMultiple("SELECT 1")],
    ["transaction", () => client.transaction("read")],
  ];
  for (const [name, request] of requests) {
    const answer = returned(request);
    expect([name, answer]).toEqual([name, expect.any(Promise)]);
    await expect(answer as Promise<unknown>).rejects.toMatchObject({
      code: "CLIENT_CLOSED",
      message: "CLIENT_CLOSED: The client is closed",
    });
  }
});

test("sync() and reconnect(), which kubemeta never calls, refuse at once, each as its type declares", async () => {
  const client = clientOf(serve());
  // sync() is a Promise: a rejection.
  const synced = returned(() => client.sync());
  expect(synced).toEqual(expect.any(Promise));
  await expect(synced as Promise<unknown>).rejects.toMatchObject({ code: "SYNC_NOT_SUPPORTED" });
  // reconnect() is void (@libsql/client's Client): thrown at the call, no promise for its caller to leave unhandled.
  expect(returned(() => client.reconnect())).toBe(
    "thrown synchronously: RECONNECT_NOT_SUPPORTED: reconnect is not supported: close the client and create another",
  );
  // Still usable: nothing of it was closed or replaced.
  expect((await client.execute("SELECT 1 AS one")).rows[0]?.one).toBe(1);
});

test("a failover under a connection a minute old leaves no WebSocket open once the client is closed", async () => {
  const server = serve();
  const client = clientOf(server);
  await client.execute("SELECT 1");
  // The connection open hangs for good; new ones are answered.
  expect(server.silenceWebSockets()).toBe(1);
  // A minute on, when @libsql/client opens a WebSocket anew under a request: the clock moved as the request starts,
  // not waited for.
  setSystemTime(Date.now() + 61_000);
  const answer = client.execute("SELECT 1 AS one").then(
    (result) => result.rows[0]?.one,
    (error: Error) => error.message,
  );
  await Bun.sleep(0);
  setSystemTime();
  const answered = await answer;
  client.close();
  const left = await waitFor(() => server.webSocketsOpen() === 0, 2_000, "the client's WebSockets to close").then(
    () => 0,
    () => server.webSocketsOpen(),
  );
  // Over a new connection at once: the hung one, a minute old, takes no request and is closed.
  expect({ answered, left }).toEqual({ answered: 1, left: 0 });
});
