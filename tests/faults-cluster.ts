/**
 * What the fault tests (issue 10) share: kubemeta as a real process (main.ts) on its own libSQL file (or the test
 * libSQL server over it), fed by the simulated API server with churn-able pods, and the checks every run ends with:
 * the store equal to the API server's truth, and a consumer that followed throughout equal to the store, having
 * applied every version once.
 */
import { expect } from "bun:test";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import type { Subprocess } from "bun";
import type { Update } from "../sdk/model.ts";
import type { Envelope } from "../protocol/envelope.ts";
import { subscribeSse, type Subscription } from "../client/index.ts";
import { ALL } from "../protocol/streams.ts";
import { startTestApiServer } from "../simulator/index.ts";
import { populate } from "../simulator/population.ts";
import { tempDir, waitFor } from "../testing/index.ts";
import { MAIN, Output } from "./reliability-process.ts";
import { startHranaServer } from "./hrana-server.ts";
import { clusterChecks, freePort, RESOURCES } from "./cluster-checks.ts";

/** Undone after each test, last first: each test file runs them in its afterEach. */
export const cleanups: (() => unknown)[] = [];
export async function runCleanups(): Promise<void> {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
}

export interface Kubemeta {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  out: Output;
}

export interface SetupOptions {
  /** YAML lines appended under `sinks:` after the SSE sink. */
  sinks?: string[];
  /** The SSE sink's entry. */
  sse?: string;
  /** YAML lines under `sources:`, given the kubeconfig's path; default one source watching every resource. */
  sources?: (kubeconfig: string) => string[];
  /** The store's `retention`, as a YAML flow mapping (default: none, the defaults'). */
  retention?: string;
  /** `ws`: the store is the test libSQL server's (./hrana-server.ts), over WebSocket; default, a `file:`. */
  store?: "file" | "ws";
}

/** One `kubernetes` source entry, as YAML lines under `sources:`. */
export function kubernetesSource(kubeconfig: string, resources: string[], extra: string[] = []): string[] {
  return ["  - type: kubernetes", `    kubeconfig: ${kubeconfig}`, `    resources: [${resources.join(", ")}]`].concat(
    extra.map((line) => `    ${line}`),
  );
}

/** A simulated cluster with churn-able pods, and kubemeta's config on a fixed port. */
export async function setup(options: SetupOptions = {}) {
  const dir = await tempDir("kubemeta-faults-");
  const server = await startTestApiServer({ bookmarkIntervalMs: 200 });
  cleanups.push(async () => {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  });
  populate(server, { nodes: 10, podsPerNode: 10 });
  const kubeconfig = join(dir, "kubeconfig");
  await server.writeKubeconfig(kubeconfig, "token");
  const port = await freePort();
  const config = join(dir, "kubemeta.yaml");
  const dbPath = join(dir, "data", "kubemeta.db");
  let dbUrl = `file:${dbPath}`;
  if (options.store === "ws") {
    const libsql = startHranaServer({ path: dbPath });
    cleanups.push(() => libsql.stop());
    dbUrl = libsql.wsUrl;
  }
  await Bun.write(
    config,
    [
      "cluster: { name: faults }",
      "log: { level: info }",
      `http: { address: 127.0.0.1, port: ${port} }`,
      `store: { type: libsql, url: "${dbUrl}"${options.retention ? `, retention: ${options.retention}` : ""} }`,
      "sources:",
      ...(options.sources ?? ((path) => kubernetesSource(path, RESOURCES)))(kubeconfig),
      "sinks:",
      `  - ${options.sse ?? "{ type: sse }"}`,
      ...(options.sinks ?? []),
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

  const checks = clusterChecks(server, { url: dbUrl });
  return {
    dir,
    server,
    url,
    start,
    ready,
    withStore: checks.withStore,
    allUpdates: checks.allUpdates,
    storeState: checks.storeState,
    truth: checks.truth,
    /** The API server's objects, slimmed, against kubemeta's /v1/objects: true when kubemeta caught up. */
    matchesTruth: () => checks.matchesTruth(url),
    metric: (name: string, labels?: Record<string, string>) => checks.metric(url, name, labels),
  };
}

/** A client-library subscription and what it applied. */
export interface Consumer {
  rec: ReturnType<typeof recorder>;
  sub: Subscription;
}

/** An SSE consumer of `all` at `url` (a replica's, or a Service's), synced; stopped after the test. */
export async function consumeSse(url: string): Promise<Consumer> {
  const rec = recorder();
  const sub = subscribeSse({ url, streams: ["all"], reconnect: { initialMs: 50, maxMs: 300 }, ...rec.handlers });
  cleanups.push(() => sub.stop());
  await sub.synced;
  return { rec, sub };
}

/** Records what a client-library subscription applies to its cache, per stream (a subscription may follow several). */
export function recorder() {
  const streams = new Map<string, { applied: Envelope[]; syncedAt?: number; resets: number }>();
  const of = (stream: string) => {
    const recorded = streams.get(stream) ?? { applied: [], resets: 0 };
    streams.set(stream, recorded);
    return recorded;
  };
  const record = (e: Envelope) => {
    const recorded = of(e.stream);
    if (recorded.syncedAt !== undefined) recorded.applied.push(e);
  };
  return {
    applied: (stream = ALL) => of(stream).applied,
    resets: (stream = ALL) => of(stream).resets,
    syncedAt: (stream = ALL) => of(stream).syncedAt,
    handlers: {
      onAdd: record,
      onUpdate: (_old: Envelope, e: Envelope) => record(e),
      onDelete: (e: Envelope) => {
        if (e.type === "DELETED") record(e);
      },
      onReset: (info: { stream: string }) => {
        if (of(info.stream).syncedAt !== undefined) of(info.stream).resets++;
      },
      onSynced: (info: { stream: string; version: number }) => {
        of(info.stream).syncedAt ??= info.version;
      },
    },
  };
}

/**
 * The consumer applied every version of `stream` after its first sync, once, in order, each the very update the store
 * holds under that version (a reused version would differ), and its cache of it equals the store's state of it.
 */
export async function expectFollowedWholly(
  rec: ReturnType<typeof recorder>,
  sub: Subscription,
  updates: Update[],
  state: Map<string, number>,
  stream = ALL,
): Promise<void> {
  await waitFor(
    () => {
      const cache = sub.objects(stream);
      return cache.size === state.size && [...state].every(([uid, v]) => cache.get(uid)?.version === v);
    },
    20_000,
    `the consumer's cache of ${stream} to equal the store`,
  );
  const after = updates.filter((u) => (stream === ALL || u.stream === stream) && u.version > rec.syncedAt(stream)!);
  expect(rec.resets(stream)).toBe(0);
  expect(rec.applied(stream).map((e) => e.version)).toEqual(after.map((u) => u.version));
  expect(rec.applied(stream).map((e) => `${e.type} ${e.uid} ${e.resourceVersion}`)).toEqual(
    after.map((u) => `${u.type} ${u.uid} ${u.resourceVersion}`),
  );
}
