/**
 * One /v1/watch subscriber: from its resume point (or a RESET and the current state) to
 * SYNCED, then live. Catch-up and snapshot go at the subscriber's pace (the buffer never
 * holds more than its bound); live updates do not wait for it: a subscriber whose buffer
 * is full when a batch arrives is closed with an OVERFLOW event naming where to resume.
 *
 * A RESET's snapshot is read from the store a page at a time as the subscriber takes it,
 * inside one read transaction (CommittedLog.snapshotPages), so SYNCED carries the version
 * every object sent is consistent with. Pages keyed by rowid in separate reads would hold no
 * transaction, but objects changed between two pages would be sent at versions past that
 * one, and objects moved or deleted meanwhile skipped. The price is a read transaction held
 * at the subscriber's pace; what bounds it: at most two HTTP snapshot reads at once
 * (sdk/http.ts), leaving the store's other read slots to NATS resets and the core; a
 * subscriber that goes away leaves the loop; one that takes nothing is closed (`stallMs`), as is one that takes nothing
 * of its catch-up, which would hold its stream (its place under maxStreams) for as long as its connection stayed open.
 * A stream closed while it waits on a read of the store (its client gone, or the sink's stop) ends at once, the read
 * going on and its result dropped: a remote store that stopped answering gives up only at its 10 s, the host's
 * deadline for a plugin's stop.
 */
import { isBehindRetention, type CommittedLog } from "../../../sdk/contract.ts";
import { checkResumePoint, isStoreUnreadable, STORE_UNREADABLE_RETRY_MS } from "../../../sdk/resume.ts";
import { readObjectPages } from "../../../sdk/http.ts";
import { fromStore, pagesUntilAborted, readingStore, StoreReadFailed } from "../../../sdk/store-reads.ts";
import { snapshotTime } from "../../../sdk/snapshot-time.ts";
import { DRAIN_READ_WAIT_MS } from "../../../sdk/consume-options.ts";
import { TIMED_OUT, until } from "../../../protocol/retry.ts";
import type { Position } from "../../../protocol/position.ts";
import type { ResetReason } from "../../../protocol/replay.ts";
import type { SseChannel } from "./channel.ts";
import {
  isFiltered,
  matches,
  overflowEvent,
  progressLine,
  resetEvent,
  snapshotEvents,
  syncedEvent,
  type Filter,
  type UpdateEvents,
} from "./wire.ts";

export interface Session {
  log: CommittedLog;
  stream: string;
  filter: Filter;
  resume: Position | undefined;
  batchSize: number;
  channel: SseChannel;
  events: UpdateEvents;
  signal: AbortSignal;
  /**
   * Aborted when the sink stops: a live stream ends once it holds what is committed by then (the sink cuts it after
   * its drain's time), and one that is not live yet starts nothing more.
   */
  finish: AbortSignal;
  /** The stream went live (past SYNCED): the sink's stop lets it take what is committed before it ends. */
  onLive(): void;
  /** How long a subscriber may take nothing of what is read for it (catch-up, snapshot, a stop's drain) till closed. */
  stallMs: number;
  /** How often a filtered live stream is told the version its reading has passed (wire.ts, progressLine). */
  progressMs: number;
  onReset(reason: string): void;
  onOverflow(): void;
  onStall(): void;
  /** A read of the store failed (down, or this replica cut off from it): the stream ends with `retry`. */
  onStoreReadFailed(error: unknown): void;
  /** The stop's drain gave up a read of the store left unanswered for DRAIN_READ_WAIT_MS: the stream ends there. */
  onDrainReadGivenUp(): void;
}

/** Why a stream starts over: `code` as the NATS replay names it (protocol/replay.ts), `reason` in words. */
export interface ResetCause {
  code: ResetReason;
  reason: string;
}

/** Ends a stream without an event: the EventSource keeps its Last-Event-ID and comes back after `retry`. */
const COME_BACK = `retry: ${STORE_UNREADABLE_RETRY_MS}\n\n`;

const BEHIND_RETENTION: ResetCause = { code: "behind-retention", reason: "resume point is older than retention" };

/** `resume` is undefined only when `code` is "no-resume-point". */
function inWords(code: ResetReason, log: CommittedLog, resume: Position | undefined): ResetCause {
  switch (code) {
    case "no-resume-point":
      return { code, reason: "no resume point" };
    case "other-epoch":
      return {
        code,
        reason: `resume point is of epoch ${resume!.epoch}, the store's is ${log.epoch} (the store was recreated)`,
      };
    case "ahead-of-log":
      return { code, reason: `resume point ${resume!.version} is ahead of the log (head ${log.head()})` };
    case "behind-retention":
      return BEHIND_RETENTION;
  }
}

export async function runSession(session: Session): Promise<void> {
  const { log, stream, resume, signal } = session;
  let reason: ResetReason | undefined;
  try {
    reason = await checkResumePoint(log, stream, resume, signal);
  } catch (error) {
    if (!isStoreUnreadable(error)) throw error;
    session.channel.write(COME_BACK);
    return;
  }
  let problem = reason && inWords(reason, log, resume);
  while (isOpen(session) && !session.finish.aborted) {
    try {
      const position =
        problem === undefined ? await catchUp(session, session.resume!.version) : await reset(session, problem);
      await live(session, position);
      return;
    } catch (error) {
      if (error instanceof StoreReadFailed) {
        // A read given up because the client left (its signal aborted it) is no failure of the store's.
        if (!isOpen(session)) return;
        // As a follower behind an unreadable store answers: the EventSource keeps its Last-Event-ID, comes back.
        session.onStoreReadFailed(error.error);
        session.channel.write(COME_BACK);
        return;
      }
      // A prune the log heard of only as it read, or one that overtook the subscriber while it caught up.
      if (!isBehindRetention(error)) throw error;
      problem = BEHIND_RETENTION;
    }
  }
}

function isOpen(session: Session): boolean {
  return !session.signal.aborted && !session.channel.isClosed;
}

/** Waits for room in the buffer; a subscriber that takes nothing for `stallMs` is closed (and counted) meanwhile. */
async function room(session: Session): Promise<void> {
  if (await session.channel.waitForRoom(session.stallMs)) return;
  session.channel.close();
  session.onStall();
}

async function paced(session: Session, chunk: string | Uint8Array): Promise<void> {
  await room(session);
  session.channel.write(chunk);
}

/** The missed updates, then SYNCED at the head the catch-up started from. */
async function catchUp(session: Session, after: number): Promise<number> {
  const target = session.log.head();
  await readThrough(session, after, target);
  await paced(session, syncedEvent(session.log.epoch, session.stream, target));
  return target;
}

/**
 * The stream's updates after `after` through `target`, read from the log at the subscriber's pace; resolves to the
 * version read through. `readWaitMs` (a stop's drain): a read not answered by then ends it there, the read going on,
 * its result dropped.
 */
async function readThrough(session: Session, after: number, target: number, readWaitMs?: number): Promise<number> {
  const { log, stream, batchSize, filter } = session;
  let position = after;
  while (position < target && isOpen(session)) {
    // Room first, then the read: a subscriber that takes nothing waits holding its buffer alone, not a batch read and
    // encoded besides (with 400 such streams at 150,000 pods, ~3 MiB more each got kubemeta OOM-killed at 1.5 GiB).
    await room(session);
    if (!isOpen(session)) break;
    const read = log.read({ stream, after: position, to: target, limit: batchSize }).catch(fromStore);
    const updates = await until(read, Date.now() + (readWaitMs ?? Number.POSITIVE_INFINITY), session.signal);
    if (updates === TIMED_OUT) {
      if (session.signal.aborted) throw session.signal.reason;
      session.onDrainReadGivenUp();
      break;
    }
    if (updates.length === 0) break;
    session.channel.write(session.events.encode(stream, updates, filter));
    position = updates[updates.length - 1]!.version;
    if (updates.length < batchSize) break;
  }
  return position;
}

/**
 * RESET, the current state as ADDED events a page (SNAPSHOT_PAGE objects) at a time (see above), then SYNCED at the
 * version that state is consistent with. A subscriber that takes nothing for `stallMs` is closed without SYNCED:
 * its reconnect starts over with a new RESET.
 */
async function reset(session: Session, cause: ResetCause): Promise<number> {
  const { log, stream, filter, channel, signal } = session;
  session.onReset(cause.reason);
  await paced(session, resetEvent(log.epoch, stream, cause));
  // A new store's first lists are not the state yet: reconciled with them, a client would drop what is still coming.
  await log.whole(signal);
  let version = 0;
  let time: string | undefined;
  const query = { stream, namespace: filter.namespace };
  const pages = readingStore(readObjectPages(log, query, filter.kinds, signal));
  for await (const page of pagesUntilAborted(pages, signal)) {
    version = page.version;
    time ??= await snapshotTime(log, version, signal);
    await room(session);
    if (!isOpen(session)) break;
    channel.write(snapshotEvents(log.epoch, stream, page.objects, time));
  }
  await paced(session, syncedEvent(log.epoch, stream, version));
  return version;
}

async function live(session: Session, after: number): Promise<void> {
  const { log, stream, batchSize, filter, channel, signal, finish } = session;
  let position = after;
  // Where the client's last event id is: behind `position` when the latest updates were all filtered out.
  let told = after;
  const progress = isFiltered(filter)
    ? setInterval(() => {
        if (position <= told || !channel.hasRoom()) return;
        channel.write(progressLine(log.epoch, position));
        told = position;
      }, session.progressMs)
    : undefined;
  session.onLive();
  // A log that serves the store no more (CommittedLog.retired) moves no further: its client is to go elsewhere.
  const following = AbortSignal.any([signal, finish, ...(log.retired ? [log.retired] : [])]);
  try {
    // follow() gives up a read of the store under way as `following` aborts (its stream closed, the stop's finish).
    for await (const batch of readingStore(log.follow({ stream, after, batchSize, signal: following }))) {
      if (!channel.hasRoom()) {
        channel.write(overflowEvent(log.epoch, stream, position));
        channel.close();
        session.onOverflow();
        return;
      }
      channel.write(session.events.encode(stream, batch, filter));
      const last = batch[batch.length - 1]!;
      position = last.version;
      if (matches(filter, last)) told = position;
    }
    // The sink stops (README, Lifecycle): what the stop committed last goes out before the stream ends, and a filtered
    // stream's id goes as far, for the reconnect that follows; as far as it read, when the log serves no more.
    const retired = log.retired?.aborted === true;
    if (!finish.aborted && !retired) return;
    // A read the store holds is given up as a consume sink's drain gives it up: the stream ends where it is.
    if (!retired) position = await readThrough(session, position, log.head(), DRAIN_READ_WAIT_MS);
    if (progress && position > told) channel.write(progressLine(log.epoch, position));
    if (retired) channel.write(COME_BACK);
  } finally {
    clearInterval(progress);
  }
}
