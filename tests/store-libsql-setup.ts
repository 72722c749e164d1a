/**
 * What the libsql store tests share: a temp dir per file, stores that stop after each test, and updates to commit.
 * A store runs on a `file:` or through a test libSQL server (./hrana-server.ts) over that file: `remote` speaks Hrana
 * over HTTP to it, `ws` over WebSocket.
 */
import { afterAll, afterEach } from "bun:test";
import * as v from "valibot";
import { mkdtempSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import libsql from "../plugins/stores/libsql.ts";
import { createMetrics } from "../host/metrics.ts";
import type { Metrics } from "../sdk/telemetry.ts";
import { silentLogger } from "../host/logger.ts";
import type { CommitBatch, Store, StoreContext, StoreReplacedError } from "../sdk/contract.ts";
import type { ChangeType } from "../protocol/envelope.ts";
import type { Update } from "../sdk/model.ts";
import { startHranaServer, type HranaServer } from "./hrana-server.ts";

export type Backend = "file" | "remote" | "ws";
/** For `describe.each`: the store suites run on each. */
export const BACKENDS: Backend[] = ["file", "remote", "ws"];

/**
 * Call at the top of each test file. A function, not module-level hooks: Bun evaluates this
 * module once per `bun test` run, so hooks registered at its top level would attach only to
 * the first test file that imports it.
 */
export function storeSandbox(backend: Backend = "file") {
  const root = mkdtempSync(join(tmpdir(), "kubemeta-store-test-"));
  afterAll(() => rm(root, { recursive: true, force: true }));

  let dirs = 0;
  const newDir = () => join(root, `case-${++dirs}`);
  /** Every store made here, in order; each test's stores are stopped after it. */
  const open: Store[] = [];
  /** Remote: one server per dir (per database), started with the dir's first store. */
  const servers = new Map<string, HranaServer>();
  afterEach(async () => {
    for (const store of open.splice(0)) await store.stop();
    for (const server of servers.values()) await server.stop();
    servers.clear();
  });

  function urlOf(dir: string): string {
    const path = join(dir, "nested", "kubemeta.db");
    if (backend === "file") return `file:${path}`;
    let server = servers.get(dir);
    if (!server) {
      server = startHranaServer({ path });
      servers.set(dir, server);
    }
    return backend === "ws" ? server.wsUrl : server.url;
  }

  /** The store's database is gone (its server too, when remote: the next store gets a new one). */
  async function wipe(dir: string): Promise<void> {
    await servers.get(dir)?.stop();
    servers.delete(dir);
    await rm(join(dir, "nested"), { recursive: true });
  }

  /** A store on `dir`'s database; `replaced`, what it tells the host (StoreContext.replaced). */
  function makeStore(dir: string, metrics: Metrics = createMetrics(), replaced?: StoreContext["replaced"]): Store {
    const config = v.parse(libsql.schema, { url: urlOf(dir) });
    const context = { name: "libsql", cluster: "test", logger: silentLogger, metrics };
    const store = libsql.create(config, replaced ? { ...context, replaced } : context);
    open.push(store);
    return store;
  }

  return { newDir, makeStore, open, wipe, urlOf };
}

/**
 * A host's store directory (startTestHost's `dir`) holding one object changed 20 times, 10 minutes apart, the last of
 * them at `last` (ms): a clock that jumped while kubemeta was down, for one with times ahead of it.
 */
export async function storeChangedUntil(last: number): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "kubemeta-test-"));
  const store = libsqlOnFile(join(dir, "kubemeta.db"));
  await store.start();
  await store.lead();
  const time = (version: number) => new Date(last - (20 - version) * 600_000).toISOString();
  await store.commit(batch(run(1, 20, (version) => ({ uid: "one", stream: "shared", time: time(version) }))));
  await store.stop();
  return dir;
}

/** A store on the file at `path`, outside a sandbox (the caller stops it); what it tells the host kept in `told`. */
export function libsqlOnFile(path: string, told: StoreReplacedError[] = []): Store {
  return libsql.create(v.parse(libsql.schema, { url: `file:${path}` }), {
    name: "libsql",
    cluster: "test",
    logger: silentLogger,
    metrics: createMetrics(),
    replaced: (error) => told.push(error),
  });
}

interface Spec {
  type?: ChangeType;
  kind?: string;
  uid?: string;
  stream?: string | null;
  namespace?: string | null;
  node?: string | null;
  time?: string;
}

export function update(version: number, spec: Spec = {}): Update {
  const uid = spec.uid ?? `uid-${version}`;
  const stream = spec.stream === undefined ? "shared" : spec.stream;
  return {
    version,
    stream,
    streamPrev: 0,
    type: spec.type ?? "ADDED",
    kind: spec.kind ?? "Pod",
    uid,
    namespace: spec.namespace === undefined ? "default" : spec.namespace,
    name: `name-${uid}`,
    node: spec.node === undefined ? (stream?.startsWith("node/") ? stream.slice(5) : null) : spec.node,
    resourceVersion: String(1000 + version),
    time: spec.time ?? new Date().toISOString(),
    object: {
      metadata: { name: `name-${uid}`, labels: { app: "web", version: String(version) } },
      nested: [1, "two", null, { three: true }],
    },
  };
}

export function batch(updates: Update[], resumePoints: Record<string, string> = {}): CommitBatch {
  return { updates, digests: updates.map((u) => u.version * 10), resumePoints: new Map(Object.entries(resumePoints)) };
}

/** Versions from..to, each its own object, cycling over three streams. */
export function run(from: number, to: number, spec: (version: number) => Spec = () => ({})): Update[] {
  const streams = ["shared", "node/a", "node/b"];
  return Array.from({ length: to - from + 1 }, (_, i) =>
    update(from + i, { stream: streams[(from + i) % 3], ...spec(from + i) }),
  );
}
