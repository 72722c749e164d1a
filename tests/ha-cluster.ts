/**
 * What the HA tests (issue 11) share: kubemeta replicas as real processes (main.ts) on one remote store (the test
 * libSQL server, tests/hrana-server.ts), electing a leader with a Lease on the simulated API server, which also
 * serves the churn-able cluster they watch. No bun:test here: bench/failover.ts runs the same cluster.
 */
import { rm } from "node:fs/promises";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { startTestApiServer } from "../simulator/index.ts";
import { populate } from "../simulator/population.ts";
import { tempDir, waitFor } from "../testing/index.ts";
import { MAIN, Output } from "./reliability-process.ts";
import { startHranaServer } from "./hrana-server.ts";
import { clusterChecks, freePort, RESOURCES } from "./cluster-checks.ts";
import { startTcpProxy, type TcpProxy } from "./tcp-proxy.ts";
import { forward, front } from "./http-front.ts";

/** Short Lease durations, so a failover takes seconds: lease 3 s, renew deadline 2 s, retry 0.5 s. */
export const LEASE_MS = 3_000;
/** How soon after the leader dies (kill -9) a standby leads: bench/RESULTS.md's target for a failover, lease + 5 s. */
export const TAKEOVER_MS = LEASE_MS + 5_000;
export const STORE_TOKEN = "store-token-0123456789abcdef";

export interface Replica {
  identity: string;
  url: string;
  proc: Subprocess<"ignore", "pipe", "pipe">;
  out: Output;
}

export interface HaOptions {
  replicas: number;
  /** YAML lines appended under `sources:` after the kubernetes source (a plugin by path: `- { type: ./x.ts }`). */
  sources?: string[];
  /** YAML lines appended under `sinks:` after the SSE sink. */
  sinks?: string[];
  /** Top-level YAML lines appended to each replica's config (`shutdownTimeout: 3s`). */
  settings?: string[];
  /** What the kubernetes source watches (default RESOURCES), and YAML lines appended to its entry. */
  resources?: string[];
  source?: string[];
  /** Each replica reaches the store through a TCP proxy of its own (`storePaths[i]`), that a test can partition. */
  storePaths?: boolean;
  /** Each replica reaches the API server (its Lease and its sources) through a TCP proxy of its own (`apiPaths[i]`). */
  apiPaths?: boolean;
  /** The store's `timeout` (default the store's). */
  storeTimeout?: string;
  /** The test libSQL server's idle connection timeout (HranaServerOptions.idleTimeoutS). */
  storeIdleTimeoutS?: number;
  /** Replicas run with `ha.enabled: false`: a kubemeta of one replica that writes the store as well. */
  withoutHa?: number[];
  /** Replica i's `cluster.name` (default `faults`). */
  cluster?: (i: number) => string;
  /** Replica i's store URL, when not the shared store's (a store of its own, with the same token). */
  storeUrl?: (i: number) => string | undefined;
  /** Replica i's `ha.identity` and `ha.lease.name` (default `replica-<i>`, `kubemeta`). */
  identity?: (i: number) => string;
  lease?: (i: number) => string;
  /** How the replicas speak to the shared store: Hrana over HTTP (default) or over WebSocket. */
  storeScheme?: "http" | "ws";
}

/**
 * A Service in front of the replicas for one client: each request goes to the first of `endpoints()`, the replicas a
 * test counts as serving, its choice first (as session affinity keeps a client on one), so that a client whose
 * replica dies reconnects to another. A request it cannot forward answers 502, as a proxy's does.
 */
export function service(endpoints: () => Replica[]) {
  const { proxy } = front({ url: "http://127.0.0.1" }, async (request, upstream) => {
    const [replica] = endpoints();
    if (!replica) return new Response("no endpoints", { status: 503 });
    const to = new URL(`${upstream.pathname}${upstream.search}`, replica.url);
    return forward(request, to).catch(() => new Response("bad gateway", { status: 502 }));
  });
  return { url: proxy.url.href.replace(/\/$/, ""), stop: () => proxy.stop(true) };
}

export async function setupHa(options: HaOptions) {
  const dir = await tempDir("kubemeta-ha-");
  const server = await startTestApiServer({ bookmarkIntervalMs: 200 });
  const store = startHranaServer({
    path: join(dir, "store", "kubemeta.db"),
    token: STORE_TOKEN,
    idleTimeoutS: options.storeIdleTimeoutS,
  });
  const running = new Set<Replica>();
  /** Kills every replica still running and stops the servers. */
  async function destroy(): Promise<void> {
    for (const replica of running) replica.proc.kill("SIGKILL");
    for (const path of [...storePaths, ...apiPaths]) path.stop();
    await store.stop();
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
  populate(server, { nodes: 10, podsPerNode: 10 });
  const kubeconfig = join(dir, "kubeconfig");
  await server.writeKubeconfig(kubeconfig, "token");

  const ports = await Promise.all(Array.from({ length: options.replicas }, freePort));
  const storePaths: TcpProxy[] = options.storePaths
    ? ports.map(() => startTcpProxy({ hostname: "127.0.0.1", port: store.port }))
    : [];
  const apiPort = new URL(server.url).port;
  const apiPaths: TcpProxy[] = options.apiPaths
    ? ports.map(() => startTcpProxy({ hostname: "127.0.0.1", port: Number(apiPort) }))
    : [];
  const kubeconfigs = await Promise.all(
    ports.map(async (_, i) => {
      if (!apiPaths[i]) return kubeconfig;
      const file = join(dir, `kubeconfig-${i}`);
      await Bun.write(file, (await Bun.file(kubeconfig).text()).replace(`:${apiPort}`, `:${apiPaths[i].port}`));
      return file;
    }),
  );
  const scheme = options.storeScheme ?? "http";
  const storeUrl = (i: number) =>
    options.storeUrl?.(i) ?? `${scheme}://127.0.0.1:${storePaths[i] ? storePaths[i].port : store.port}`;
  const identity = (i: number) => options.identity?.(i) ?? `replica-${i}`;
  const storeTimeout = options.storeTimeout ? `, timeout: ${options.storeTimeout}` : "";
  const configs = await Promise.all(
    ports.map(async (port, i) => {
      const file = join(dir, `replica-${i}.yaml`);
      await Bun.write(
        file,
        [
          `cluster: { name: ${options.cluster?.(i) ?? "faults"} }`,
          `http: { address: 127.0.0.1, port: ${port} }`,
          `store: { type: libsql, url: "${storeUrl(i)}", authToken: ${STORE_TOKEN}${storeTimeout} }`,
          "ha:",
          `  enabled: ${!options.withoutHa?.includes(i)}`,
          `  lease: { name: ${options.lease?.(i) ?? "kubemeta"}, namespace: default }`,
          `  identity: ${identity(i)}`,
          `  kubeconfig: ${kubeconfigs[i]}`,
          `  leaseDuration: ${LEASE_MS}ms`,
          "  renewDeadline: 2s",
          "  retryPeriod: 500ms",
          "  followInterval: 100ms",
          "sources:",
          "  - type: kubernetes",
          `    kubeconfig: ${kubeconfigs[i]}`,
          `    resources: [${(options.resources ?? RESOURCES).join(", ")}]`,
          ...(options.source ?? []).map((line) => `    ${line}`),
          ...(options.sources ?? []),
          "sinks:",
          "  - { type: sse }",
          ...(options.sinks ?? []),
          ...(options.settings ?? []),
        ].join("\n"),
      );
      return file;
    }),
  );

  /** Starts replica `i` (again, after a kill) and waits until it listens, unless told not to (a start that fails). */
  async function start(i: number, untilListening = true): Promise<Replica> {
    const proc = Bun.spawn([process.execPath, "run", MAIN, "--config", configs[i]!], {
      cwd: dir,
      stdout: "pipe",
      stderr: "pipe",
    });
    const replica = {
      identity: identity(i),
      url: `http://127.0.0.1:${ports[i]}`,
      proc,
      out: new Output(proc.stdout),
    };
    new Output(proc.stderr);
    running.add(replica);
    void proc.exited.then(() => running.delete(replica));
    if (untilListening) await replica.out.waitFor(/"msg":"http listening"/, 30_000);
    return replica;
  }

  /** Resolves once the replica leads (its log says so), failing after the deadline. */
  const leading = (replica: Replica, timeoutMs = 30_000) => replica.out.waitFor(/"msg":"leading: /, timeoutMs);

  const ready = (replica: Replica, timeoutMs = 30_000) =>
    waitFor(async () => (await fetch(`${replica.url}/readyz`).catch(() => undefined))?.ok, timeoutMs, "/readyz 200");

  /** Replica 0 started and leading, then replica 1 started and ready: a follower. */
  async function leaderAndFollower(): Promise<{ leader: Replica; follower: Replica }> {
    const leader = await start(0);
    await leading(leader);
    const follower = await start(1);
    await ready(follower);
    return { leader, follower };
  }

  const checks = clusterChecks(server, { url: store.url, authToken: STORE_TOKEN });
  return { dir, server, store, storePaths, apiPaths, start, leading, ready, leaderAndFollower, destroy, ...checks };
}
