/**
 * Fault tests (issue 10): kubemeta as a real process (main.ts) against the simulated API server with pod churn,
 * faults injected at seeded moments. Each ends with the store equal to the API server's truth, the store's versions
 * gap-free with whole prev chains, and every consumer that followed throughout equal to the store, having applied
 * every version once, each the same update the store holds under that version (no version reused).
 *
 * Seeded: KUBEMETA_FAULT_SEED=<n> replays a run (the seed is printed).
 */
import { afterEach, expect, test } from "bun:test";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { connect } from "@nats-io/transport-node";
import libsql from "../plugins/stores/libsql.ts";
import type { Store } from "../sdk/contract.ts";
import { createMetrics } from "../host/metrics.ts";
import { silentLogger } from "../host/logger.ts";
import { digest, slim } from "../core/slim.ts";
import type { KubeObject, Update } from "../sdk/model.ts";
import type { Envelope } from "../protocol/envelope.ts";
import { subscribeNats, subscribeSse, type Subscription } from "../client/index.ts";
import { startTestApiServer } from "../simulator/index.ts";
import { populate, seededRandom, startChurn } from "../simulator/population.ts";
import { expectGapFreeWithWholeChains, tempDir, waitFor } from "../testing/index.ts";
import { MAIN, Output } from "./reliability-process.ts";
import { startNatsServer } from "./nats-server.ts";
import { json, SseParser, versionsOf, type SseEvent } from "./sse-client.ts";
import { deduplicated, SECRET, startReceiver } from "./webhook-receiver.ts";

const SEED = Number(process.env.KUBEMETA_FAULT_SEED ?? 20261204);
console.log(`faults.test.ts seed: ${SEED} (KUBEMETA_FAULT_SEED=${SEED} replays it)`);

const KINDS = ["Pod", "Node", "Namespace", "Service", "EndpointSlice", "ReplicaSet", "Deployment"];
const RESOURCES = "[pods, nodes, namespaces, services, endpointslices, replicasets, deployments]";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function freePort(): Promise<number> {
  const probe = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() });
  const port = probe.port!;
  await probe.stop(true);
  return port;
}

interface Kubemeta {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  out: Output;
}

/** A simulated cluster with churn-able pods, and kubemeta's config (sinks as given) on a fixed port. */
async function setup(sinkLines: string[] = [], sse = "{ type: sse }") {
  const dir = await tempDir("kubemeta-faults-");
  const server = await startTestApiServer({ bookmarkIntervalMs: 200 });
  cleanups.push(async () => {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  });
  populate(server, { nodes: 10, podsPerNode: 10 });
  await server.writeKubeconfig(join(dir, "kubeconfig"), "token");
  const port = await freePort();
  const config = join(dir, "kubemeta.yaml");
  await Bun.write(
    config,
    [
      "cluster: { name: faults }",
      "log: { level: info }",
      `http: { address: 127.0.0.1, port: ${port} }`,
      `store: { type: libsql, url: "file:${join(dir, "data", "kubemeta.db")}" }`,
      "sources:",
      "  - type: kubernetes",
      `    kubeconfig: ${join(dir, "kubeconfig")}`,
      `    resources: ${RESOURCES}`,
      "sinks:",
      `  - ${sse}`,
      ...sinkLines,
    ].join("\n"),
  );
  const url = `http://127.0.0.1:${port}`;
  let current: Kubemeta | undefined;
  cleanups.push(() => current?.proc.kill("SIGKILL"));

  async function start(wrap: string[] = []): Promise<Kubemeta> {
    const proc = Bun.spawn([...wrap, process.execPath, "run", MAIN, "--config", config], {
      cwd: dir,
      stdout: "pipe",
      stderr: "pipe",
    });
    current = { proc, out: new Output(proc.stdout) };
    new Output(proc.stderr);
    await current.out.waitFor(/"msg":"http listening"/, 30_000);
    return current;
  }

  async function ready(timeoutMs = 30_000): Promise<void> {
    await waitFor(async () => (await fetch(`${url}/readyz`).catch(() => undefined))?.ok, timeoutMs, "/readyz 200");
  }

  async function withStore<T>(work: (store: Store) => Promise<T>): Promise<T> {
    const store = libsql.create({ url: `file:${join(dir, "data", "kubemeta.db")}` } as never, {
      name: "reader",
      cluster: "faults",
      logger: silentLogger,
      metrics: createMetrics(),
    });
    await store.start();
    try {
      return await work(store);
    } finally {
      await store.stop();
    }
  }

  /** The API server's objects, slimmed, against kubemeta's /v1/objects: true when kubemeta caught up. */
  async function matchesTruth(): Promise<boolean> {
    const expected = new Map<string, number>();
    for (const kind of KINDS)
      for (const object of server.list(kind))
        expected.set(`${kind}/${object.metadata!.uid}`, digest(slim(kind, object as KubeObject)));
    const response = await fetch(`${url}/v1/objects`).catch(() => undefined);
    if (!response?.ok) return false;
    const { items } = (await response.json()) as { items: Envelope[] };
    if (items.length !== expected.size) return false;
    return items.every((o) => expected.get(`${o.kind}/${o.uid}`) === digest(o.object as never));
  }

  async function allUpdates(): Promise<Update[]> {
    return withStore((store) => store.readUpdates({ stream: "all", after: 0, limit: 10_000_000 }));
  }

  /** uid → version of the store's current objects. */
  async function storeState(): Promise<Map<string, number>> {
    const { objects } = await withStore((store) => store.snapshot({}));
    return new Map(objects.map((o) => [o.uid, o.version]));
  }

  return { dir, server, url, start, ready, matchesTruth, allUpdates, storeState, withStore };
}

/** Records what a client-library subscription applies to its cache for the `all` stream. */
function recorder() {
  const applied: Envelope[] = [];
  let syncedAt: number | undefined;
  let resets = 0;
  const record = (e: Envelope) => {
    if (syncedAt !== undefined) applied.push(e);
  };
  return {
    applied,
    resets: () => resets,
    syncedAt: () => syncedAt,
    handlers: {
      onAdd: record,
      onUpdate: (_old: Envelope, e: Envelope) => record(e),
      onDelete: (e: Envelope) => {
        if (e.type === "DELETED") record(e);
      },
      onReset: () => {
        if (syncedAt !== undefined) resets++;
      },
      onSynced: (info: { version: number }) => {
        syncedAt ??= info.version;
      },
    },
  };
}

/**
 * The consumer applied every version of `all` after its first sync, once, in order, each the very update the store
 * holds under that version (a reused version would differ), and its cache equals the store.
 */
async function expectFollowedWholly(
  rec: ReturnType<typeof recorder>,
  sub: Subscription,
  updates: Update[],
  state: Map<string, number>,
): Promise<void> {
  await waitFor(
    () => {
      const cache = sub.objects("all");
      return cache.size === state.size && [...state].every(([uid, v]) => cache.get(uid)?.version === v);
    },
    20_000,
    "the consumer's cache to equal the store",
  );
  const after = updates.filter((u) => u.version > rec.syncedAt()!);
  expect(rec.resets()).toBe(0);
  expect(rec.applied.map((e) => e.version)).toEqual(after.map((u) => u.version));
  expect(rec.applied.map((e) => `${e.type} ${e.uid} ${e.resourceVersion}`)).toEqual(
    after.map((u) => `${u.type} ${u.uid} ${u.resourceVersion}`),
  );
}

test("kill -9 of kubemeta at 20 seeded moments during churn: store equals truth, SSE consumer whole", async () => {
  const random = seededRandom(SEED);
  const env = await setup();
  let kubemeta = await env.start();
  await env.ready();
  const rec = recorder();
  const sub = subscribeSse({
    url: env.url,
    streams: ["all"],
    reconnect: { initialMs: 50, maxMs: 300 },
    ...rec.handlers,
  });
  cleanups.push(() => sub.stop());
  await sub.synced;
  const churn = startChurn(env.server, { perSecond: 80, seed: SEED });
  const kills: number[] = [];
  for (let i = 0; i < 20; i++) {
    const delay = 300 + Math.floor(random() * 1_500);
    kills.push(delay);
    await Bun.sleep(delay);
    kubemeta.proc.kill("SIGKILL");
    await kubemeta.proc.exited;
    kubemeta = await env.start();
  }
  console.log(`kill -9 after ms: ${kills.join(", ")}; churn changes: ${churn.changes()}`);
  churn.stop();
  await waitFor(env.matchesTruth, 30_000, "the store to equal the API server");
  const updates = await env.allUpdates();
  expectGapFreeWithWholeChains(updates);
  await expectFollowedWholly(rec, sub, updates, await env.storeState());
  expect(kubemeta.out.text).not.toContain('"level":"error"');
}, 90_000);

test("watch drops, 410s, 429 + Retry-After and 500s during churn: store equals truth", async () => {
  const random = seededRandom(SEED + 1);
  const env = await setup();
  const km = await env.start();
  await env.ready();
  const rec = recorder();
  const sub = subscribeSse({
    url: env.url,
    streams: ["all"],
    reconnect: { initialMs: 50, maxMs: 300 },
    ...rec.handlers,
  });
  cleanups.push(() => sub.stop());
  await sub.synced;
  const churn = startChurn(env.server, { perSecond: 80, seed: SEED + 1 });
  const resources = ["pods", "nodes", "services", "endpointslices", "replicasets"];
  const pick = <T>(items: T[]) => items[Math.floor(random() * items.length)]!;
  for (let round = 0; round < 6; round++) {
    await Bun.sleep(1_000 + Math.floor(random() * 1_000));
    env.server.failNext({ verb: "watch", resource: pick(resources), status: 410, count: 1 + Math.floor(random() * 3) });
    env.server.failNext({ verb: "watch", resource: pick(resources), status: 429, retryAfterSeconds: 1 });
    env.server.failNext({ verb: "watch", resource: pick(resources), status: 500 });
    if (random() < 0.3) env.server.failNext({ verb: "list", resource: pick(resources), status: 500 });
    if (random() < 0.3) env.server.compact();
    env.server.dropWatches();
  }
  churn.stop();
  const t0 = Date.now();
  // Backoff after repeated failures grows (with jitter) to several seconds per resource: allow for it.
  await waitFor(env.matchesTruth, 45_000, "the store to equal the API server").catch((e) => {
    const warnings = km.out.text.split("\n").filter((l) => /"level":"(warn|error)"/.test(l));
    console.log(
      warnings
        .slice(-30)
        .map((l) => l.slice(0, 300))
        .join("\n"),
    );
    throw e;
  });
  console.log(`converged in ${Date.now() - t0} ms`);
  const updates = await env.allUpdates();
  expectGapFreeWithWholeChains(updates);
  await expectFollowedWholly(rec, sub, updates, await env.storeState());
}, 90_000);

test("nats-server stopped and restarted twice during churn: a subscribeNats consumer converges", async () => {
  const random = seededRandom(SEED + 2);
  const nats = await startNatsServer();
  cleanups.push(() => nats.destroy());
  const env = await setup(["  - type: nats", `    servers: ["${nats.url}"]`]);
  await env.start();
  await env.ready();
  const nc = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 50 });
  cleanups.push(() => nc.close());
  const rec = recorder();
  const sub = subscribeNats({ nc, cluster: "faults", streams: ["all"], retry: { maxMs: 300 }, ...rec.handlers });
  cleanups.push(() => sub.stop());
  await sub.synced;
  const churn = startChurn(env.server, { perSecond: 80, seed: SEED + 2 });
  for (let i = 0; i < 2; i++) {
    await Bun.sleep(1_000 + Math.floor(random() * 1_500));
    await nats.stop();
    await Bun.sleep(1_000 + Math.floor(random() * 2_000));
    await nats.restart();
  }
  await Bun.sleep(1_000);
  churn.stop();
  await waitFor(env.matchesTruth, 30_000, "the store to equal the API server");
  const updates = await env.allUpdates();
  expectGapFreeWithWholeChains(updates);
  await expectFollowedWholly(rec, sub, updates, await env.storeState());
}, 60_000);

test("a slow SSE subscriber and a webhook receiver down 8 s during churn: both end equal", async () => {
  const random = seededRandom(SEED + 3);
  const receiver = await startReceiver();
  cleanups.push(() => receiver.stop());
  const env = await setup(
    ["  - type: webhook", `    url: ${receiver.url}`, `    secret: ${SECRET}`, "    timeout: 2s"].concat([
      "    batch: { linger: 20ms }",
      "    retry: { initial: 50ms, max: 500ms }",
    ]),
    "{ type: sse, bufferBytes: 65536 }",
  );
  await env.start();
  await env.ready();
  const slowFile = join(env.dir, "slow.sse");
  const curl = (file: string, lastEventId?: string) =>
    Bun.spawn(
      ["curl", "-sN", "-o", file, ...(lastEventId ? ["-H", `Last-Event-ID: ${lastEventId}`] : [])].concat(
        `${env.url}/v1/watch?stream=all`,
      ),
      { stdout: "ignore", stderr: "ignore" },
    );
  const slow = curl(slowFile);
  cleanups.push(() => slow.kill("SIGKILL"));
  const fileEvents = async (file: string) => {
    const events: SseEvent[] = [];
    if (await Bun.file(file).exists()) new SseParser((event) => events.push(event)).push(await Bun.file(file).text());
    return events;
  };
  await waitFor(async () => (await fileEvents(slowFile)).some((e) => e.type === "SYNCED"), 10_000, "curl to sync");
  const churn = startChurn(env.server, { perSecond: 600, seed: SEED + 3 });
  await Bun.sleep(500 + Math.floor(random() * 1_000));
  slow.kill("SIGSTOP");
  await receiver.stop();
  await Bun.sleep(8_000);
  await receiver.start();
  slow.kill("SIGCONT");
  await Bun.sleep(1_000 + Math.floor(random() * 1_000));
  churn.stop();
  await waitFor(env.matchesTruth, 30_000, "the store to equal the API server");
  const updates = await env.allUpdates();
  expectGapFreeWithWholeChains(updates);
  const state = await env.storeState();
  const head = updates.at(-1)!.version;

  // The webhook receiver, de-duplicating by version, got every update, in order, and so holds the store's state.
  await waitFor(() => deduplicated(receiver.accepted()).at(-1) === head, 20_000, "the webhook to deliver all");
  expect(deduplicated(receiver.accepted())).toEqual(updates.map((u) => u.version));
  const hooked = new Map<string, number>();
  const seen = new Set<number>();
  for (const request of receiver.accepted())
    for (const u of request.body.updates) {
      if (seen.has(u.version)) continue;
      seen.add(u.version);
      if (u.type === "DELETED") hooked.delete(u.uid);
      else hooked.set(u.uid, u.version);
    }
  expect(hooked).toEqual(state);
  // It was down while updates kept coming: no request reached it for most of the 8 s.
  const times = receiver.requests.map((r) => r.at);
  expect(Math.max(...times.slice(1).map((t, i) => t - times[i]!))).toBeGreaterThan(6_000);

  // The slow subscriber was cut off (OVERFLOW) or kept up; as an EventSource would, it resumes from its last id.
  let events = await fileEvents(slowFile);
  const overflowed = await Promise.race([slow.exited.then(() => true), Bun.sleep(500).then(() => false)]);
  console.log(`slow subscriber ${overflowed ? `cut off with ${events.at(-1)?.type}` : "kept its connection"}`);
  console.log(`webhook requests: ${receiver.requests.length}, accepted: ${receiver.accepted().length}`);
  if (!overflowed) {
    await waitFor(
      async () => versionsOf(await fileEvents(slowFile)).at(-1) === head,
      20_000,
      "the slow one to catch up",
    );
    events = await fileEvents(slowFile);
  } else {
    const resumed = curl(join(env.dir, "resumed.sse"), events.at(-1)!.lastEventId);
    cleanups.push(() => resumed.kill("SIGKILL"));
    await waitFor(
      async () => versionsOf(await fileEvents(join(env.dir, "resumed.sse"))).at(-1) === head,
      20_000,
      "the resumed subscriber to get everything",
    );
    const rest = await fileEvents(join(env.dir, "resumed.sse"));
    expect(rest[0]?.type).not.toBe("RESET");
    events = [...events, ...rest];
  }
  const syncedAt = json<{ version: number }>(events.find((e) => e.type === "SYNCED")!).version;
  const live = events.slice(events.findIndex((e) => e.type === "SYNCED") + 1);
  expect(versionsOf(live)).toEqual(updates.filter((u) => u.version > syncedAt).map((u) => u.version));
  const slowState = new Map<string, number>();
  for (const event of events) {
    if (!["ADDED", "MODIFIED", "DELETED"].includes(event.type)) continue;
    const e = json<Envelope>(event);
    if (e.type === "DELETED") slowState.delete(e.uid);
    else slowState.set(e.uid, e.version);
  }
  expect(slowState).toEqual(state);
}, 60_000);

test("store unwritable (file size limit) during churn: not ready, no crash, nothing lost", async () => {
  const env = await setup();
  let kubemeta = await env.start();
  await env.ready();
  kubemeta.proc.kill("SIGTERM");
  expect(await kubemeta.proc.exited).toBe(0);
  const sizes = await Promise.all(
    ["kubemeta.db", "kubemeta.db-wal"].map(async (f) =>
      (await Bun.file(join(env.dir, "data", f)).exists()) ? Bun.file(join(env.dir, "data", f)).size : 0,
    ),
  );
  const limitKiB = Math.ceil(Math.max(...sizes) / 1024) + 128;
  console.log(`store files ${sizes.join(" / ")} bytes; soft RLIMIT_FSIZE ${limitKiB} KiB`);
  // Soft limit only (SIGXFSZ ignored: the write fails with EFBIG, as on a full disk), so it can be lifted later.
  kubemeta = await env.start(["bash", "-c", `trap "" XFSZ; ulimit -S -f ${limitKiB}; exec "$@"`, "bash"]);
  await env.ready();
  const rec = recorder();
  const sub = subscribeSse({
    url: env.url,
    streams: ["all"],
    reconnect: { initialMs: 50, maxMs: 300 },
    ...rec.handlers,
  });
  cleanups.push(() => sub.stop());
  await sub.synced;
  const churn = startChurn(env.server, { perSecond: 150, seed: SEED + 4 });
  const readiness = await waitFor(
    async () => {
      const response = await fetch(`${env.url}/readyz`);
      return response.status === 503 && response.json();
    },
    20_000,
    "/readyz to answer 503",
  );
  expect(readiness).toMatchObject({ ready: false, waiting: [expect.stringMatching(/^store not writable: /)] });
  await Bun.sleep(2_000);
  expect(await Promise.race([kubemeta.proc.exited.then(() => "exited"), Bun.sleep(10).then(() => "running")])).toBe(
    "running",
  );
  // Writable again, in the same process: the limit is lifted.
  const lift = Bun.spawnSync(["prlimit", "--pid", String(kubemeta.proc.pid), "--fsize=unlimited:unlimited"]);
  expect(lift.exitCode).toBe(0);
  await Bun.sleep(1_000);
  churn.stop();
  await env.ready();
  await waitFor(env.matchesTruth, 30_000, "the store to equal the API server");
  const updates = await env.allUpdates();
  expectGapFreeWithWholeChains(updates);
  await expectFollowedWholly(rec, sub, updates, await env.storeState());
  expect(kubemeta.proc.exitCode).toBeNull();
}, 60_000);
