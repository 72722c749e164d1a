/**
 * A new store (first start, wiped store) holds its state back from resets and /v1/objects until the sources have
 * synced: a client that reconciles its cache with a reset (other epoch) would otherwise delete every object not
 * listed yet, then see it added again. A store whose first sync ended once (the store records it) serves its state
 * at once; one whose process stopped during that sync waits for it again.
 */
import { afterEach, expect, test } from "bun:test";
import { join } from "node:path";
import type { ReplayChunk } from "../protocol/replay.ts";
import { rawPod, startTestHost, tempDir, waitFor, type TestHost } from "../testing/index.ts";
import { replay } from "./nats-consumer.ts";
import { client, CLUSTER, natsSink, PREFIX } from "./nats-fixtures.ts";
import { startNatsServer, type TestNatsServer } from "./nats-server.ts";
import { SseConnection } from "./sse-client.ts";
import { SDK } from "./reliability-process.ts";

let host: TestHost | undefined;
let nats: TestNatsServer | undefined;
afterEach(async () => {
  await host?.destroy();
  await nats?.destroy();
  [host, nats] = [undefined, undefined];
});

const OTHER_EPOCH = "0123456789abcdef:5";

test("SSE: a new store's reset sends the state once the sources synced, not what the first lists brought", async () => {
  host = await startTestHost({ sinks: [{ type: "sse" }], holdSync: true });
  await host.changes.apply("pods", "ADDED", rawPod("a", { node: "n1" }));
  await host.changes.apply("pods", "ADDED", rawPod("b", { node: "n1" }));
  await host.changes.flush();

  const sse = await SseConnection.open(`${host.url}/v1/watch?stream=all`, { lastEventId: OTHER_EPOCH });
  try {
    expect((await sse.next()).type).toBe("RESET");
    await host.changes.apply("pods", "ADDED", rawPod("c", { node: "n1" }));
    await host.changes.flush();
    expect((await fetch(`${host.url}/readyz`)).status).toBe(503);
    host.synced();
    const snapshot = await sse.takeUntil("SYNCED");
    expect(snapshot.filter((e) => e.type === "ADDED").map((e) => JSON.parse(e.data).name)).toEqual(["a", "b", "c"]);
    expect(JSON.parse(snapshot.at(-1)!.data).version).toBe(3);
  } finally {
    sse.close();
  }
});

test("a store whose first sync ended before serves its state at once: SSE reset, /v1/objects", async () => {
  const dir = await tempDir();
  host = await startTestHost({ dir, sinks: [{ type: "sse" }] });
  await host.changes.apply("pods", "ADDED", rawPod("a", { node: "n1" }));
  await host.changes.flush();
  await host.stop();
  host = await startTestHost({ dir, sinks: [{ type: "sse" }], holdSync: true });

  const sse = await SseConnection.open(`${host.url}/v1/watch?stream=all`, { lastEventId: OTHER_EPOCH });
  try {
    const snapshot = await sse.takeUntil("SYNCED");
    expect(snapshot.map((e) => e.type)).toEqual(["RESET", "ADDED", "SYNCED"]);
    const response = await fetch(`${host.url}/v1/objects`);
    expect([response.status, ((await response.json()) as { items: unknown[] }).items.length]).toEqual([200, 1]);
    expect((await fetch(`${host.url}/readyz`)).status).toBe(503);
  } finally {
    sse.close();
  }
});

/** Applies pod "b", lets the sources sync, and expects /v1/objects to answer the whole state then: "a" and "b". */
async function syncWithB(host: TestHost): Promise<void> {
  await host.changes.apply("pods", "ADDED", rawPod("b", { node: "n1" }));
  await host.changes.flush();
  host.synced();
  const state = await waitFor(async () => {
    const response = await fetch(`${host.url}/v1/objects`);
    return response.status === 200 ? ((await response.json()) as { items: { name: string }[] }) : undefined;
  });
  expect(state.items.map((item) => item.name)).toEqual(["a", "b"]);
}

test("a process stopped during its store's first sync waits for the sync again when it starts", async () => {
  const dir = await tempDir();
  host = await startTestHost({ dir, sinks: [{ type: "sse" }], holdSync: true });
  await host.changes.apply("pods", "ADDED", rawPod("a", { node: "n1" }));
  await host.changes.flush();
  await host.stop();
  // The store holds updates, but its sources never synced: what it holds is what the first lists brought so far.
  host = await startTestHost({ dir, sinks: [{ type: "sse" }], holdSync: true });
  expect((await fetch(`${host.url}/v1/objects`)).status).toBe(503);
  await syncWithB(host);
});

test("GET /v1/objects: a new store answers 503 until the sources synced, then the whole state", async () => {
  host = await startTestHost({ sinks: [{ type: "sse" }], holdSync: true });
  await host.changes.apply("pods", "ADDED", rawPod("a", { node: "n1" }));
  await host.changes.flush();
  const refused = await fetch(`${host.url}/v1/objects`);
  expect([refused.status, refused.headers.get("retry-after"), await refused.json()]).toEqual([
    503,
    "5",
    { error: "the store's first sync is under way; ask again later" },
  ]);
  // A bad request is still a bad request.
  expect((await fetch(`${host.url}/v1/objects?namespace=Not_A_Namespace`)).status).toBe(400);
  await syncWithB(host);
});

test("NATS: a new store's reset is 'ask again later' until the sources synced, then the whole state", async () => {
  nats = await startNatsServer();
  host = await startTestHost({ cluster: CLUSTER, sinks: [natsSink(nats)], holdSync: true });
  await host.changes.apply("pods", "ADDED", rawPod("a", { node: "n1" }));
  await host.changes.flush();
  const nc = await client(nats);
  try {
    const ask = () => replay(nc, `${PREFIX}.replay`, { stream: "all", from: OTHER_EPOCH });
    const refused = await ask();
    expect(refused).toEqual([expect.objectContaining({ error: expect.stringMatching(/ask again later$/) })]);
    await host.changes.apply("pods", "ADDED", rawPod("b", { node: "n1" }));
    await host.changes.flush();
    host.synced();
    // Whole once the store recorded it (a commit after the sync): the next request is the one reset counted.
    await host.host.log.whole();
    const chunks: ReplayChunk[] = await waitFor(async () => {
      const reply = await ask();
      return reply[0]?.error === undefined ? reply : undefined;
    });
    expect(chunks[0]!.reset).toBe("other-epoch");
    expect(chunks.flatMap((chunk) => chunk.updates.map((u) => u.name)).sort()).toEqual(["a", "b"]);
    const metrics = await (await fetch(`${host.url}/metrics`)).text();
    expect(metrics).toContain(`kubemeta_nats_replay_requests_total{result="unsynced",sink="nats"} 1\n`);
  } finally {
    await nc.close();
  }
});

/** A store plugin `type` module: the libsql store with `members` (given `store`, libsql's) in place of its own. */
const libsqlWith = (type: string, members: string, before = "") => `
import libsql from ${JSON.stringify(join(import.meta.dir, "..", "plugins", "stores", "libsql.ts"))};
import { defineStore } from ${JSON.stringify(SDK)};
${before}
export default defineStore({
  ...libsql,
  type: ${JSON.stringify(type)},
  create(config, ctx) {
    const store = libsql.create(config, ctx);
    return { ...store, ${members} };
  },
});
`;

/** The libsql store as a plugin written before the first sync was recorded: it records none, and refuses the mark. */
const UNMARKED_STORE = libsqlWith(
  "unmarked",
  `start: async () => unmarked(await store.start()),
  lead: async () => unmarked(await store.lead()),
  position: async () => unmarked(await store.position()),
  commit: (batch) => (batch.whole ? Promise.reject(new Error("sent an unknown mark")) : store.commit(batch)),`,
  "const unmarked = ({ whole, ...known }) => known;",
);

/** The libsql store, its commit of the first sync's end held until the test calls globalThis.releaseWholeMark. */
const HELD_MARK_STORE = libsqlWith(
  "held-mark",
  `commit: async (batch) => {
    if (batch.whole) await new Promise((resolve) => (globalThis.releaseWholeMark = resolve));
    return store.commit(batch);
  },`,
);

test("a new store turns ready once its first sync's end is committed: then /v1/objects answers", async () => {
  const dir = await tempDir();
  await Bun.write(join(dir, "held-mark.ts"), HELD_MARK_STORE);
  const extra = { store: { type: "./held-mark.ts", url: `file:${join(dir, "kubemeta.db")}` } };
  host = await startTestHost({ dir, extra, holdSync: true });
  await host.changes.apply("pods", "ADDED", rawPod("a", { node: "n1" }));
  await host.changes.flush();
  host.synced();
  const held = globalThis as { releaseWholeMark?: () => void };
  await waitFor(() => held.releaseWholeMark, 5_000, "the first sync's end to be committed");
  expect(await (await fetch(`${host.url}/readyz`)).json()).toEqual({
    ready: false,
    waiting: ["the end of the first sync not committed yet"],
  });
  expect((await fetch(`${host.url}/v1/objects`)).status).toBe(503);
  held.releaseWholeMark!();
  delete held.releaseWholeMark;
  await waitFor(async () => (await fetch(`${host!.url}/readyz`)).ok, 5_000, "ready");
  expect((await fetch(`${host.url}/v1/objects`)).status).toBe(200);
});

test("a store plugin that records no first sync: whole once it held updates, as before; sent no mark", async () => {
  const dir = await tempDir();
  await Bun.write(join(dir, "unmarked.ts"), UNMARKED_STORE);
  const extra = { store: { type: "./unmarked.ts", url: `file:${join(dir, "kubemeta.db")}` } };
  host = await startTestHost({ dir, extra, holdSync: true });
  await host.changes.apply("pods", "ADDED", rawPod("a", { node: "n1" }));
  await host.changes.flush();
  expect((await fetch(`${host.url}/v1/objects`)).status).toBe(503);
  await host.stop();

  host = await startTestHost({ dir, extra, holdSync: true });
  expect((await fetch(`${host.url}/v1/objects`)).status).toBe(200);
  host.synced();
  // Had the sync's end been sent to it, that commit would fail and be retried, holding back this one.
  await host.changes.apply("pods", "ADDED", rawPod("b", { node: "n1" }));
  await host.changes.flush();
  const state = (await (await fetch(`${host.url}/v1/objects`)).json()) as { items: { name: string }[] };
  expect(state.items.map((item) => item.name)).toEqual(["a", "b"]);
});
