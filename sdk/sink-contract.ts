/**
 * The sink's part of the plugin contract (contract.ts, which exports it too): the committed log as a sink reads it,
 * the error that says a reader fell behind retention, and what the host hands a sink.
 */
import type { Hono } from "hono";
import type { Lifecycle, PluginContext } from "./contract.ts";
import type { CurrentObject, Update } from "./model.ts";
import type { ObjectQuery, UpdateQuery } from "./store-contract.ts";

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
   * Aborting it ends the reader: the loop over `follow()` finishes at its next wait, or at once while it waits for
   * the store (a read the store holds goes on, its result dropped). That is how a sink stops reading. A sink that
   * runs its own loop (not `consume`) handles its own errors: nothing restarts a loop that died.
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
