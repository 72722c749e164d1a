/**
 * Following streams over NATS: a subscription per stream subject, the gap rule on each
 * message, and `<prefix>.replay` requests (protocol/replay.ts) to start, to fill a
 * gap, after a reconnect, now and then (a recheck), and when the epoch changes. The NatsConnection is the caller's:
 * servers, credentials, TLS and reconnect policy stay in its hands, and this module loads
 * no NATS package at run time (any NatsConnection of the v3 line will do: node, bun, ws).
 */
import type { Msg, NatsConnection, Subscription as NatsSubscription } from "@nats-io/transport-node";
import { Backoff, sleep } from "../protocol/retry.ts";
import { checkBackoff, checkMs } from "./durations.ts";
import type { ReplayChunk, ReplayRequestMessage } from "../protocol/replay.ts";
import { defaultPrefix, PREFIX_PATTERN, subjectsFor } from "../protocol/subjects.ts";
import { formatPosition } from "../protocol/position.ts";
import { envelopeProblem, type Envelope } from "../protocol/envelope.ts";
import { StreamCaches, type InformerHandlers, type StreamCache, type Subscription } from "./cache.ts";
import { ReplayRefusedError, requestReplay } from "./nats-replay.ts";

export interface NatsSubscribeOptions extends InformerHandlers {
  /** An open connection; it stays yours (stop() leaves it open). Reconnecting forever is advised. */
  nc: NatsConnection;
  /** The sink's subject prefix; or give `cluster` for the default `kubemeta.<cluster>`. */
  prefix?: string;
  cluster?: string;
  /** `all`, `shared` or `node/<node name>`: a node agent takes `node/<its name>` and `shared`. */
  streams: string[];
  /** A replay that sends nothing for this long is asked again (default 5 s). */
  replayTimeoutMs?: number;
  /** Delays between replay attempts while kubemeta does not answer (defaults 100 ms to 5 s). */
  retry?: { initialMs?: number; maxMs?: number };
  /** The inbox prefix of the connection, when it is not `_INBOX` (accounts with restricted inboxes). */
  inboxPrefix?: string;
  /**
   * About this often (±25 %), each stream asks for a replay from its position, as after a reconnect (default 5 min;
   * 0: never). What kubemeta's sink could not publish (its own NATS connection away for longer than the store's
   * retention: it goes on from the head) shows no gap on a stream that stays quiet; a recheck finds it.
   */
  recheckMs?: number;
}

const RECHECK_MS = 300_000;

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

export function subscribeNats(options: NatsSubscribeOptions): Subscription {
  const { nc } = options;
  const prefix = options.prefix ?? (options.cluster !== undefined ? defaultPrefix(options.cluster) : undefined);
  if (prefix === undefined)
    throw new TypeError("give the sink's subject `prefix`, or the `cluster` name it defaults from");
  if (!PREFIX_PATTERN.test(prefix))
    throw new RangeError(
      `prefix: ${prefix} is not a subject prefix (tokens of letters, digits, _ and -, dot-separated)`,
    );
  const inboxPrefix = options.inboxPrefix ?? "_INBOX";
  // A space in it would reach the server in a SUB line, which it answers by closing the connection.
  if (!PREFIX_PATTERN.test(inboxPrefix))
    throw new RangeError(`inboxPrefix: ${inboxPrefix} is not one (tokens of letters, digits, _ and -, dot-separated)`);
  // kubemeta answers no reply subject under its own prefix: every replay would go unanswered.
  if (inboxPrefix === prefix || inboxPrefix.startsWith(`${prefix}.`))
    throw new RangeError(`inboxPrefix: ${inboxPrefix} is under the prefix ${prefix}, where kubemeta sends no reply`);
  const { recheckMs = RECHECK_MS } = options;
  checkMs("recheckMs", recheckMs, "for never");
  checkMs("replayTimeoutMs", options.replayTimeoutMs);
  checkBackoff("retry", options.retry);
  const subjects = subjectsFor(prefix);
  const caches = new StreamCaches(options.streams, options);
  const stopped = new AbortController();

  class Follower {
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
    /**
     * A replay left versions out (too large for any message: not published live either). What they did is unknown
     * here (an oversized DELETED leaves its object behind), so the stream's state is asked for next: it leaves out
     * the objects too large to send, as every consumer's does.
     */
    private leftOut = false;
    private readonly subscription: NatsSubscription;

    constructor(private readonly cache: StreamCache) {
      const subject = subjects.of(cache.stream)!;
      // Subscribed before the first replay is sent on the same connection: nothing falls in between.
      this.subscription = nc.subscribe(subject, { callback: (error, msg) => this.receive(error, msg) });
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
      while (!stopped.signal.aborted && !nc.isClosed()) {
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
      this.subscription.unsubscribe();
    }

    notify(): void {
      const wake = this.wake;
      this.wake = undefined;
      wake?.();
    }

    private receive(error: Error | null, msg: Msg): void {
      if (error) {
        this.cache.report(error);
        return;
      }
      let envelope: Envelope;
      try {
        envelope = msg.json<Envelope>();
      } catch (failure) {
        this.cache.report(new Error(`unreadable message on ${msg.subject}`, { cause: failure }));
        return;
      }
      // Only an envelope of this stream may move the position: anything else published here is left out.
      const problem =
        envelopeProblem(envelope) ?? (envelope.stream === this.cache.stream ? undefined : `stream ${envelope.stream}`);
      if (problem) {
        this.cache.report(
          new Error(`a message on ${msg.subject} is not an update of ${this.cache.stream}: ${problem}`),
        );
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
                new Error(
                  `missed updates of ${cache.stream} between ${cache.position} and ${envelope.prev}; replaying`,
                ),
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
      const backoff = new Backoff({ initialMs: options.retry?.initialMs ?? 100, maxMs: options.retry?.maxMs ?? 5_000 });
      const { cache } = this;
      let fresh = false;
      let shortReplies = 0;
      while (!stopped.signal.aborted && !nc.isClosed()) {
        // A version of another epoch bounds nothing: the replay goes up to the head.
        const to = wanted.epoch === cache.epoch ? wanted.to : undefined;
        if (to !== undefined && to <= cache.position && !fresh) return;
        const from = cache.hasPosition && !fresh ? formatPosition(cache.epoch!, cache.position) : null;
        const request: ReplayRequestMessage = { stream: cache.stream, from, to: from === null ? undefined : to };
        try {
          await requestReplay({
            nc,
            subject: subjects.replay,
            inboxPrefix,
            payload: JSON.stringify(request),
            silenceMs: options.replayTimeoutMs ?? 5_000,
            signal: stopped.signal,
            take: (chunk) => this.take(chunk),
          });
        } catch (error) {
          cache.abandonReset();
          if (stopped.signal.aborted) return;
          cache.report(error);
          // Asked again as it was, it would be refused again, for ever: the stream's state needs no position.
          if (error instanceof ReplayRefusedError) fresh = true;
          await sleep(backoff.next(), stopped.signal);
          continue;
        }
        // Messages of another epoch still waiting were sent before the state the replay brought.
        this.pending.splice(0, this.pending.length, ...this.pending.filter((e) => e.epoch === cache.epoch));
        if (this.leftOut && from !== null) {
          this.leftOut = false;
          fresh = true;
          cache.report(new Error(`a replay of ${cache.stream} left versions out; asking for the stream's state`));
          continue;
        }
        this.leftOut = false;
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
        await sleep(backoff.next(), stopped.signal);
      }
    }

    private take(chunk: ReplayChunk): void {
      const { cache } = this;
      if (chunk.seq === 0 && chunk.reset) cache.beginReset(chunk.reset);
      if (chunk.oversized?.length) {
        this.leftOut = true;
        cache.report(
          new Error(`versions ${chunk.oversized.join(", ")} exceed the server's max_payload and were left out`),
        );
      }
      for (const envelope of chunk.updates) {
        if (cache.resetting) cache.stage(envelope);
        else if (!cache.isDuplicate(envelope)) cache.apply(envelope);
      }
      if (!chunk.last) return;
      if (cache.resetting) cache.completeReset(chunk.epoch, chunk.through!);
      else cache.advance(chunk.epoch, chunk.through!);
    }
  }

  const followers = caches.caches.map((cache) => new Follower(cache));
  const statuses = nc.status();
  const watching = watchReconnects();
  const rechecking = recheck(recheckMs);
  const runs = followers.map((f) => f.run());

  /** A gap shows only when a later message comes; after a reconnect every stream asks at once. */
  async function watchReconnects(): Promise<void> {
    for await (const status of statuses) {
      if (status.type === "reconnect") for (const follower of followers) follower.want({});
    }
  }

  /**
   * Spread out (±25 %), so that thousands of agents started together do not ask all at once. Ends with the
   * connection too: its timer must not keep alive a process that closed it without stop().
   */
  async function recheck(everyMs: number): Promise<void> {
    if (everyMs <= 0) return;
    const closed = new AbortController();
    void nc.closed().then(() => closed.abort());
    const ended = AbortSignal.any([stopped.signal, closed.signal]);
    while (!ended.aborted) {
      await sleep(everyMs * (0.75 + Math.random() / 2), ended);
      if (!ended.aborted) for (const follower of followers) follower.want({});
    }
  }

  return {
    synced: caches.synced,
    objects: (stream) => caches.objects(stream),
    async stop() {
      if (stopped.signal.aborted) return;
      stopped.abort();
      for (const follower of followers) follower.notify();
      (statuses as { stop?(): void }).stop?.();
      await Promise.all([...runs, watching, rechecking]);
    },
  };
}
