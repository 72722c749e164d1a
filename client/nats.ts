/**
 * Following streams over NATS: a subscription per stream subject, the gap rule on each
 * message, and `<prefix>.replay` requests (protocol/replay.ts) to start, to fill a
 * gap, after a reconnect, now and then (a recheck), and when the epoch changes. The NatsConnection is the caller's:
 * servers, credentials, TLS and reconnect policy stay in its hands, and this module loads
 * no NATS package at run time (any NatsConnection of the v3 line will do: node, bun, ws).
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { sleep } from "../protocol/retry.ts";
import { checkBackoff, checkMs } from "./durations.ts";
import { defaultPrefix, PREFIX_PATTERN, subjectsFor } from "../protocol/subjects.ts";
import { StreamCaches, type InformerHandlers, type Subscription } from "./cache.ts";
import { Follower, type FollowerContext } from "./nats-follower.ts";

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

export function subscribeNats(options: NatsSubscribeOptions): Subscription {
  const { nc } = options;
  // Plain JavaScript callers have no type to tell them.
  if (typeof nc?.subscribe !== "function")
    throw new TypeError("nc: give a connection from the NATS client's connect()");
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
  const retry = checkBackoff("retry", options.retry, { initialMs: 100, maxMs: 5_000 });
  const caches = new StreamCaches(options.streams, options);
  const stopped = new AbortController();
  // A connection closed without stop() ends everything too: no replay or timer may keep its process alive.
  const closed = new AbortController();
  void nc.closed().then(() => closed.abort());
  const ended = AbortSignal.any([stopped.signal, closed.signal]);
  ended.addEventListener("abort", () => caches.end(), { once: true });

  const context: FollowerContext = {
    nc,
    subjects: subjectsFor(prefix),
    inboxPrefix,
    replayTimeoutMs: options.replayTimeoutMs ?? 5_000,
    retry,
    ended,
    caches,
  };
  const followers = caches.caches.map((cache) => new Follower(context, cache));
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

  /** Spread out (±25 %), so that thousands of agents started together do not ask all at once. */
  async function recheck(everyMs: number): Promise<void> {
    if (everyMs <= 0) return;
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
