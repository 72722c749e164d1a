/**
 * Snapshots streamed from the store in pages (an SSE RESET, GET /v1/objects): the very bytes the whole-snapshot
 * answers they replace wrote, on a state of a few thousand objects; clients that go away mid-snapshot free the
 * store's read; a failure after the first byte of /v1/objects aborts the response, never ends it as valid JSON.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as v from "valibot";
import { createHttpServer } from "../host/http.ts";
import { httpSchema } from "../host/http-config.ts";
import { createLogger, silentLogger } from "../host/logger.ts";
import { createMetrics } from "../host/metrics.ts";
import { mountApi } from "../host/read-api.ts";
import { OPENING, resetEvent, snapshotEvents, syncedEvent } from "../plugins/sinks/sse/wire.ts";
import type { CommittedLog, ObjectQuery } from "../sdk/contract.ts";
import { HTTP_SNAPSHOT_READS, readObjectPages } from "../sdk/http.ts";
import type { CurrentObject, KubeObject } from "../sdk/model.ts";
import { makePod } from "../simulator/pods.ts";
import { makeNode, nodeName } from "../simulator/nodes.ts";
import { rawPod, startTestHost, waitFor, type TestHost } from "../testing/index.ts";
import { responseHeaders } from "./security-raw.ts";

const NODES = 20;
const PODS = 3_000;
const decoder = new TextDecoder();

/** A simulator object with a fixed uid and resourceVersion, so that its DELETED matches it. */
function named(object: KubeObject, uid: string): KubeObject {
  return { ...object, metadata: { ...object.metadata, uid, resourceVersion: "1" } };
}
const pod = (i: number) =>
  named(makePod({ name: `web-${i}`, namespace: i % 3 ? "shop" : "ops", node: nodeName(i % NODES) }), `pod-${i}`);

let th: TestHost;
beforeAll(async () => {
  th = await startTestHost({ sinks: [{ type: "sse" }] });
  for (let n = 0; n < NODES; n++) await th.changes.apply("nodes", "ADDED", named(makeNode(nodeName(n)), `node-${n}`));
  for (const name of ["shop", "ops"]) {
    const namespace = { kind: "Namespace", apiVersion: "v1", metadata: { name, labels: { team: name } } };
    await th.changes.apply("namespaces", "ADDED", named(namespace, `ns-${name}`));
  }
  for (let i = 0; i < PODS; i++) await th.changes.apply("pods", "ADDED", pod(i));
  // Deleted objects leave holes in the rowids the pages are read by.
  for (let i = 0; i < PODS; i += 7) await th.changes.apply("pods", "DELETED", pod(i));
  await th.changes.flush();
}, 60_000);
afterAll(() => th.destroy());

/**
 * The state as the whole-snapshot answers read it before they streamed pages, the reference the pages must equal:
 * one read, one kind asked of the store, several filtered here.
 */
async function readObjects(
  log: CommittedLog,
  query: Omit<ObjectQuery, "kind">,
  kinds: Set<string> | undefined,
): Promise<{ version: number; objects: CurrentObject[] }> {
  const single = kinds?.size === 1 ? [...kinds][0] : undefined;
  const snapshot = await log.snapshot(single ? { ...query, kind: single } : query);
  if (!kinds || single) return snapshot;
  return { version: snapshot.version, objects: snapshot.objects.filter((object) => kinds.has(object.kind)) };
}

/** The raw text of a /v1/watch response up to its SYNCED event, heartbeats left out. */
async function sseUntilSynced(query: string): Promise<string> {
  const response = await fetch(`${th.url}/v1/watch?${query}`);
  let text = "";
  for await (const chunk of response.body!) {
    text += decoder.decode(chunk, { stream: true });
    const synced = text.indexOf("event: SYNCED\n");
    if (synced >= 0 && text.indexOf("\n\n", synced) >= 0) return text.slice(0, text.indexOf("\n\n", synced) + 2);
  }
  throw new Error(`the stream ended before SYNCED: ${text.slice(-200)}`);
}

/** Reads `url` until its body has at least `bytes` bytes, then goes away. */
async function leaveAfter(url: string, bytes: number, until = ""): Promise<void> {
  const abort = new AbortController();
  const reader = (await fetch(url, { signal: abort.signal })).body!.getReader();
  let text = "";
  while (text.length < bytes || !text.includes(until)) {
    const { value, done } = await reader.read();
    if (done) throw new Error("the response ended before the client left");
    text += decoder.decode(value, { stream: true });
  }
  abort.abort();
}

const CASES: { query: string; stream: string; kinds?: Set<string>; namespace?: string; node?: string }[] = [
  { query: "stream=all", stream: "all" },
  { query: "stream=shared", stream: "shared" },
  { query: `stream=node/${nodeName(3)}`, stream: `node/${nodeName(3)}` },
  {
    query: "stream=all&kinds=Node,Pod&namespace=ops",
    stream: "all",
    kinds: new Set(["Node", "Pod"]),
    namespace: "ops",
  },
  { query: "stream=all&kinds=Node", stream: "all", kinds: new Set(["Node"]) },
];

describe("the same output as the whole snapshot", () => {
  test.each(CASES)("SSE RESET, SYNCED and every ADDED byte for byte: $query", async (c) => {
    const { version, objects } = await readObjects(th.host.log, { stream: c.stream, namespace: c.namespace }, c.kinds);
    expect(objects.length).toBeGreaterThan(0);
    const received = (await sseUntilSynced(c.query)).replaceAll(": heartbeat\n\n", "");
    const time = /"time":"([^"]+)"/.exec(received)![1]!;
    const { epoch } = th.host.log;
    const former =
      OPENING +
      resetEvent(epoch, c.stream, { code: "no-resume-point", reason: "no resume point" }) +
      snapshotEvents(epoch, c.stream, objects, time) +
      syncedEvent(epoch, c.stream, version);
    expect(received.length).toBe(former.length);
    expect(received === former).toBe(true);
  });

  test.each([
    { query: "", stream: "all" },
    { query: "kind=Pod&namespace=shop", stream: "all", kinds: new Set(["Pod"]), namespace: "shop" },
    { query: `kind=Node,Pod&node=${nodeName(5)}`, stream: "all", kinds: new Set(["Node", "Pod"]), node: nodeName(5) },
    { query: "stream=shared", stream: "shared" },
  ])("/v1/objects body and content-type: '$query'", async (c) => {
    const { version, objects } = await readObjects(
      th.host.log,
      { stream: c.stream, namespace: c.namespace, node: c.node },
      c.kinds,
    );
    const response = await fetch(`${th.url}/v1/objects?${c.query}`);
    expect(response.status).toBe(200);
    // What c.json answers, as an error still is.
    const json = (await fetch(`${th.url}/v1/objects?kind=pods`)).headers.get("content-type");
    expect(response.headers.get("content-type")).toBe(json);
    const body = await response.text();
    const former = JSON.stringify({ epoch: th.host.log.epoch, version, items: objects });
    expect(body.length).toBe(former.length);
    expect(body === former).toBe(true);
  });
});

test("20 SSE and 20 /v1/objects clients that leave mid-snapshot free the store's read", async () => {
  for (let i = 0; i < 20; i++) {
    // Past the first page: the read is open and the next page waits for this client.
    await leaveAfter(`${th.url}/v1/watch?stream=all`, 500_000, "event: ADDED");
    await leaveAfter(`${th.url}/v1/objects`, 500_000);
  }
  const settled = (async () => {
    await th.changes.apply("pods", "ADDED", rawPod("after-the-cuts", { node: nodeName(1) }));
    await th.changes.flush();
    const head = th.host.log.head();
    const [store, sse, objects] = await Promise.all([
      th.host.log.snapshot({}),
      sseUntilSynced("stream=all"),
      fetch(`${th.url}/v1/objects`).then((r) => r.json() as Promise<{ version: number; items: CurrentObject[] }>),
      Array.fromAsync(th.host.log.snapshotPages({}, 1000)),
    ]);
    expect(store.version).toBe(head);
    expect(objects.version).toBe(head);
    expect(objects.items).toEqual(store.objects);
    expect(sse.endsWith(syncedEvent(th.host.log.epoch, "all", head))).toBe(true);
  })();
  await Promise.race([settled, Bun.sleep(20_000).then(() => Promise.reject(new Error("a read is still held")))]);
}, 60_000);

test("HEAD /v1/objects answers the GET's headers and lets go of its read: GETs after HEADs are answered", async () => {
  for (let i = 0; i < HTTP_SNAPSHOT_READS + 2; i++) {
    const head = await fetch(`${th.url}/v1/objects`, { method: "HEAD" });
    expect([head.status, head.headers.get("content-type"), await head.text()]).toEqual([200, "application/json", ""]);
  }
  // Framed alike: chunked past the first page, the length of a state within it (Bun's own choice was a race).
  const framing = async (method: string, path: string): Promise<unknown[]> => {
    const headers = await responseHeaders(th.url, `${method} ${path} HTTP/1.1`);
    return [headers["content-length"], headers["transfer-encoding"]];
  };
  const framings: [string, unknown[]][] = [
    ["/v1/objects", [undefined, "chunked"]],
    ["/v1/objects?kind=Namespace", [expect.stringMatching(/^[1-9]\d+$/), undefined]],
  ];
  for (const [path, framed] of framings) {
    const get = await framing("GET", path);
    expect([path, get]).toEqual([path, framed]);
    expect([path, await framing("HEAD", path)]).toEqual([path, get]);
  }
  const objects = fetch(`${th.url}/v1/objects?kind=Namespace`).then((r) => r.json() as Promise<{ items: unknown[] }>);
  const late = Bun.sleep(4_000).then(() => Promise.reject(new Error("HEADs still hold the snapshot reads")));
  expect((await Promise.race([objects, late])).items).toHaveLength(2);
});

test("SSE resets and /v1/objects waiting for their turn end when their client leaves or the sink stops", async () => {
  const said: string[] = [];
  const own = await startTestHost({
    sinks: [{ type: "sse" }],
    logger: createLogger({ level: "warn", write: (line) => said.push(line) }),
  });
  try {
    await own.changes.apply("pods", "ADDED", pod(1));
    await own.changes.flush();
    // Both turns taken: two reads at their first page, held.
    const held = [0, 1].map(() => readObjectPages(own.host.log, {}, undefined));
    for (const pages of held) await pages.next();
    const subscribers = async () =>
      /kubemeta_sse_subscribers\{stream="all"\} (\d+)/.exec(await (await fetch(`${own.url}/metrics`)).text())?.[1] ??
      "0";

    const leaving = new AbortController();
    const left = await fetch(`${own.url}/v1/watch?stream=all`, { signal: leaving.signal });
    // Bun's fetch lets go of the connection on abort only once its body is being read.
    await left.body!.getReader().read();
    const objects = fetch(`${own.url}/v1/objects`, { signal: leaving.signal }).catch(() => "left");
    await waitFor(async () => (await subscribers()) === "1", 5_000, "the SSE client to wait for its turn");
    leaving.abort();
    expect(await objects).toBe("left");
    await waitFor(async () => (await subscribers()) === "0", 5_000, "the client that left to be let go");

    const waiting = await fetch(`${own.url}/v1/watch?stream=all`);
    await waitFor(async () => (await subscribers()) === "1", 5_000, "the SSE client to wait for its turn");
    const body = waiting.text();
    await own.host.stop();
    expect(await body).toStartWith(":");
    // Within the 3 s a sink has to drain, not abandoned at the plugin's deadline.
    expect(said.filter((line) => line.includes("did not stop in time"))).toEqual([]);
    for (const pages of held) await pages.return(undefined);
  } finally {
    await own.destroy();
  }
});

describe("/v1/objects against a log of its own", () => {
  const object = (i: number): CurrentObject => ({
    kind: "Pod",
    uid: `u${i}`,
    namespace: "default",
    name: `p${i}`,
    node: null,
    stream: "all",
    version: i,
    resourceVersion: String(i),
    object: { data: "x".repeat(100_000) },
  });
  /** A log whose snapshot fails once `pages` pages are read. */
  const failingLog = (pages: number): CommittedLog => ({
    epoch: "e0",
    head: () => 1,
    oldest: () => 1,
    horizon: () => 0,
    read: async () => [],
    async *follow() {},
    snapshot: async () => ({ version: 1, objects: [] }),
    async *snapshotPages() {
      for (let i = 0; i < pages; i++) yield { version: 1, objects: [object(i)] };
      throw new Error("the disk is on fire");
    },
    whole: async () => {},
  });
  const serve = async (log: CommittedLog, idleTimeout = "30s", logger = silentLogger) => {
    const config = v.parse(httpSchema, { address: "127.0.0.1", port: 0, idleTimeout });
    const http = createHttpServer({
      config,
      logger: silentLogger,
      metrics: createMetrics(),
      readiness: async () => ({ ready: true, waiting: [] }),
    });
    mountApi(http.app, log, logger, config.idleTimeout);
    await http.listen();
    http.serve();
    return http;
  };

  test("before the first byte: a 503 with Retry-After (a store down is outlasted by asking again)", async () => {
    const logged: string[] = [];
    const http = await serve(failingLog(0), "30s", createLogger({ write: (line) => void logged.push(line) }));
    try {
      for (let i = 0; i < 3; i++) {
        const response = await fetch(`${http.url()}/v1/objects`);
        expect(response.status).toBe(503);
        expect(response.headers.get("retry-after")).toBe("5");
        expect(await response.json()).toEqual({ error: "the store cannot be read now; retry later" });
      }
      // Said once a minute, not once a request: clients polling a store that is down would flood the log.
      expect(logged.filter((line) => line.includes("a read of the store failed"))).toHaveLength(1);
    } finally {
      await http.stop();
    }
  });

  test("/v1/updates whose read of the store fails: a 503 with Retry-After too", async () => {
    const http = await serve({
      ...failingLog(0),
      read: async () => {
        throw new Error("the store is down");
      },
    });
    try {
      const response = await fetch(`${http.url()}/v1/updates?since=e0:0`);
      expect(response.status).toBe(503);
      expect(response.headers.get("retry-after")).toBe("5");
    } finally {
      await http.stop();
    }
  });

  test("after it: the response is aborted, so the client's read fails", async () => {
    const http = await serve(failingLog(3));
    try {
      const response = await fetch(`${http.url()}/v1/objects`);
      expect(response.status).toBe(200);
      await expect(response.text()).rejects.toThrow();
    } finally {
      await http.stop();
    }
  });

  test("requests waiting for their turn among the snapshots read at once outlast the idle timeout", async () => {
    const gate = Promise.withResolvers<void>();
    let started = 0;
    const slowLog: CommittedLog = {
      ...failingLog(0),
      async *snapshotPages() {
        started++;
        await gate.promise;
        yield { version: 1, objects: [object(1)] };
      },
    };
    const http = await serve(slowLog, "1s");
    try {
      // Two hold the turns (HTTP_SNAPSHOT_READS) until the store answers; the third waits for one of them.
      const responses = Array.from({ length: HTTP_SNAPSHOT_READS + 1 }, () =>
        fetch(`${http.url()}/v1/objects`).then(async (r) => ({ status: r.status, body: await r.text() })),
      );
      await waitFor(() => started === HTTP_SNAPSHOT_READS, 5_000, "the first snapshots to start");
      // Sent nothing, through no fault of the clients, for longer than the listener closes such requests after: Bun
      // checks idle timeouts every 4 s, so a timeout of 1 s closes one 4 to 8 s after its last byte (it did at 4 s).
      await Bun.sleep(9_000);
      gate.resolve();
      for (const { status, body } of await Promise.all(responses)) {
        expect(status).toBe(200);
        expect(JSON.parse(body)).toMatchObject({ version: 1, items: [{ uid: "u1" }] });
      }
    } finally {
      await http.stop();
    }
  }, 20_000);
});
