/**
 * Test fixtures for the kubernetes source: a ChangeSink that keeps what the contract
 * says the core keeps (current objects by kind, resume points, relists with their
 * deletions, retractions) and records every call, and a helper that runs the source against a test
 * API server.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as v from "valibot";
import type { ChangeSink, Relist, Source } from "../sdk/contract.ts";
import { silentLogger } from "../host/logger.ts";
import type { Logger } from "../sdk/telemetry.ts";
import { createMetrics } from "../host/metrics.ts";
import type { Metrics } from "../sdk/telemetry.ts";
import type { ChangeType } from "../protocol/envelope.ts";
import type { KubeObject } from "../sdk/model.ts";
import kubernetes from "../plugins/sources/kubernetes.ts";
import { startTestApiServer, type TestApiServer, type TestApiServerOptions } from "../simulator/index.ts";
import { populate } from "../simulator/population.ts";

export interface Recorded {
  resource: string;
  type: ChangeType;
  kind: string;
  uid: string;
  name: string;
  resourceVersion: string;
  /** Applied inside a relist, emitted by a relist's end for an object it did not contain, or by a retraction. */
  via: "watch" | "relist" | "relist-end" | "retract";
}

export interface RelistRecord {
  resource: string;
  kind: string;
  state: "open" | "ended" | "aborted";
  resourceVersion?: string;
  deleted: number;
}

interface Current {
  name: string;
  resourceVersion: string;
}

export class RecordingSink implements ChangeSink {
  readonly resumePoints = new Map<string, string>();
  readonly events: Recorded[] = [];
  readonly relists: RelistRecord[] = [];
  readonly bookmarks: Array<{ resource: string; resourceVersion: string }> = [];
  /** The resources retracted, in order. */
  readonly retracted: string[] = [];
  /** Broken promises of the contract (a nested relist, an object without uid or kind). */
  readonly violations: string[] = [];
  /** Called on every apply; a returned promise is handed back to the source as backpressure. */
  onApply: ((count: number, object: KubeObject) => void | Promise<void>) | undefined;
  private readonly objects = new Map<string, Map<string, Current>>();
  private readonly open = new Map<string, { kind: string; seen: Set<string>; record: RelistRecord }>();
  /** The resource each kind was last relisted under. */
  private readonly relistedBy = new Map<string, string>();
  /** The resource that claimed each kind (claimKind). */
  private readonly watchers = new Map<string, string>();

  claimKind(resource: string, kind: string): string | undefined {
    const other = this.watchers.get(kind);
    if (other !== undefined && other !== resource) return other;
    this.watchers.set(kind, resource);
    return undefined;
  }

  resumePoint(resource: string): string | undefined {
    return this.resumePoints.get(resource);
  }

  apply(resource: string, type: ChangeType, object: KubeObject): void | Promise<void> {
    const uid = object.metadata?.uid;
    const kind = object.kind;
    if (!uid || !kind || !object.apiVersion) {
      this.violations.push(`apply without uid, kind or apiVersion: ${JSON.stringify(object).slice(0, 200)}`);
      return;
    }
    const resourceVersion = object.metadata?.resourceVersion ?? "";
    const relist = this.open.get(resource);
    relist?.seen.add(uid);
    const byUid = this.kind(kind);
    if (type === "DELETED") byUid.delete(uid);
    else byUid.set(uid, { name: object.metadata?.name ?? "", resourceVersion });
    if (!relist) this.resumePoints.set(resource, resourceVersion);
    this.events.push({
      resource,
      type,
      kind,
      uid,
      name: object.metadata?.name ?? "",
      resourceVersion,
      via: relist ? "relist" : "watch",
    });
    return this.onApply?.(this.events.length, object);
  }

  bookmark(resource: string, resourceVersion: string): void {
    if (this.open.has(resource)) return;
    this.resumePoints.set(resource, resourceVersion);
    this.bookmarks.push({ resource, resourceVersion });
  }

  relist(resource: string, kind: string): Relist {
    if (this.open.has(resource)) this.violations.push(`relist of ${resource} while one is open`);
    if (this.watchers.get(kind) !== resource) this.violations.push(`relist of ${kind} unclaimed by ${resource}`);
    const record: RelistRecord = { resource, kind, state: "open", deleted: 0 };
    const open = { kind, seen: new Set<string>(), record };
    this.relists.push(record);
    this.open.set(resource, open);
    return {
      end: async (resourceVersion) => {
        if (this.open.get(resource) !== open) return;
        this.open.delete(resource);
        const byUid = this.kind(kind);
        for (const [uid, current] of [...byUid]) {
          if (open.seen.has(uid)) continue;
          byUid.delete(uid);
          record.deleted++;
          this.events.push({
            resource,
            type: "DELETED",
            kind,
            uid,
            name: current.name,
            resourceVersion,
            via: "relist-end",
          });
        }
        this.resumePoints.set(resource, resourceVersion);
        this.relistedBy.set(kind, resource);
        record.state = "ended";
        record.resourceVersion = resourceVersion;
      },
      abort: () => {
        if (this.open.get(resource) !== open) return;
        this.open.delete(resource);
        record.state = "aborted";
      },
    };
  }

  async retract(resource: string): Promise<void> {
    this.retracted.push(resource);
    for (const [kind, watcher] of this.watchers) if (watcher === resource) this.watchers.delete(kind);
    for (const [kind, by] of this.relistedBy) {
      if (by !== resource) continue;
      const byUid = this.kind(kind);
      for (const [uid, current] of byUid) {
        const { name, resourceVersion } = current;
        this.events.push({ resource, type: "DELETED", kind, uid, name, resourceVersion, via: "retract" });
      }
      byUid.clear();
    }
    this.resumePoints.delete(resource);
  }

  async flush(): Promise<void> {}

  /** uid → resourceVersion of the current objects of `kind`. */
  state(kind: string): Map<string, string> {
    return new Map([...this.kind(kind)].map(([uid, current]) => [uid, current.resourceVersion]));
  }

  private kind(kind: string): Map<string, Current> {
    let byUid = this.objects.get(kind);
    if (!byUid) {
      byUid = new Map();
      this.objects.set(kind, byUid);
    }
    return byUid;
  }
}

/** uid → resourceVersion of the server's current objects of `kind`. */
export function serverState(server: TestApiServer, kind: string): Map<string, string> {
  return new Map(server.list(kind).map((o) => [o.metadata!.uid!, o.metadata!.resourceVersion!]));
}

/** True when the sink holds exactly the server's objects of `kind`, each at the server's resourceVersion. */
export function inSync(sink: RecordingSink, server: TestApiServer, kind: string): boolean {
  const ours = sink.state(kind);
  const theirs = serverState(server, kind);
  if (ours.size !== theirs.size) return false;
  for (const [uid, rv] of theirs) if (ours.get(uid) !== rv) return false;
  return true;
}

export interface RunningSource {
  source: Source;
  metrics: Metrics;
  /** Resolves when the source called synced(). */
  synced: Promise<void>;
  isSynced(): boolean;
  /** The reason the source last gave for not being synced yet (ctx.waiting). */
  waiting(): string | undefined;
  stop(): Promise<void>;
}

/** Creates and starts the kubernetes source with a config that keeps tests fast. */
export async function runSource(
  sink: ChangeSink,
  config: Record<string, unknown>,
  logger: Logger = silentLogger,
): Promise<RunningSource> {
  const running = createSource(sink, config, logger);
  await running.source.start();
  return running;
}

/** Creates the kubernetes source as runSource does, not started. */
export function createSource(
  sink: ChangeSink,
  config: Record<string, unknown>,
  logger: Logger = silentLogger,
): RunningSource {
  const metrics = createMetrics();
  let markSynced = () => {};
  let synced = false;
  let reason: string | undefined;
  const syncedPromise = new Promise<void>((resolve) => (markSynced = resolve));
  const parsed = v.parse(kubernetes.schema, {
    backoff: { initial: "20ms", max: "200ms" },
    requestBudget: { qps: 100, burst: 100 },
    ...config,
  });
  const source = kubernetes.create(parsed, {
    name: "kubernetes",
    cluster: "test",
    logger,
    metrics,
    changes: sink,
    synced: () => {
      synced = true;
      markSynced();
    },
    waiting: (given) => {
      reason = given;
    },
  });
  return {
    source,
    metrics,
    synced: syncedPromise,
    isSynced: () => synced,
    waiting: () => reason,
    stop: () => source.stop(),
  };
}

/** Resolves when `check` holds, polling; fails with `what` after `timeoutMs`. */
export async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await Bun.sleep(5);
  }
}

/** Rejects when `promise` takes longer than `timeoutMs`. */
export async function within<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: Timer | undefined;
  const timeout = new Promise<never>(
    (_, reject) => (timer = setTimeout(() => reject(new Error(`${what} took longer than ${timeoutMs} ms`)), timeoutMs)),
  );
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A temporary directory, removed by the returned function. */
export async function scratchDir(): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "kubemeta-source-"));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

export interface TestCluster {
  server: TestApiServer;
  /** A token kubeconfig file for the server. */
  kubeconfig: string;
  /**
   * Starts the source on this cluster (pods only unless `config` says otherwise); stopped at the end of withCluster.
   */
  start(sink: ChangeSink, config?: Record<string, unknown>): Promise<RunningSource>;
  /** Starts the source, waits for its sync and stops it: a first run before a restart. */
  syncAndStop(sink: ChangeSink, config?: Record<string, unknown>): Promise<void>;
}

/**
 * Runs `body` against a fresh test API server holding `population` (nodes × pods per
 * node), then stops every source it started and the server, whatever happened.
 */
export async function withCluster(
  body: (cluster: TestCluster) => Promise<void>,
  options: TestApiServerOptions = {},
  population = { nodes: 3, podsPerNode: 5 },
): Promise<void> {
  const server = await startTestApiServer({ bookmarkIntervalMs: 100, ...options });
  populate(server, population);
  const scratch = await scratchDir();
  const kubeconfig = join(scratch.dir, "kubeconfig");
  await server.writeKubeconfig(kubeconfig, "token");
  const started: RunningSource[] = [];
  const start = async (sink: ChangeSink, config: Record<string, unknown> = {}) => {
    const running = await runSource(sink, { kubeconfig, resources: ["pods"], ...config });
    started.push(running);
    return running;
  };
  try {
    await body({
      server,
      kubeconfig,
      start,
      async syncAndStop(sink, config) {
        const running = await start(sink, config);
        await within(running.synced, 5000, "the first sync");
        await running.stop();
      },
    });
  } finally {
    for (const running of started) await running.stop();
    await server.stop();
    await scratch.remove();
  }
}

/** A counter's value, by name and labels. */
export function count(metrics: Metrics, name: string, labels: Record<string, string>): number {
  return metrics.counter(name, "").get(labels);
}
