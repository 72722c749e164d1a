/**
 * Answers `<prefix>.replay` requests (protocol in protocol/replay.ts) in a queue group,
 * a few at a time. Nothing a requester sends can stop it: a malformed request gets an
 * error reply and is counted, a failure while answering ends that reply with an error, a
 * reply subject kubemeta will not publish to (replies.ts) gets nothing and is counted.
 * Here: who is answered when, and with which reply subjects; what a reply carries is read
 * from the log in replay-content.ts, and published to its requesters by reply-writer.ts.
 */
import type { Msg, NatsConnection } from "@nats-io/transport-node";
import type { CommittedLog } from "../../../sdk/contract.ts";
import { type Counter, type Gauge, type Logger, rateLimitedWarn } from "../../../sdk/telemetry.ts";
import {
  comesBackLater,
  noteBehindRetention,
  reachVersion,
  resetReason,
  retiredReason,
  wholeYet,
} from "../../../sdk/resume.ts";
import { snapshotTurn } from "../../../sdk/snapshot-turns.ts";
import { fromStore, untilAborted } from "../../../sdk/store-reads.ts";
import { refusedReply } from "./replies.ts";
import { replyWriter } from "./reply-writer.ts";
import { replyFailure, STOPPING } from "./reply-failure.ts";
import { type Pending, pendingOf, type ReplayResult, sound } from "./requests.ts";
import { keepReplaySubscription, type ReplaySubscriptionOptions } from "./replay-subscription.ts";
import { ReplayLine } from "./replay-line.ts";
import { ReplayContent } from "./replay-content.ts";
import {
  MalformedRequestError,
  MAX_REQUEST_BYTES,
  type ReplayRequest,
  type ResetReason,
} from "../../../protocol/replay.ts";

export interface ResponderOptions {
  nc: NatsConnection;
  /** The sink's subject prefix: no reply goes under it. */
  prefix: string;
  subject: string;
  queue: string;
  concurrency: number;
  log: CommittedLog;
  logger: Logger;
  user: ReplaySubscriptionOptions["user"];
  /** `kubemeta_nats_replay_requests_total`, by result. */
  requests: Counter;
  /** `kubemeta_nats_replay_subscription_failures_total`: subscriptions the server refused. */
  subscriptionFailures: Counter;
  /** `kubemeta_nats_replay_subscribed`: 1 while the subscription stands. */
  subscribed: Gauge;
  labels: Record<string, string>;
  /** Delays between subscriptions the server refuses. */
  resubscribe: ReplaySubscriptionOptions["backoff"];
  ready: ReplaySubscriptionOptions["ready"];
  session: ReplaySubscriptionOptions["session"];
}

export interface Responder {
  /** Stops taking requests and waits for those being answered, each cut at its next chunk or read (replay-content). */
  stop(): Promise<void>;
}

/** Requests waiting at once for this replica's log to reach their `from` (sdk/resume.ts); past them, told busy. */
const MAX_PARKED = 1_000;
/**
 * Resets that read the state at once, per log, whatever `concurrency` allows: the store's other read transactions
 * stay with HTTP snapshots and the core (sdk/snapshot-turns.ts), and ten resets of `all` at 150,000 pods added
 * +206 MiB at their peak with four at once, +129–176 MiB with two (bench/snapshots.ts, chunks of 64 KiB). A reset
 * waits for its turn holding no slot (replay-line.ts); resets of one stream waiting for a turn are answered together
 * when one comes (takeAlike).
 */
export const RESET_READS = 2;

export function serveReplay(options: ResponderOptions): Responder {
  const { nc, log, logger, requests, labels } = options;
  const answering = new Set<Promise<unknown>>();
  /** Error replies sent outside the slots (refuseAtOnce): a stop waits for them to reach the server. */
  const refusing = new Set<Promise<void>>();
  let stopping = false;
  const stopped = new AbortController();
  /** Requests ahead of this replica's log, waiting for it to get there (sdk/resume.ts). */
  const parked = new Set<Promise<void>>();
  const warn = rateLimitedWarn(logger);
  const whole = wholeYet(log);

  function count(result: ReplayResult, requesters = 1): void {
    requests.inc({ ...labels, result }, requesters);
  }

  const failure = replyFailure({ logger, warn, stopping: () => stopping });
  const content = new ReplayContent(log, count, stopped.signal);
  const reasonFor = (request: ReplayRequest) => resetReason(log, request.stream, request.from);
  // A `to` past the head of a replica behind a store it cannot read: a reply short of it would be asked again, and
  // answered short again by this replica, until the requester gives up and takes the stream's state (a reset).
  const shortOfStore = (request: ReplayRequest) =>
    request.to !== undefined && request.to > log.head() && log.behindStore?.() === true;

  const writerFor = (replies: string[]) => replyWriter(nc, log.epoch, replies);

  /**
   * Takes the waiting requests that the same reply answers: resets of `stream` for the same
   * reason. A flood of resets (agents after a wiped store, or a hostile client) then costs one
   * read of the state, not one per request. One scan of the queue per reset answered.
   */
  function takeAlike(stream: string, reason: ResetReason): Pending[] {
    return line.take(({ request }) => sound(request) && request.stream === stream && reasonFor(request) === reason);
  }

  /** Why an answer started now reads the stream's state: the reset branch of answer(), which needs a turn. */
  function resetOf({ request }: Pending): ResetReason | undefined {
    if (!sound(request) || retiredReason(log)) return undefined;
    const reason = reasonFor(request);
    return reason && whole() && !comesBackLater(log, reason) ? reason : undefined;
  }

  /** Counted behind retention by their first read (answer's false): their reset does not count them again. */
  const readBehind = new WeakSet<Pending>();

  /**
   * Answers `pending`: with the stream's state for resetOf's `reset`, in a turn the line holds for it. False, sending
   * nothing, when its first read finds retention past its `from`: the line has it read the state in a turn.
   */
  async function answer(pending: Pending, reset: ResetReason | undefined): Promise<boolean> {
    let replies = [pending.reply];
    let writer = writerFor(replies);
    try {
      const { request } = pending;
      if (!sound(request)) throw request;
      const reason = reasonFor(request);
      const retired = retiredReason(log);
      if (reset) {
        const alike = takeAlike(request.stream, reset);
        replies = [pending.reply, ...alike.map((entry) => entry.reply)];
        if (reset === "behind-retention")
          for (const entry of [pending, ...alike].filter((one) => !readBehind.has(one))) {
            const behind = entry.request as ReplayRequest;
            const noted = noteBehindRetention(log, behind.stream, behind.from!.version).catch(fromStore);
            await untilAborted(noted, stopped.signal);
          }
        writer = writerFor(replies);
        await content.sendState(request, reset, writer, replies.length);
      } else if (retired) {
        // A reply through this log's head would be short of the store's, its reset's version one the log never gets to.
        count("failed");
        await writer.fail(retired);
      } else if (reason && !whole()) {
        count("unsynced");
        await writer.fail("the store's first sync is under way; ask again later");
      } else if (comesBackLater(log, reason) || (!reason && shortOfStore(request))) {
        // Its `from` may well be the store's (sdk/resume.ts, StoreUnreadableError): not a reason to start over.
        count("failed");
        await writer.fail("this replica cannot read the store yet; ask again later");
      } else {
        // No reason to start over (resetOf found none): the updates after its `from`.
        const from = request.from!.version;
        if (request.to !== undefined && request.to < from) throw new MalformedRequestError("to is before from");
        if (!(await content.sendUpdates(request, from, writer))) {
          readBehind.add(pending);
          return false;
        }
      }
    } catch (error) {
      const said = failure(error, pending);
      // A reply the stop cut is no failure: a rolling update would look like one on every dashboard.
      const result = error instanceof MalformedRequestError ? "malformed" : said === STOPPING ? "stopped" : "failed";
      count(result, replies.length);
      await writer.fail(said).catch(() => {});
    }
    return true;
  }

  const line = new ReplayLine({
    concurrency: options.concurrency,
    resetOf,
    turn: () => snapshotTurn(log, "nats-reset", RESET_READS, stopped.signal),
    answer: (pending, reset) => {
      // A stop waits for each answer under way.
      const done: Promise<boolean> = answer(pending, reset).finally(() => answering.delete(done));
      answering.add(done);
      return done;
    },
    closedOut: (pending) => refuseStopping(pending.reply),
  });

  function onRequest(msg: Msg) {
    const refused = refusedReply(msg.reply, options.prefix);
    if (refused) {
      count("refused");
      return warn("replay request refused, not answered", { reason: refused, reply: msg.reply?.slice(0, 200) });
    }
    const reply = msg.reply!;
    // On its way when the subscription was drained at a stop: told at once, as those the sink holds are.
    if (stopping) return refuseStopping(reply);
    if (msg.data.length > MAX_REQUEST_BYTES) {
      count("malformed");
      warn("malformed replay request", { bytes: msg.data.length });
      return refuseAtOnce(reply, `a replay request is at most ${MAX_REQUEST_BYTES} bytes`);
    }
    const pending = pendingOf(msg, reply);
    const { request } = pending;
    // A position this replica has yet to read (another replica further on gave it) is waited for a moment, outside
    // the slots: no request holds one while the log catches up. A `to` past the head is not: the reply ends at the
    // head, and the requester asks again from there (told to ask again later, if this replica cannot read the store).
    if (sound(request) && reasonFor(request) === "ahead-of-log" && parked.size < MAX_PARKED) {
      const waited: Promise<void> = reachVersion(log, request.from!.version, stopped.signal)
        .catch(() => {})
        .then(() => {
          parked.delete(waited);
          if (stopping) refuseStopping(reply);
          else admit(pending);
        });
      parked.add(waited);
      return;
    }
    // Past those that wait, told to ask again: answered now, it would be a reset, the stream's whole state, where a
    // replay may do once the log gets there. Any other answer (this replica fenced out, a store not synced yet) as
    // ever.
    if (resetOf(pending) === "ahead-of-log") return busy(reply);
    admit(pending);
  }
  const subscription = keepReplaySubscription({
    nc,
    subject: options.subject,
    queue: options.queue,
    onRequest,
    backoff: options.resubscribe,
    refusals: options.subscriptionFailures,
    subscribed: options.subscribed,
    labels,
    logger,
    user: options.user,
    ready: options.ready,
    session: options.session,
  });

  function admit(pending: Pending): void {
    if (!line.admit(pending)) busy(pending.reply);
  }

  function busy(reply: string): void {
    count("busy");
    refuseAtOnce(reply, "busy; ask again later");
  }

  /** A request the stop leaves unanswered: told to ask again, counted as a cut reply is. */
  function refuseStopping(reply: string): void {
    count("stopped");
    refuseAtOnce(reply, STOPPING);
  }

  /** One error chunk, not waiting for a turn. */
  function refuseAtOnce(reply: string, error: string): void {
    const sent: Promise<void> = writerFor([reply])
      .fail(error)
      .catch(() => {})
      .finally(() => refusing.delete(sent));
    refusing.add(sent);
  }

  return {
    async stop() {
      if (stopping) return;
      stopping = true;
      stopped.abort(new Error("the NATS sink is stopping"));
      // Those that never got a slot (or a turn) are told at once, while the connection is open, not left to their
      // timeouts; those being answered are told at their next chunk (the abort), whatever is left of their replies.
      for (const entry of line.close()) refuseStopping(entry.reply);
      await subscription.stop();
      await Promise.allSettled([...answering, ...parked]);
      await Promise.allSettled([...refusing]);
    },
  };
}
