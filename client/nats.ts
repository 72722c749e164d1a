/**
 * Following streams over NATS: a subscription per stream subject, the gap rule on each
 * message, and `<prefix>.replay` requests (protocol/replay.ts) to start, to fill a
 * gap, after a reconnect, now and then (a recheck), and when the epoch changes. The NatsConnection is the caller's:
 * servers, credentials, TLS and reconnect policy stay in its hands, and this module loads
 * no NATS package at run time (any NatsConnection of the v3 line will do: node, bun, ws).
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { sleep } from "../protocol/retry.ts";
import * as v from "valibot";
import {
  backoff,
  type EntriesOf,
  handler,
  handlerEntries,
  milliseconds,
  parseOptions,
  strictOptions,
  streamsSchema,
} from "./options.ts";
import {
  DEFAULT_INBOX_PREFIX,
  defaultPrefix,
  inboxPrefixProblem,
  PREFIX_PATTERN,
  subjectsFor,
} from "../protocol/subjects.ts";
import { StreamCaches, type InformerHandlers, type Subscription } from "./cache.ts";
import { Follower, type FollowerContext } from "./nats-follower.ts";
import { PublishRefusals } from "./nats-permissions.ts";

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
  /**
   * Asked as messages and replay chunks come: a promise while what the callbacks hand on cannot go further (a pipe
   * nobody reads), resolved once it can. Meanwhile the stream's messages are dropped and a replay under way is cut
   * (bounded: nothing piles up in this process); once it resolves, a replay from the position held brings them back.
   */
  paused?: () => Promise<void> | undefined;
}

const RECHECK_MS = 300_000;
const REPLAY_TIMEOUT_MS = 5_000;
const RETRY_MS = { initialMs: 100, maxMs: 5_000 };
const PREFIX_RULE = "tokens of letters, digits, _ and -, dot-separated";

/** A subject prefix (the sink's, or the connection's inboxes'): a space in one would reach the server in a SUB line. */
const subjectPrefix = v.pipe(
  v.string(`a subject prefix (${PREFIX_RULE})`),
  v.regex(PREFIX_PATTERN, ({ input }) => `${input} is not a subject prefix (${PREFIX_RULE})`),
);

/**
 * The sink's prefix: one its config refuses (`_INBOX`) is no kubemeta's, and its replays would go unanswered for
 * ever.
 */
const sinkPrefix = v.pipe(
  subjectPrefix,
  v.check(
    (prefix) => inboxPrefixProblem(prefix) === undefined,
    ({ input }) => inboxPrefixProblem(input)!,
  ),
);

/** One signal per connection, aborted once it has closed (see connectionClosed). */
const closedSignals = new WeakMap<NatsConnection, AbortSignal>();

/**
 * Aborted once `nc` has closed. A subscription listens to it until it ends rather than chain on `nc.closed()`: a
 * promise keeps its reactions until it settles, so each subscription stopped on a connection that stays open would
 * stay reachable (its caches, every object of its streams) for as long as the connection lives.
 */
function connectionClosed(nc: NatsConnection): AbortSignal {
  let signal = closedSignals.get(nc);
  if (signal === undefined) {
    const closed = new AbortController();
    void nc.closed().then(() => closed.abort());
    signal = closed.signal;
    closedSignals.set(nc, signal);
  }
  return signal;
}

/** subscribeNats's options as it takes them; its output has the prefix to use, `cluster`'s when that is given. */
const optionsSchema = v.pipe(
  strictOptions("subscribeNats", {
    // Plain JavaScript callers have no type to tell them.
    nc: v.custom<NatsConnection>(
      (nc) => typeof (nc as Partial<NatsConnection> | undefined)?.subscribe === "function",
      "give a connection from the NATS client's connect()",
    ),
    prefix: v.optional(sinkPrefix),
    cluster: v.optional(v.pipe(v.string("the cluster's name"), v.minLength(1, "the cluster's name, not empty"))),
    streams: streamsSchema,
    replayTimeoutMs: v.optional(milliseconds(), REPLAY_TIMEOUT_MS),
    retry: backoff(RETRY_MS),
    inboxPrefix: v.optional(subjectPrefix, DEFAULT_INBOX_PREFIX),
    recheckMs: v.optional(milliseconds("for never"), RECHECK_MS),
    paused: handler,
    ...handlerEntries,
  } satisfies EntriesOf<NatsSubscribeOptions>),
  v.check(
    ({ prefix, cluster }) => (prefix === undefined) !== (cluster === undefined),
    ({ input: { prefix } }) =>
      prefix === undefined
        ? "give the sink's subject `prefix`, or the `cluster` name it defaults from"
        : "give the sink's subject `prefix` or the `cluster` name it defaults from, not both",
  ),
  v.transform(({ prefix, cluster, ...rest }) => ({ ...rest, prefix: prefix ?? defaultPrefix(cluster!) })),
  // kubemeta answers no reply subject under its own prefix: every replay would go unanswered.
  v.forward(
    v.check(
      ({ prefix, inboxPrefix }) => inboxPrefix !== prefix && !inboxPrefix.startsWith(`${prefix}.`),
      ({ input }) => `${input.inboxPrefix} is under the prefix ${input.prefix}, where kubemeta sends no reply`,
    ),
    ["inboxPrefix"],
  ),
);

export function subscribeNats(options: NatsSubscribeOptions): Subscription {
  const { nc, prefix, inboxPrefix, recheckMs, replayTimeoutMs, retry } = parseOptions(optionsSchema, options);
  const caches = new StreamCaches(options.streams, options);
  let stopped = false;
  // A connection closed without stop() ends everything too: no replay or timer may keep its process alive.
  const ending = new AbortController();
  const ended = ending.signal;
  ended.addEventListener("abort", () => caches.end(), { once: true });
  const closed = connectionClosed(nc);
  const endOnClose = () => ending.abort();
  if (closed.aborted) endOnClose();
  else closed.addEventListener("abort", endOnClose, { once: true });

  const subjects = subjectsFor(prefix);
  const context: FollowerContext = {
    nc,
    subjects,
    inboxPrefix,
    refusals: new PublishRefusals(subjects.replay),
    replayTimeoutMs,
    retry,
    ended,
    caches,
    paused: () => options.paused?.(),
  };
  const followers = caches.caches.map((cache) => new Follower(context, cache));
  const statuses = nc.status();
  const watching = watchStatuses();
  const rechecking = recheck(recheckMs);
  const runs = followers.map((f) => f.run());

  /**
   * A gap shows only when a later message comes; after a reconnect every stream asks at once. A replay request the
   * server refuses is told here only.
   */
  async function watchStatuses(): Promise<void> {
    for await (const status of statuses) {
      if (status.type === "reconnect") for (const follower of followers) follower.want({});
      else if (status.type === "error") context.refusals.take(status.error);
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
      if (stopped) return;
      stopped = true;
      closed.removeEventListener("abort", endOnClose);
      ending.abort();
      for (const follower of followers) follower.notify();
      (statuses as { stop?(): void }).stop?.();
      await Promise.all([...runs, watching, rechecking]);
    },
  };
}
