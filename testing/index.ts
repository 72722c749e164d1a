/**
 * `kubemeta/testing`: runs plugins against a real host (real libSQL file, real HTTP on
 * loopback) whose one source is synthetic, driven by the caller: `changes` is the core's
 * ChangeSink, exactly what the kubernetes source feeds. It asserts nothing itself and
 * imports no test runner, so any test runner (or a plain script) can use it.
 */
import * as v from "valibot";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defineSource, type ChangeSink } from "../sdk/contract.ts";
import { resolveConfig } from "../host/config.ts";
import { startHost, type Host } from "../host/host.ts";
import { createLogger, silentLogger } from "../host/logger.ts";
import type { Logger } from "../sdk/telemetry.ts";
import type { KubeObject, Update } from "../sdk/model.ts";
import { builtins } from "../plugins/index.ts";

export { checkPluginContract, type PluginContractOptions } from "./contract.ts";

export interface TestHostOptions {
  /**
   * Keep the store in this directory (to restart on the same data); a new temp dir otherwise. A relative plugin
   * `type` in `sinks` (`./plugins/x.ts`) is relative to it, or, without it, to the working directory.
   */
  dir?: string;
  cluster?: string;
  sinks?: Record<string, unknown>[];
  http?: Record<string, unknown>;
  retention?: Record<string, unknown>;
  /** Extra config sections merged at the top level. */
  extra?: Record<string, unknown>;
  logger?: Logger;
  /**
   * The test source says it synced only when TestHost.synced() is called, as a slow list would. Default: at once, and
   * startTestHost resolves once the store has recorded the first sync's end (/readyz 200, /v1/objects answers) when
   * the test source is the only one.
   */
  holdSync?: boolean;
  /** The wall clock the host stamps updates by (HostOptions.clock): a test's that steps back. Date.now by default. */
  clock?: () => number;
}

export interface TestHost {
  host: Host;
  /** Feed changes as a source would. */
  changes: ChangeSink;
  /** Says the test source synced (with `holdSync`; a no-op otherwise). */
  synced(): void;
  dir: string;
  /** Base URL of the HTTP listener. */
  url: string;
  stop(): Promise<void>;
  /** Stops and removes the store directory. */
  destroy(): Promise<void>;
}

export async function tempDir(prefix = "kubemeta-test-"): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export async function startTestHost(options: TestHostOptions = {}): Promise<TestHost> {
  const dir = options.dir ?? (await tempDir());
  try {
    return await startIn(dir, options);
  } catch (error) {
    // A temp dir made for a host that did not start is nobody's to remove but ours.
    if (options.dir === undefined) await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

async function startIn(dir: string, options: TestHostOptions): Promise<TestHost> {
  let changes: ChangeSink | undefined;
  let synced: (() => void) | undefined;
  const testSource = defineSource({
    type: "test",
    description: "Hands the core's ChangeSink to the test.",
    schema: v.strictObject({}),
    create: (_config, context) => ({
      async start() {
        changes = context.changes;
        synced = () => context.synced();
        if (!options.holdSync) synced();
      },
      async stop() {},
    }),
  });
  const config = await resolveConfig(
    {
      cluster: { name: options.cluster ?? "test" },
      store: { type: "libsql", url: `file:${join(dir, "kubemeta.db")}`, retention: options.retention ?? {} },
      sources: [],
      sinks: options.sinks ?? [],
      http: { address: "127.0.0.1", port: 0, ...options.http },
      ...options.extra,
    },
    { baseDir: options.dir ?? process.cwd(), registry: builtins },
  );
  config.sources.push({ declaration: testSource, name: "test", config: {}, deprecated: [] });
  const host = await startHost(config, {
    logger: options.logger ?? (process.env.KUBEMETA_TEST_LOG ? createLogger({ level: "debug" }) : silentLogger),
    clock: options.clock,
  });
  if (!changes) throw new Error("test source did not start");
  // Synced at once: the host is handed over once the store has recorded it, so that /readyz says 200 from the start
  // (unless `extra` brought sources of its own, which sync when they do).
  if (!options.holdSync && config.sources.length === 1) await host.log.whole();
  const testHost: TestHost = {
    host,
    changes,
    synced: () => synced?.(),
    dir,
    url: host.http.url(),
    stop: () => host.stop(),
    async destroy() {
      await host.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
  const names = config.sinks.map((sink) => sink.name);
  sinkNames.set(testHost, names);
  return testHost;
}

/** The names of each host's sinks, for sinkCaughtUp to refuse one that is none of them at once. */
const sinkNames = new WeakMap<TestHost, string[]>();

/** Waits until `check` returns a truthy value, or fails after `timeoutMs`. */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  timeoutMs = 10_000,
  what = "condition",
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await Bun.sleep(10);
  }
}

/** Waits until the host's sink `sink` has delivered all that is committed: its `kubemeta_sink_lag_versions` is 0. */
export async function sinkCaughtUp(th: TestHost, sink: string, timeoutMs = 10_000): Promise<void> {
  // A name no sink has (a plugin by path goes by its declared type, not its file's name) would wait out the timeout.
  // A sink the test consumes by itself, outside the config, is known by its lag's series.
  const names = sinkNames.get(th);
  const lagged = th.host.metrics.render().includes(`kubemeta_sink_lag_versions{sink="${sink}"}`);
  if (names !== undefined && !names.includes(sink) && !lagged)
    throw new Error(
      `no sink is named ${sink} in this host (its sinks: ${names.join(", ") || "none"}): a sink goes by its name, ` +
        "else by the type its plugin declares",
    );
  const caughtUp = `kubemeta_sink_lag_versions{sink="${sink}"} 0`;
  await waitFor(() => th.host.metrics.render().includes(caughtUp), timeoutMs, `sink ${sink} to catch up`);
}

/** A minimal raw Pod, as the API server would send it. */
export function rawPod(
  name: string,
  options: {
    node?: string;
    namespace?: string;
    uid?: string;
    labels?: Record<string, string>;
    phase?: string;
    rv?: string;
  } = {},
): KubeObject {
  return {
    kind: "Pod",
    apiVersion: "v1",
    metadata: {
      name,
      namespace: options.namespace ?? "default",
      uid: options.uid ?? `uid-${name}`,
      resourceVersion: options.rv ?? "1",
      labels: options.labels ?? { app: name.split("-")[0] ?? name },
    },
    spec: { nodeName: options.node, containers: [{ name: "main", image: "nginx:1.27" }] },
    status: { phase: options.phase ?? "Running", podIP: "10.0.0.1" },
  };
}

/**
 * Throws unless `updates` are the whole log from version 1: gap-free, and each update's prev the previous update of
 * its stream.
 */
export function expectGapFreeWithWholeChains(updates: Update[]): void {
  const last = new Map<string, number>();
  updates.forEach((u, i) => {
    if (u.version !== i + 1) throw new Error(`the log has a gap: version ${u.version} at position ${i + 1}`);
    if (u.stream) {
      const prev = last.get(u.stream) ?? 0;
      if (u.streamPrev !== prev)
        throw new Error(
          `broken prev chain on ${u.stream}: version ${u.version} has prev ${u.streamPrev}, expected ${prev}`,
        );
      last.set(u.stream, u.version);
    }
  });
}
