/**
 * The plugin contract: what a source, a store and a sink declare, and what the host
 * hands each of them. A plugin is one module whose default export is a declaration:
 * its `type`, a valibot schema for its config, and `create(config, ctx)` returning
 * `{ start, stop }`. Built-ins (plugins/) use `defineSource`, `defineStore` or
 * `defineSink` and import from sdk/, protocol/ and kube/ (the Kubernetes API client) only,
 * never from another plugin (README, Architecture). Some of the sdk/ files they use
 * (http.ts, thread.ts, priority.ts, resume.ts, resource-version.ts) are not part of `kubemeta/sdk`.
 *
 * A custom plugin lives anywhere and is named by path in the config
 * (`type: ./plugins/my-sink.ts`, relative to the config file). It imports
 * `kubemeta/sdk` (sdk/index.ts: this contract, `consume`, the schema pieces and `v`,
 * kubemeta's own valibot), which resolves to the kubemeta that loads it: inside the
 * repository, from a folder where kubemeta is installed, or in the container image.
 * examples/sink-plugin/ is a complete one, with its test.
 *
 * A sink writes only its output: `consume(ctx, { deliver })` (sdk/consume.ts) reads the
 * log from the sink's cursor, calls `deliver` with each batch of envelopes, saves the
 * cursor after it, retries a batch whose `deliver` throws (backoff, counted), goes on
 * after retention, keeps `kubemeta_sink_lag_versions` and reports a batch held too long.
 * The host (host/supervise.ts) retries a start that throws with backoff, stops a start not
 * finished after 10 s and creates the plugin again, and gives up on a stop that hangs after
 * 10 s. Each sink reads the log on its own, so a slow or
 * stuck sink delays nobody else.
 *
 * @example A sink that writes each update of a stream to stdout, at least once, in order:
 * ```ts
 * import { consume, defineSink, streamName, v } from "kubemeta/sdk";
 *
 * export default defineSink({
 *   type: "stdout",
 *   description: "Prints updates.",
 *   schema: v.strictObject({ stream: v.optional(streamName, "all") }),
 *   create: (config, ctx) =>
 *     consume(ctx, {
 *       stream: config.stream,
 *       async deliver(envelopes) {
 *         for (const envelope of envelopes) console.log(JSON.stringify(envelope));
 *       },
 *     }),
 * });
 * ```
 */
import type { Hono } from "hono";
import type { Logger } from "./telemetry.ts";
import type { Metrics } from "./telemetry.ts";
import type { ChangeType } from "../protocol/envelope.ts";
import type { PreparedChanges } from "./prepared.ts";
import type { CurrentObject, KubeObject, Update } from "./model.ts";
import type { ObjectQuery, UpdateQuery } from "./store-contract.ts";

/**
 * Start and stop. Both are safe to call twice; stop is safe without start.
 *
 * `start` resolves once the plugin runs (a sink's loop runs in the background; do not
 * await it there); when it throws, or has not resolved after 10 s, the host retries it with
 * backoff (the latter on a new instance, this one stopped). `stop` ends all
 * the plugin started (abort your signals, clear your timers) and should await its loops,
 * so that an error they ended on is reported.
 */
export interface Lifecycle {
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** What every plugin receives. */
export interface PluginContext {
  /** The instance name from the config (defaults to the type); unique per kind. */
  name: string;
  /** The cluster name from the config. */
  cluster: string;
  /** JSON lines, already labelled with the plugin's kind and name. */
  logger: Logger;
  /**
   * The one Prometheus registry (/metrics). Registering a name again as the same type
   * returns the same metric; as another type, or a name or label name Prometheus does not
   * allow, a counter's negative increment or a bucket that is not finite, it throws. Label
   * your series with `{ sink: ctx.name }` (or `source`, `store`) so two instances of one
   * plugin stay apart.
   */
  metrics: Metrics;
}

// ---------------------------------------------------------------- sources

/**
 * The core, as a source sees it. Events are applied in order. Each is prepared (core/prepare.ts: slim copy, digest,
 * stream) inside `apply`, or before, on the source's own thread, when handed to `prepared.apply`; the core then
 * suppresses no-op MODIFIEDs, versions and commits them in batches.
 */
export interface ChangeSink {
  /**
   * The resourceVersion last committed for `resource` (a key the source chooses), if any. Given the `kind` it
   * watches, undefined too when `kind` was relisted since under another key (another scope's selectors): the stored
   * objects of that kind are that scope's, so resuming would keep the ones outside this scope for good; and when
   * `resource` was last listed for another kind (a CRD re-created with another kind). List again.
   *
   * Asking it (or relisting) is how a source says it still watches `resource`: once every source has synced, the
   * core retracts (as retract()) each resource kinds were last relisted under that no source asked for in this run.
   */
  resumePoint(resource: string, kind?: string): string | undefined;
  /**
   * Applies one watch or list event. Outside a relist, the object's resourceVersion
   * becomes `resource`'s resume point, committed in the same transaction as the update, if it is
   * one to resume from (sdk/resource-version.ts, as a bookmark's and a relist's end must be).
   * Returns a promise only when the core's queue is full: await it (backpressure).
   */
  apply(resource: string, type: ChangeType, object: KubeObject): void | Promise<void>;
  /** Records a watch BOOKMARK's resourceVersion as `resource`'s resume point. */
  bookmark(resource: string, resourceVersion: string): void | Promise<void>;
  /**
   * Starts a relist of `kind` for `resource`. Until `end`, apply() calls carry the
   * listed state and do not move the resume point. `end` emits DELETED for every
   * stored object of `kind` the relist did not contain (and every stored object of another
   * kind last relisted under `resource`), records `resourceVersion` as the resume point, and
   * resolves when all of it is committed.
   */
  relist(resource: string, kind: string): Relist;
  /**
   * Says that `resource` watches `kind` in this run, before it lists: returns the resource that watches it already,
   * else undefined. The state is kept by kind, so two resources of one kind (two groups' `Gateway`, one kind under two
   * sources' selectors) would each delete the other's objects at every relist: the one told of another must not watch
   * it. A resource retracted, or claiming another kind (a CRD re-created with another kind), no longer holds it.
   */
  claimKind(resource: string, kind: string): string | undefined;
  /**
   * The API server no longer serves `resource` (its CRD was deleted, perhaps while nobody watched: the API server
   * deleted its objects with it, and no DELETED of theirs will come). Emits DELETED for every stored object of the kind
   * last relisted under `resource` (a kind relisted since under another key is that key's, and kept), forgets
   * `resource`'s resume point, so that it lists afresh once served again, and resolves when all of it is committed.
   */
  retract(resource: string): Promise<void>;
  /** Resolves when everything applied so far is committed. */
  flush(): Promise<void>;
  /**
   * Present when the core takes changes prepared on another thread: a source that parses in a Worker prepares each
   * object there with `preparer` and hands the result to `apply`, so that the main thread neither parses nor slims.
   */
  prepared?: PreparedChanges;
}

export interface Relist {
  end(resourceVersion: string): Promise<void>;
  /** Abandons the relist (the list failed): nothing is deleted, the resume point is kept. */
  abort(): void;
}

export interface SourceContext extends PluginContext {
  changes: ChangeSink;
  /** Tells the host this source has delivered its initial state (for /readyz). */
  synced(): void;
  /**
   * Says why the source is not synced yet, e.g. "waiting for argoproj.io/v1alpha1/rollouts (…)": /readyz shows
   * `source <name>: <reason>` instead of `source <name> not synced`. Undefined clears it; after synced() it is ignored.
   */
  waiting(reason: string | undefined): void;
}

export type Source = Lifecycle;

// ---------------------------------------------------------------- stores

// What a store implements and what it is asked (Store, StoreState, queries, WriterFencedError): store-contract.ts.
export * from "./store-contract.ts";

// ---------------------------------------------------------------- sinks

/**
 * Thrown by the log when a reader's position is older than retention or of another
 * epoch: the updates after it are gone. A durable sink goes on after `oldest - 1`, and
 * says so (those updates are lost to it); one that serves state can send a snapshot
 * (`log.snapshot`). Recognise it with isBehindRetention.
 */
export class BehindRetentionError extends Error {
  constructor(
    readonly after: number,
    readonly oldest: number,
  ) {
    super(`position ${after} is older than retention (oldest version ${oldest})`);
    this.name = "BehindRetentionError";
  }
}

/**
 * By name, not `instanceof`: a plugin outside the repository may load the SDK from another copy of kubemeta than
 * the one whose log throws the error.
 */
export function isBehindRetention(error: unknown): error is BehindRetentionError {
  return (error as Error | undefined)?.name === "BehindRetentionError";
}

export interface FollowOptions {
  stream: string;
  /** Exclusive: the first batch starts after this version (0 for the beginning of the log). */
  after: number;
  /** Maximum updates per batch (default 500). */
  batchSize?: number;
  /** As LogQuery.noPosition: a reader whose position is another stream's (`consume` of one stream reads `all`). */
  noPosition?: boolean;
  /**
   * Aborting it ends the reader: the loop over `follow()` finishes at its next wait.
   * That is how a sink stops reading. A sink that runs its own loop (not `consume`)
   * handles its own errors: nothing restarts a loop that died.
   */
  signal: AbortSignal;
}

/**
 * Objects a snapshot reads from the store at a time: kubemeta's own readers (SSE resets, `GET /v1/objects`, NATS
 * resets) page with it. Ten concurrent resets of `all` at 150,000 real-size pods (bench/snapshots.ts) added
 * +165–241 MiB of RSS at their peak with pages of 500, +90–157 MiB with pages of 100, for 10 % less speed: what
 * the collector lets pile up between its runs grows with the size of each page's strings, not with their number.
 */
export const SNAPSHOT_PAGE = 100;

/**
 * The committed log, as sinks read it. Live delivery and catch-up are the same call:
 * recent updates come from memory, older ones from the store.
 */
export interface CommittedLog {
  readonly epoch: string;
  /** Highest committed version. */
  head(): number;
  /** Lowest version still retained. */
  oldest(): number;
  /**
   * The lowest position a reader of `stream` can go on from: below it, retention removed updates of that stream.
   * `oldest() - 1` for `all`; lower for a stream that had no update in what retention removed lately.
   */
  horizon(stream: string): number;
  /** Updates of `stream` after `after` (up to `to`), at most `limit`. Throws BehindRetentionError. */
  read(query: LogQuery): Promise<Update[]>;
  /**
   * Batches of `stream` after `after`, in version order, waiting for commits when
   * caught up; ends when the signal aborts. Throws BehindRetentionError when the
   * position falls behind. Batches are shared with other readers: do not modify them.
   * To deliver exactly the `stream` a user named, follow it; to move a position past
   * updates you filter out (so lag and cursor stay exact), follow `all` and filter
   * with `inStream` (kubemeta/sdk), as `consume` does.
   */
  follow(options: FollowOptions): AsyncIterable<Update[]>;
  /**
   * The current objects of a stream and the version they are consistent with, all in memory at once: read as
   * snapshotPages reads them, each page given up (a rejection) once the store has not answered it in the host's bound.
   */
  snapshot(query: ObjectQuery): Promise<{ version: number; objects: CurrentObject[] }>;
  /**
   * The same objects, at most `pageSize` at a time, so that a reader holds one page rather
   * than the whole state. Every page comes from one consistent read and carries its version;
   * the first page comes even when there is no object. The read stays open until the last
   * page is taken or the loop is left, so leave it rather than abandon it.
   */
  snapshotPages(query: ObjectQuery, pageSize: number): AsyncIterable<{ version: number; objects: CurrentObject[] }>;
  /**
   * Resolves once the store's objects are the whole state the sources watch: at once for a store whose first sync
   * ended before (StoreState.whole); for a new one (first start, wiped store, a start after a process died during
   * that sync), once every source of the replica that leads has synced and the store has recorded it (with `ha`, a
   * follower learns it by following the store). Before then a snapshot is what the first lists brought so far: a
   * consumer that reconciles its view with it (a reset after a new epoch) would delete what is only not listed yet.
   * Resolves too when `signal` aborts.
   */
  whole(signal?: AbortSignal): Promise<void>;
  /**
   * With `ha`, true while this replica cannot read the store it follows: its head may stop short of versions the
   * store has, so a position ahead of it is no reason for a reader to start over (sdk/resume.ts). Absent: never.
   */
  behindStore?(): boolean;
  /**
   * Aborts, its reason an Error saying why, once this process serves the store no more: without `ha`, another kubemeta
   * took the store over (fencing this one out), and this log moves no further until a restart. Readers are told to
   * come back later (sdk/resume.ts, retiredReason), to reach a replica that serves it. Absent: never.
   */
  retired?: AbortSignal;
}

/** A read of the committed log (CommittedLog.read). */
export interface LogQuery extends UpdateQuery {
  /**
   * The read is no reader's position: a `/v1/updates` page without `since`, which starts at the stream's horizon, or
   * a look at one update for a metric. A prune that overtakes it still throws BehindRetentionError (start again at
   * the new horizon), but no reader fell behind: it is not counted in `kubemeta_reader_resets_total` nor logged.
   */
  noPosition?: boolean;
}

export interface SinkContext extends PluginContext {
  log: CommittedLog;
  /**
   * This sink's durable position in the log, kept in the store under the sink's name,
   * so it survives restarts. Save a version once it is delivered (at least once);
   * `load` gives undefined the first time. A wiped store has a new epoch and no cursors.
   */
  cursor: {
    load(): Promise<number | undefined>;
    save(version: number): Promise<void>;
  };
  /**
   * The one shared HTTP app; mount routes under /v1 (or a path of the plugin's own)
   * in `create`, before the listener starts. Routes stay for the life of the process,
   * so a sink with routes handles its own errors: a fresh instance would add them again.
   */
  http: Hono;
  /**
   * With `ha`, only the leader delivers (publishes, posts, writes out); every replica serves readers. `consume`
   * waits for it. Absent: this process always leads (one replica).
   */
  leadership?: Leadership;
}

/** When this replica leads (see SinkContext.leadership). */
export interface Leadership {
  /**
   * Resolves once this replica leads, with a signal that aborts when it stops leading; rejects if `signal` aborts
   * first. After a loss, call it again to wait for the next term.
   */
  acquire(signal: AbortSignal): Promise<AbortSignal>;
  /**
   * Whether this replica still surely leads: false from the moment its Lease may have passed to another (no renewal
   * within `ha.renewDeadline`, a pause past it included), which can come before the term's signal aborts. Deliver
   * nothing while it is false: another replica may be delivering later versions already. Absent: the signal alone.
   */
  holds?(): boolean;
}

export type Sink = Lifecycle;

// How a plugin declares itself (its type, schema, factory), which names the contexts above: sdk/declaration.ts.
export * from "./declaration.ts";
