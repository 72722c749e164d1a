/**
 * Whether a reader can go on from the position it holds (`<epoch>:<version>`: SSE's Last-Event-ID, NATS replay's
 * `from`, /v1/updates' `since`), or why it must start over from the stream's current state. One answer for every
 * sink, so that a reader moving between them is never resumed by one and reset by another.
 *
 * A resume point a little ahead of this replica's log: with `ha`, readers are spread over replicas that follow the
 * store a poll behind the leader (`ha.followInterval`, 250 ms): a client that moves from one replica to another may
 * come back with a position this one has not read yet. Waiting for it to get there, briefly, keeps the promise that
 * consumers see no RESET when they move or a leader fails over; a position that stays ahead is one this store never
 * had (the store was replaced), and the reader starts over as before.
 */
import { isBehindRetention, type CommittedLog } from "./contract.ts";
import { ALL } from "../protocol/streams.ts";
import type { Position } from "../protocol/position.ts";
import type { ResetReason } from "../protocol/replay.ts";
import { untilAborted } from "./store-reads.ts";

/**
 * Thrown by checkResumePoint for a position ahead of this replica's log while the replica cannot read the store it
 * follows (CommittedLog.behindStore): the position may well be the store's, so its reader comes back later rather
 * than start over (and lose its cache) while the store is down. Thrown for any position once this process serves
 * the store no more (CommittedLog.retired): its reader comes back, to a replica that does.
 */
export class StoreUnreadableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StoreUnreadableError";
  }
}

/**
 * What a reader of a log that serves the store no more (CommittedLog.retired) is told, ending in `ask again later` as
 * every answer a reader outlasts by asking again does; undefined while it serves it.
 */
export function retiredReason(log: CommittedLog): string | undefined {
  if (!log.retired?.aborted) return undefined;
  const reason: unknown = log.retired.reason;
  const why = reason instanceof Error ? reason.message : String(reason);
  return `this kubemeta serves this store no more: ${why}; ask again later`;
}

/** When a reader told so (SSE `retry`, HTTP `Retry-After`) asks again. */
export const STORE_UNREADABLE_RETRY_MS = 5_000;

export function isStoreUnreadable(error: unknown): error is StoreUnreadableError {
  return (error as Error | undefined)?.name === "StoreUnreadableError";
}

/** True when a reader told `reason` is to come back later instead (see StoreUnreadableError). */
export function comesBackLater(log: CommittedLog, reason: ResetReason | undefined): boolean {
  return reason === "ahead-of-log" && log.behindStore?.() === true;
}

/** How long a reader waits for the log to reach a resume point ahead of its head: several follow polls. */
export const AHEAD_WAIT_MS = 2_000;

/**
 * Resolves true once the log's head reaches `version`; false after AHEAD_WAIT_MS, or when `signal` aborts or the log
 * serves the store no more (it would not get there).
 */
export async function reachVersion(log: CommittedLog, version: number, signal?: AbortSignal): Promise<boolean> {
  if (log.head() >= version) return true;
  const give = AbortSignal.any([
    AbortSignal.timeout(AHEAD_WAIT_MS),
    ...[signal, log.retired].filter((s) => s !== undefined),
  ]);
  for await (const _ of log.follow({ stream: ALL, after: log.head(), signal: give }))
    if (log.head() >= version) return true;
  return log.head() >= version;
}

/**
 * Why a reader holding `stream` up to `from` must start over, or undefined when it can go on after `from.version`,
 * as the log stands now. Told without a read, so that a responder can sort the readers waiting for it by their
 * answer (NATS replay answers identical resets together); a prune the log has not heard of yet shows only later, as
 * a read failing with BehindRetentionError, which every reader must still expect.
 */
export function resetReason(log: CommittedLog, stream: string, from: Position | undefined): ResetReason | undefined {
  if (!from) return "no-resume-point";
  if (from.epoch !== log.epoch) return "other-epoch";
  if (from.version > log.head()) return "ahead-of-log";
  if (from.version < log.horizon(stream)) return "behind-retention";
  return undefined;
}

/**
 * resetReason once the log has had AHEAD_WAIT_MS to reach a `from` of its epoch that is ahead of it (less if
 * `signal` aborts, which gives up its read too). A reader behind retention is told to the log, which logs and counts it
 * (noteBehindRetention).
 * Throws StoreUnreadableError instead of "ahead-of-log" while the log is behind a store it cannot read, and instead of
 * any answer once it serves the store no more.
 */
export async function checkResumePoint(
  log: CommittedLog,
  stream: string,
  from: Position | undefined,
  signal?: AbortSignal,
): Promise<ResetReason | undefined> {
  if (from?.epoch === log.epoch) await reachVersion(log, from.version, signal);
  const retired = retiredReason(log);
  if (retired) throw new StoreUnreadableError(retired);
  const reason = resetReason(log, stream, from);
  if (comesBackLater(log, reason)) {
    const ahead = `position ${from!.version} is ahead of its log (head ${log.head()})`;
    throw new StoreUnreadableError(`this replica cannot read the store: ${ahead}; retry`);
  }
  if (reason === "behind-retention") {
    const noted = noteBehindRetention(log, stream, from!.version);
    await (signal ? untilAborted(noted, signal) : noted);
  }
  return reason;
}

/**
 * The log logs and counts (`kubemeta_reader_resets_total`) every reader it finds behind retention as it reads; one
 * found so without a read is counted the same by asking the log for what follows its position.
 */
export async function noteBehindRetention(log: CommittedLog, stream: string, after: number): Promise<void> {
  await log.read({ stream, after, to: after, limit: 1 }).catch((error: unknown) => {
    if (!isBehindRetention(error)) throw error;
  });
}

/**
 * Whether a new store's first sync is over (CommittedLog.whole), as a check a request makes at once: until then a
 * state sent would be what the first lists brought, and a reader reconciling with it would drop the rest.
 */
export function wholeYet(log: CommittedLog): () => boolean {
  let whole = false;
  void log.whole().then(() => {
    whole = true;
  });
  return () => whole;
}
