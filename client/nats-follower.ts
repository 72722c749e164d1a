/**
 * One stream followed over NATS (nats.ts): its subscription, the gap rule on each message, and the replays that start
 * it, fill a gap, follow a reconnect or a recheck, and cross a change of epoch, one at a time (a reply's chunks
 * applied: nats-replay-chunks.ts).
 */
import type { Msg, NatsConnection } from "@nats-io/transport-node";
import { Backoff, sleep, until } from "../protocol/retry.ts";
import type { ReplayRequestMessage } from "../protocol/replay.ts";
import type { Subjects } from "../protocol/subjects.ts";
import { formatPosition } from "../protocol/position.ts";
import { envelopeProblem, type Envelope } from "../protocol/envelope.ts";
import type { StreamCache, StreamCaches } from "./cache.ts";
import { ReplayRefusedError, requestReplay } from "./nats-replay.ts";
import { Paused, ReplayChunks } from "./nats-replay-chunks.ts";
import { ReplayWindow } from "./nats-replay-window.ts";
import { keepStreamSubscription } from "./nats-stream-subscription.ts";
import type { PublishRefusals } from "./nats-permissions.ts";

/** What every stream's follower shares: the connection, the subjects, the replay settings, the caches. */
export interface FollowerContext {
  nc: NatsConnection;
  subjects: Subjects;
  inboxPrefix: string;
  /** The connection's refusals to publish replay requests. */
  refusals: PublishRefusals;
  /** A replay that sends nothing for this long is asked again. */
  replayTimeoutMs: number;
  /** Delays between replay attempts while kubemeta does not answer, and between subscriptions the server refused. */
  retry: { initialMs: number; maxMs: number };
  /** Aborted by the subscription's stop(), or once the connection is closed. */
  ended: AbortSignal;
  caches: StreamCaches;
  /** A promise while the callbacks' output cannot go further (subscribeNats's `paused`): nothing is taken meanwhile. */
  paused: () => Promise<void> | undefined;
}

/** Messages held while a replay runs; past this the oldest half is dropped (a replay brings them back). */
const MAX_PENDING = 100_000;
/**
 * Replies that end below the `to` asked (a replica answering from a head behind the leader's) asked again, with
 * backoff, before the stream's state is asked instead: the updates exist, since a message named them.
 */
const MAX_SHORT_REPLIES = 8;

/** A replay to ask for: from the position held, up to `to` (inclusive, a version of `epoch`) when set. */
interface Wanted {
  to?: number;
  epoch?: string;
}

export class Follower {
  private readonly pending: Envelope[] = [];
  private wanted: Wanted | undefined = {};
  private wake: (() => void) | undefined;
  /**
   * The position (`<epoch>:<prev>`) a gap replay was last asked up to. The log has every version a message
   * carries (it is published after its commit), so a replay covers the gap, if need be asked again (replay());
   * should it still not, after a reset too, the log does not have it (a message from elsewhere): the message
   * applies rather than asking the same for ever. With its epoch: after a wipe, versions count from 1 again.
   */
  private askedUpTo: string | undefined;
  /** Messages were dropped while paused: a replay brings them back. */
  private dropped = false;
  private readonly window = new ReplayWindow();
  private readonly chunks: ReplayChunks;
  /** The stream's subscription, kept until the end: resolves then. */
  private readonly subscribed: Promise<void>;
  private readonly context: FollowerContext;
  private readonly cache: StreamCache;

  constructor(context: FollowerContext, cache: StreamCache) {
    this.context = context;
    this.cache = cache;
    this.chunks = new ReplayChunks(cache, this.window, () => context.paused());
    const subject = context.subjects.of(cache.stream)!;
    this.subscribed = keepStreamSubscription({
      nc: context.nc,
      subject,
      retry: context.retry,
      ended: context.ended,
      onMessage: (msg) => this.receive(msg),
      onRefused: (error, retryInMs) =>
        cache.report(
          new Error(
            `the NATS server refused the subscription to ${subject}: ${error.message}; ` +
              `subscribing again in ${retryInMs} ms`,
            { cause: error },
          ),
        ),
      // Updates published while it was away show no gap until the next one comes, which may be long on a quiet stream.
      onResumed: () => this.want({}),
    });
  }

  want(wanted: Wanted): void {
    const queued = this.wanted;
    // A replay up to the head covers any bounded one.
    if (!queued || wanted.to === undefined) this.wanted = wanted;
    else if (queued.to !== undefined)
      this.wanted = queued.epoch === wanted.epoch ? { to: Math.max(queued.to, wanted.to), epoch: wanted.epoch } : {};
    this.notify();
  }

  async run(): Promise<void> {
    const { nc, ended } = this.context;
    while (!ended.aborted && !nc.isClosed()) {
      const backlog = this.context.paused();
      if (backlog) {
        await until(backlog, Infinity, ended);
        continue;
      }
      // Dropped while paused (a reset's replay under way went on meanwhile): brought back from the position held.
      if (this.dropped) {
        this.dropped = false;
        this.want({});
      }
      const wanted = this.wanted;
      if (wanted) {
        this.wanted = undefined;
        await this.replay(wanted);
        continue;
      }
      if (this.pending.length > 0) {
        this.drain();
        continue;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
    await this.subscribed;
  }

  notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private receive(msg: Msg): void {
    if (this.context.paused()) {
      this.dropped = true;
      this.window.backedUp();
      return;
    }
    let envelope: Envelope;
    try {
      envelope = msg.json<Envelope>();
    } catch (failure) {
      this.cache.report(new Error(`unreadable message on ${msg.subject}: ${String(failure)}`, { cause: failure }));
      return;
    }
    // Only an envelope of this stream may move the position: anything else published here is left out.
    const problem =
      envelopeProblem(envelope) ?? (envelope.stream === this.cache.stream ? undefined : `stream ${envelope.stream}`);
    if (problem) {
      this.cache.report(new Error(`a message on ${msg.subject} is not an update of ${this.cache.stream}: ${problem}`));
      return;
    }
    this.pending.push(envelope);
    if (this.pending.length > MAX_PENDING) {
      // Replays go unanswered (kubemeta away, or its replay disabled) while updates flow:
      // the older half goes, and a replay up to the head will bring it back.
      this.pending.splice(0, MAX_PENDING / 2);
      this.want({});
    }
    this.notify();
  }

  /** Applies pending messages by the gap rule until one needs a replay. */
  private drain(): void {
    const { cache, pending } = this;
    let taken = 0;
    try {
      for (; taken < pending.length; taken++) {
        if (taken > 0 && this.context.paused()) return;
        const envelope = pending[taken]!;
        if (cache.isDuplicate(envelope)) continue;
        if (envelope.epoch !== cache.epoch) {
          // The replay from a position of the old epoch answers with a reset to the new state.
          this.want({});
          return;
        }
        if (cache.revealsGap(envelope)) {
          const upTo = formatPosition(envelope.epoch, envelope.prev);
          if (this.askedUpTo !== upTo) {
            this.askedUpTo = upTo;
            cache.report(
              new Error(`missed updates of ${cache.stream} between ${cache.position} and ${envelope.prev}; replaying`),
            );
            this.want({ to: envelope.prev, epoch: envelope.epoch });
            return;
          }
          cache.report(
            new Error(
              `a replay of ${cache.stream} did not reach version ${envelope.prev}; ` +
                `applying ${envelope.version} over the gap`,
            ),
          );
        }
        cache.apply(envelope);
      }
    } finally {
      pending.splice(0, taken);
    }
  }

  /**
   * Asks until it gets a whole reply that reaches `wanted.to` (or the subscription stops). A request the server
   * refuses is asked again as a reset (from nothing), which needs no position; one answered short of `to` is asked
   * again from where it ended, then, after MAX_SHORT_REPLIES, as a reset.
   */
  private async replay(wanted: Wanted): Promise<void> {
    const { nc, ended, subjects, inboxPrefix, refusals, replayTimeoutMs, retry, caches } = this.context;
    const backoff = new Backoff(retry);
    const { cache } = this;
    let fresh = false;
    let shortReplies = 0;
    while (!ended.aborted && !nc.isClosed()) {
      // A version of another epoch bounds nothing: the replay goes up to the head.
      const to = wanted.epoch === cache.epoch ? wanted.to : undefined;
      if (to !== undefined && to <= cache.position && !fresh) return;
      const from = cache.hasPosition && !fresh ? formatPosition(cache.epoch!, cache.position) : null;
      const asked = this.window.begin(cache.position, to, from === null);
      const request: ReplayRequestMessage = { stream: cache.stream, from, to: from === null ? undefined : asked };
      try {
        await requestReplay({
          nc,
          subject: subjects.replay,
          inboxPrefix,
          refusals,
          payload: JSON.stringify(request),
          silenceMs: replayTimeoutMs,
          signal: ended,
          take: (chunk, bytes) => this.chunks.take(chunk, bytes),
        });
      } catch (error) {
        cache.abandonReset();
        if (ended.aborted) return;
        if (error instanceof Paused) {
          this.window.cut(cache.position);
          await this.unpaused();
          continue;
        }
        cache.report(error);
        // Asked again as it was, it would be refused again, for ever: the stream's state needs no position.
        if (error instanceof ReplayRefusedError) fresh = true;
        await sleep(backoff.next(), ended);
        continue;
      }
      // Messages of another epoch still waiting were sent before the state the replay brought.
      this.pending.splice(0, this.pending.length, ...this.pending.filter((e) => e.epoch === cache.epoch));
      // A reset leaves out what no message can hold, as every consumer's does: only a replay's gaps need the state.
      if (this.chunks.leftOut && !this.chunks.wasReset) {
        this.chunks.leftOut = false;
        fresh = true;
        cache.report(new Error(`a replay of ${cache.stream} left versions out; asking for the stream's state`));
        continue;
      }
      this.chunks.leftOut = false;
      // The next window once the output drained: asked before, it would be cut at its first chunk.
      if (asked !== to && !this.chunks.wasReset && this.window.next(cache.position, asked!)) {
        await this.unpaused();
        continue;
      }
      const short = to !== undefined && wanted.epoch === cache.epoch && cache.position < to;
      if (!short || (fresh && shortReplies >= MAX_SHORT_REPLIES)) {
        caches.markSynced(cache);
        return;
      }
      shortReplies++;
      fresh = shortReplies >= MAX_SHORT_REPLIES;
      cache.report(
        new Error(
          `a replay of ${cache.stream} ended at ${cache.position}, short of ${to}; asking again ` +
            (fresh ? "for the stream's state" : `from ${cache.position + 1}`),
        ),
      );
      await sleep(backoff.next(), ended);
    }
  }

  private async unpaused(): Promise<void> {
    await until(this.context.paused() ?? Promise.resolve(), Infinity, this.context.ended);
  }
}
