/**
 * One term as the store's writer: the pipeline, the sources and retention, from `store.lead()` (which fences out
 * every earlier writer) until the term ends. Without `ha` a process holds one term for its whole life; with `ha`
 * each Lease it wins is a term, begun where the log stands in the store: versions continue at head + 1 under the
 * same epoch, and the sources resume from the stored resourceVersions, so consumers see neither a reset nor a gap.
 */
import type { Config } from "./config.ts";
import {
  isStoreReplaced,
  isWriterFenced,
  type Lifecycle,
  type PluginContext,
  type Source,
  type Store,
} from "../sdk/contract.ts";
import type { Logger, Metrics } from "../sdk/telemetry.ts";
import type { HostLog } from "../core/committed-log.ts";
import { type Uncommitted, STORE_CHECK_TICK_MS, STORE_UNANSWERED_MS } from "../core/commit-queue.ts";
import { createPipeline } from "../core/pipeline.ts";
import { answering, catchUp, checkSameStore } from "./follower.ts";
import { supervise } from "./supervise.ts";
import { sourceGate } from "./source-gate.ts";
import { ageRetention, committedAfter } from "./log-age.ts";
import { until } from "../protocol/retry.ts";

export interface LeaderOptions {
  config: Config;
  store: Store;
  log: HostLog;
  logger: Logger;
  metrics: Metrics;
  context(name: string, kind: string): PluginContext;
  /** The wall clock updates are stamped by (HostOptions.clock). */
  clock?: () => number;
  /**
   * Another process became the store's writer: this term commits nothing more. `uncommittedUpdates` when a commit was
   * refused (not retention), what it gives up: the owner says it (sayFenced) once it knows the store is not replaced.
   */
  onFenced(error: Error, uncommittedUpdates?: number): void;
  /**
   * After each failed commit that is retried, and each second a commit goes unanswered past STORE_UNANSWERED_MS, how
   * long its batch has failed: with `ha`, a term that cannot write for long ends, so that a replica that reaches the
   * store leads.
   */
  onCommitFailing?(error: Error, failingMs: number): void;
  /**
   * The term's start is given up (it throws, nothing started; aborted already, nothing asked of the store either)
   * once `stopped` aborts before the sources start, or,
   * with `ha`, once the store has left one of its requests before then (taking the writer's term, each page of the
   * catch-up) unanswered for `unansweredMs` (ha.renewDeadline): over a path that drops packets one fails only after
   * store.timeout, and meanwhile this replica would hold the Lease without committing, a shutdown waiting on it. Once
   * the sources start, `stopped` ends the wait for their starts: the term is returned, for its stop to stop them.
   * `held` (Elector.holds), asked just before the store is, and again in its lead() (Store.lead's check): false
   * throws LeaseNotHeldError, the store's term not raised.
   */
  starting?: { stopped: AbortSignal; unansweredMs: number; held?: () => boolean };
}

/** The Lease was not surely held any more when the term was about to take the store's writer's term. */
export class LeaseNotHeldError extends Error {
  constructor() {
    super("the Lease was not renewed within ha.renewDeadline before the store's writer's term was taken");
    this.name = "LeaseNotHeldError";
  }
}

export interface LeaderTerm {
  /** What keeps this replica from being ready: unsynced sources, a failing commit. */
  waiting(): string[];
  /** Stops the sources, commits what is pending and stops retention; safe twice. */
  stop(): Promise<void>;
  /** Stops the sources and retention without committing what is pending (leadership lost, or no time left). */
  abandon(): Promise<Uncommitted>;
  /** What is not committed, for a shutdown that runs out of time. */
  uncommitted(): Uncommitted;
}

export async function startLeaderTerm(options: LeaderOptions): Promise<LeaderTerm> {
  const { config, store, log, logger, metrics, context } = options;
  const { stopped = new AbortController().signal, unansweredMs = Infinity, held } = options.starting ?? {};
  const ask = answering(
    stopped,
    unansweredMs,
    `no answer from the store in ${unansweredMs} ms (ha.renewDeadline); giving the Lease up`,
  );
  // Not sent once given up (the Lease lost while the follower stopped): it would raise the store's term past the next
  // leader's, which would be fenced once.
  stopped.throwIfAborted();
  // Nor once a pause since the Lease was won (SIGSTOP, a long GC, a frozen VM: the renewals' timers have not run) may
  // have outlasted it: another replica may lead now, its term raised, and this one's would fence it once.
  const leaseCheck =
    held &&
    (() => {
      if (!held()) throw new LeaseNotHeldError();
    });
  leaseCheck?.();
  // And again in lead(), between the store's read of its term and its raise from that term only: a pause after this
  // check raises nothing once a next leader has raised it (a store that ignores the check leaves that window).
  const state = await ask(store.lead(leaseCheck));
  // Where this replica last followed it, the store may have been replaced since (its term raised by the new one's).
  checkSameStore(log, state);
  await catchUp(store, log, state.head, ask);
  // The writer's log is the store's from here: no reader is told to come back for want of a read.
  log.setBehindStore(false);
  // Stamped by another clock (the last leader's, or this one's before a step back): no update is stamped earlier.
  const newestTime = state.head > 0 ? await ask(committedAfter(store, state.head - 1)) : undefined;
  /**
   * Why another writer's term shut this one out, by a refused commit or a refused retention. The term ends itself
   * then (its sources would load the API server for nothing, its retention prune another's log), and tells its owner
   * once.
   */
  let fencedBy: Error | undefined;
  /** Set once the term is built: a fence during its start (a source's first commit) ends it right after. */
  let end: (() => void) | undefined;
  const fence = (error: Error, uncommittedUpdates?: number) => {
    if (fencedBy) return;
    fencedBy = error;
    end?.();
    options.onFenced(error, uncommittedUpdates);
  };
  const pipeline = createPipeline({
    store,
    state,
    // Not bounded by unansweredMs: a large store's digests take as long as they take, through many pages.
    digests: await answering(stopped)(store.digests()),
    logger,
    metrics,
    onCommit: (updates) => log.append(updates),
    clock: options.clock,
    newestTime,
    slim: config.slim,
    onFenced: (error, uncommittedUpdates) => fence(error, uncommittedUpdates),
    onCommitFailing: options.onCommitFailing,
  });

  // Another replica's first sync may have ended since this one last followed the store.
  if (state.whole) log.markWhole();
  /** Until the store has recorded the first sync's end, /readyz waits for it too: ready means the state is served. */
  let wholeRecorded = state.whole !== false;
  /**
   * Every source has synced: the objects are whole once the store has it recorded, for every replica and every
   * later start (a store that records none: at once, as each process decides for itself).
   */
  const markWhole = async () => {
    if (!wholeRecorded) await pipeline.markWhole();
    wholeRecorded = true;
    log.markWhole();
  };

  // The sources not synced yet, with the reason each gave, if any.
  const unsynced = new Map(config.sources.map((s) => [s.name, undefined as string | undefined]));
  const sources: Lifecycle[] = config.sources.map(({ declaration, name, config: sourceConfig }) => {
    const base = context(name, "source");
    // Each instance's own view of the pipeline: one retired is shut out, the one created in its place is not.
    const create = (retired: AbortSignal): Source =>
      declaration.create(sourceConfig, {
        ...base,
        changes: sourceGate(pipeline, base.logger, retired),
        synced: () => {
          if (!unsynced.delete(name)) return;
          base.logger.info("source synced");
          if (unsynced.size > 0) return;
          void markWhole();
          pipeline.retractUnclaimed().catch((error: unknown) => {
            logger.error("cannot retract what no source watches any more", { error });
          });
        },
        waiting: (reason) => {
          if (unsynced.has(name)) unsynced.set(name, reason);
        },
      });
    return supervise(create, { name, kind: "source", logger: base.logger, metrics });
  });
  // A stop asked for meanwhile waits for none (a source's start that hangs would hold it up to its deadline, the
  // others listing the cluster for nothing): the term's stop stops each source, a start still under way included.
  await until(Promise.all(sources.map((source) => source.start())), Infinity, stopped);
  if (unsynced.size === 0) void markWhole(); // no sources at all

  // Each run is scheduled when the previous one is over: a slow prune never overlaps the next.
  let pruneTimer: Timer | undefined;
  let pruning: Promise<void> = Promise.resolve();
  const stopPruning = new AbortController();
  const retention = ageRetention(store, log, config.store.retention, newestTime);
  const prune = async () => {
    try {
      const { removed, oldest } = await store.prune(await retention(), stopPruning.signal);
      log.setOldest(oldest, await store.horizons?.());
      if (removed > 0) logger.info("retention pruned updates", { removed, oldest });
    } catch (error) {
      // Refused for the same reason as a commit would be: on a quiet store, retention may be the first to learn it.
      if (isWriterFenced(error)) fence(error);
      // Said once by the host, which stops.
      else if (!isStoreReplaced(error)) logger.error("retention failed", { error });
    }
  };
  const schedulePrune = () => {
    pruneTimer = setTimeout(() => {
      pruning = prune().then(() => {
        if (pruneTimer) schedulePrune();
      });
    }, config.store.pruneIntervalMs);
  };
  schedulePrune();
  // A quiet cluster commits nothing: without a check, a store that hangs would be found only at the next change.
  const storeCheck = setInterval(() => pipeline.checkStore(), STORE_CHECK_TICK_MS);

  const stopSources = async () => {
    clearInterval(storeCheck);
    clearTimeout(pruneTimer);
    pruneTimer = undefined;
    stopPruning.abort();
    await pruning;
    await Promise.all(sources.map((source) => source.stop()));
  };
  let stopping: Promise<void> | undefined;
  const abandon = async () => {
    const uncommitted = pipeline.abandon();
    stopping ??= stopSources();
    await stopping;
    return uncommitted;
  };
  end = () => void abandon();
  if (fencedBy) end();
  return {
    waiting() {
      const waiting = [...unsynced].map(([name, reason]) =>
        reason ? `source ${name}: ${reason}` : `source ${name} not synced`,
      );
      if (waiting.length === 0 && !wholeRecorded) waiting.push("the end of the first sync not committed yet");
      const failure = pipeline.commitFailure() ?? fencedBy;
      if (failure) waiting.push(`store not writable: ${failure.message}`);
      // Before the commit fails (store.timeout, or never): a load balancer sends no new reader to wait on the store.
      const unansweredMs = pipeline.commitUnansweredMs();
      if (unansweredMs >= STORE_UNANSWERED_MS)
        waiting.push(`store not answering: a commit has waited ${Math.floor(unansweredMs / 1000)} s for its answer`);
      return waiting;
    },
    stop() {
      stopping ??= stopSources().then(() => pipeline.stop());
      return stopping;
    },
    abandon,
    uncommitted: () => pipeline.abandon(),
  };
}
