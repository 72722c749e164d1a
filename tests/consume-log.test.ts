/**
 * What `consume` (sdk/consume.ts) logs of a failure it retries for long, on a real host: a store away (reads of the
 * log, with `ha` the cursor's load, against a libSQL server that is stopped) and a plugin's `deliver` that keeps
 * throwing (its receiver down). Each run of failures is one line at first and one more per new cause, then a line
 * once it works again with the attempts it took; the counter counts every attempt. A line per attempt was about 360
 * an hour per sink from the log's retries, and one per `retry` step from a plugin's receiver down for an hour.
 */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { Terms } from "../host/leadership.ts";
import { createMetrics } from "../host/metrics.ts";
import { silentLogger } from "../host/logger.ts";
import libsql from "../plugins/stores/libsql.ts";
import type { Store } from "../sdk/contract.ts";
import { consume } from "../sdk/consume.ts";
import { startTestHost, tempDir, waitFor, type TestHost } from "../testing/index.ts";
import { type HranaServer, startHranaServer } from "./hrana-server.ts";
import { addPods, consumeSinks, contextOn, sinkMetric, upTo, type Logged } from "./plugins-fixtures.ts";

const READ_FAILED = "sink failed to read the log; retrying";
const LOAD_FAILED = "sink failed to load its cursor; retrying";
const DELIVER_FAILED = "sink failed to deliver a batch; retrying it";

let host: TestHost | undefined;
let server: HranaServer | undefined;
let reader: Store | undefined;
const sinks = consumeSinks(async () => {
  await host?.destroy();
  host = undefined;
  await reader?.stop();
  reader = undefined;
  await server?.stop();
  server = undefined;
});

const said = (logged: Logged[], msg: string) => logged.filter((line) => line.msg === msg);
const failures = (sink: string, step: string) =>
  sinkMetric(host!, "counter", "kubemeta_sink_delivery_failures_total", sink, { step });

/**
 * A host whose store is a libSQL server on a file, holding 5 updates its log's memory does not (a restart: the sinks
 * read them from the store), and that server's stop and start again on its port.
 */
async function hostOnAStoreServer() {
  const dir = await tempDir();
  const path = join(dir, "store", "kubemeta.db");
  server = startHranaServer({ path });
  const { port, url } = server;
  const options = { dir, extra: { store: { type: "libsql", url } } };
  const first = await startTestHost(options);
  addPods(first, 5);
  await first.changes.flush();
  await first.stop();
  host = await startTestHost(options);
  return {
    url,
    async down() {
      await server?.stop();
      server = undefined;
    },
    up() {
      server ??= startHranaServer({ path, port });
    },
  };
}

test("the store's reads failing: one error, not one per attempt, and one line once it reads again", async () => {
  const store = await hostOnAStoreServer();
  await store.down();
  const logged: Logged[] = [];
  const delivered: number[] = [];
  await sinks.start(
    host!,
    "reader",
    { deliver: async (envelopes) => void delivered.push(...envelopes.map((e) => e.version)) },
    logged,
  );
  // The log's retries back off from 200 ms: four take a second or two.
  await waitFor(() => failures("reader", "read") >= 4, 10_000, "four failed reads");
  store.up();
  await waitFor(() => delivered.length === 5, 20_000, "every update once the store is back");
  expect(delivered).toEqual(upTo(5));
  const failed = said(logged, READ_FAILED);
  expect(failed).toHaveLength(1);
  expect(failed[0]).toMatchObject({
    level: "error",
    after: 0,
    error: expect.objectContaining({ code: "ECONNREFUSED" }),
  });
  expect(said(logged, "sink reading the log works again")).toEqual([
    expect.objectContaining({ level: "info", failedAttempts: failures("reader", "read"), downMs: expect.any(Number) }),
  ]);
});

test("with ha, the cursor's load failing: one error, and one line once it loads again", async () => {
  const store = await hostOnAStoreServer();
  // The cursor where the host keeps a sink's: in the store.
  reader = libsql.create({ url: store.url } as never, {
    name: "reader",
    cluster: "test",
    logger: silentLogger,
    metrics: createMetrics(),
  });
  await reader.start();
  await store.down();
  const logged: Logged[] = [];
  const delivered: number[] = [];
  const terms = new Terms();
  terms.begin();
  const sink = consume(
    {
      ...contextOn(host!, "leader", logged),
      cursor: {
        load: () => reader!.cursor("sink/leader"),
        save: (version) => reader!.saveCursor("sink/leader", version),
      },
      leadership: terms,
    },
    { deliver: async (envelopes) => void delivered.push(...envelopes.map((e) => e.version)) },
  );
  sinks.running.push(sink);
  await sink.start();
  await waitFor(() => failures("leader", "read") >= 4, 10_000, "four failed loads");
  store.up();
  await waitFor(() => delivered.length === 5, 20_000, "every update once the store is back");
  const failed = said(logged, LOAD_FAILED);
  expect(failed).toHaveLength(1);
  expect(failed[0]).toMatchObject({ level: "error", retryInMs: expect.any(Number) });
  expect(said(logged, "loading the sink's cursor works again")).toEqual([
    expect.objectContaining({ level: "info", failedAttempts: failures("leader", "read"), downMs: expect.any(Number) }),
  ]);
});

test("deliver throwing 20 times: one error, not 20, and one line with failedAttempts once it works", async () => {
  host = await startTestHost();
  const logged: Logged[] = [];
  const delivered: number[] = [];
  let throwsLeft = 20;
  await sinks.start(
    host,
    "flaky",
    {
      retry: { initialMs: 1, maxMs: 2 },
      async deliver(envelopes) {
        if (throwsLeft-- > 0) throw new Error("receiver down");
        delivered.push(...envelopes.map((e) => e.version));
      },
    },
    logged,
  );
  addPods(host, 3);
  await waitFor(() => delivered.length === 3, 5_000, "every update");
  const recovered = await waitFor(
    () => said(logged, "sink delivery works again")[0],
    5_000,
    "the line once it delivers",
  );
  expect(delivered).toEqual(upTo(3));
  expect(failures("flaky", "deliver")).toBe(20);
  expect(said(logged, DELIVER_FAILED).map(({ level, attempt, error }) => ({ level, attempt, error }))).toEqual([
    { level: "error", attempt: 1, error: { name: "Error", message: "receiver down" } },
  ]);
  expect(recovered).toMatchObject({ level: "info", failedAttempts: 20, downMs: expect.any(Number) });
});

test("a new cause mid-outage (a refused connection, then a TypeError) is said at once", async () => {
  host = await startTestHost();
  const logged: Logged[] = [];
  const thrown = [
    ...Array.from({ length: 3 }, () => Object.assign(new Error("connect failed"), { code: "ECONNREFUSED" })),
    ...Array.from({ length: 3 }, () => new TypeError("the receiver answered nonsense")),
  ];
  await sinks.start(
    host,
    "changing",
    {
      retry: { initialMs: 1, maxMs: 2 },
      async deliver() {
        const error = thrown.shift();
        if (error) throw error;
      },
    },
    logged,
  );
  addPods(host, 1);
  await waitFor(() => said(logged, "sink delivery works again").length === 1, 5_000, "the line once it delivers");
  expect(
    said(logged, DELIVER_FAILED).map(({ level, attempt, failedAttempts }) => [level, attempt, failedAttempts]),
  ).toEqual([
    ["error", 1, undefined],
    ["error", 4, 4],
  ]);
  expect(said(logged, "sink delivery works again")[0]).toMatchObject({ failedAttempts: 6 });
});
