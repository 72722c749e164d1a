/**
 * The sse sink on its own, with a log held back on purpose (which no real store does on
 * demand): Bun.serve sends no response headers before the first body byte (see
 * http-bun.test.ts), so a subscriber whose first event is slow to come (a long catch-up
 * from the store) would wait for the headers as long; /v1/watch writes an SSE comment at
 * once. And the host may create the sink again on the same app.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import * as v from "valibot";
import { createHttpServer } from "../host/http.ts";
import { httpSchema } from "../host/http-config.ts";
import type { CommittedLog } from "../sdk/contract.ts";
import { silentLogger } from "../host/logger.ts";
import { createMetrics } from "../host/metrics.ts";
import type { Update } from "../sdk/model.ts";
import sse from "../plugins/sinks/sse.ts";
import { openSse } from "./sse-client.ts";

const held = Promise.withResolvers<Update[]>();
const heldLog: CommittedLog = {
  epoch: "e0",
  head: () => 10,
  oldest: () => 1,
  horizon: () => 0,
  read: () => held.promise,
  async *follow() {},
  snapshot: async () => ({ version: 10, objects: [] }),
  async *snapshotPages() {
    yield { version: 10, objects: [] };
  },
  whole: async () => {},
};
const metrics = createMetrics();
const http = createHttpServer({
  config: v.parse(httpSchema, { address: "127.0.0.1", port: 0 }),
  logger: silentLogger,
  metrics,
  readiness: async () => ({ ready: true, waiting: [] }),
});
const createSink = () =>
  sse.create(v.parse(sse.schema, {}), {
    name: "sse",
    cluster: "test",
    logger: silentLogger,
    metrics,
    log: heldLog,
    http: http.app,
    cursor: { load: async () => undefined, save: async () => {} },
  });
let sink = createSink();
beforeAll(async () => {
  await sink.start();
  await http.listen();
  http.serve();
});
afterAll(async () => {
  held.resolve([]);
  await sink.stop();
  await http.stop();
});

test("the response headers come at once, while the catch-up is still reading the log", async () => {
  const opened = openSse(http.url(), {}, { lastEventId: "e0:5" });
  const outcome = await Promise.race([opened.then((c) => c), Bun.sleep(2000).then(() => undefined)]);
  expect(outcome).toBeDefined();
  const c = outcome!;
  expect(c.status).toBe(200);
  await c.until(() => c.comments > 0, 2000, "the opening comment");
  expect(c.events).toEqual([]);

  held.resolve([]);
  expect((await c.next()).type).toBe("SYNCED");
  c.close();
});

test("a sink created again on the same app serves /v1/watch; a stopped one answers 503", async () => {
  await sink.stop();
  await sink.stop();
  const refused = await fetch(`${http.url()}/v1/watch`);
  expect(refused.status).toBe(503);
  expect(refused.headers.get("retry-after")).toBe("5");
  // An EventSource gives up for good on a 503 (WHATWG: any status but 200 fails the connection): it gets a stream
  // that ends at once and sets its reconnection time, so that it comes back once kubemeta runs again.
  const eventSource = await fetch(`${http.url()}/v1/watch`, { headers: { accept: "text/event-stream" } });
  expect(eventSource.status).toBe(200);
  expect(eventSource.headers.get("content-type")).toStartWith("text/event-stream");
  expect(await eventSource.text()).toBe(": the SSE sink is not running\nretry: 5000\n\n");
  sink = createSink();
  await sink.start();
  await sink.start();
  const c = await openSse(http.url(), {}, { lastEventId: "e0:10" });
  expect((await c.next()).type).toBe("SYNCED");
  c.close();
});

test("a stopped sink streams to an Accept that wants an event stream more than JSON, however spelt", async () => {
  await sink.stop();
  const answer = async (accept: string) => {
    const response = await fetch(`${http.url()}/v1/watch`, { headers: { accept } });
    await response.body?.cancel();
    return [accept, response.status];
  };
  const eventStream = [
    "Text/Event-Stream",
    " TEXT/EVENT-STREAM ",
    "text/event-stream; charset=utf-8",
    "text/html, Text/Event-Stream;q=0.9",
    "text/event-stream, */*;q=0.1",
    "application/json;q=0.5, text/event-stream;Q=0.6",
  ];
  for (const accept of eventStream) expect(await answer(accept)).toEqual([accept, 200]);
  const json = ["text/event-stream, application/json", "*/*", "text/event-stream;q=0", "text/html", "text/plain, */*"];
  for (const accept of json) expect(await answer(accept)).toEqual([accept, 503]);
  sink = createSink();
  await sink.start();
});
