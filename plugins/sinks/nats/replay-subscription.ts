/**
 * The replay responder's subscription, kept standing. The server refuses it when kubemeta's user may not subscribe
 * to `<prefix>.replay`, and the client then drops it for good, on its reconnects too. It is made again on a backoff
 * while the connection lasts, and at once at each reconnect: an operator who grants the permission with a reload of
 * the server's configuration keeps the connection, so waiting for a reconnect alone could wait for ever.
 *
 * Whether it stands is known from a round trip after each subscription (and reconnect): the server answers a SUB it
 * refuses before the PING that follows it.
 */
import { type Msg, type NatsConnection, PermissionViolationError, type Subscription } from "@nats-io/transport-node";
import { Backoff, firstAbort, TIMED_OUT, until } from "../../../protocol/retry.ts";
import { type Counter, type Gauge, type Logger, rateLimitedWarn } from "../../../sdk/telemetry.ts";
import { PERMISSIONS_README } from "./permissions.ts";

export interface ReplaySubscriptionOptions {
  nc: NatsConnection;
  subject: string;
  queue: string;
  /** Each request, until the subscription's stop has drained it. */
  onRequest(msg: Msg): void;
  /** Delays between subscriptions the server refuses: `reconnect.*`'s scale, from a few seconds. */
  backoff: { initialMs: number; maxMs: number };
  /** `kubemeta_nats_replay_subscription_failures_total`. */
  refusals: Counter;
  /** `kubemeta_nats_replay_subscribed`: 1 while the subscription stands, 0 otherwise. */
  subscribed: Gauge;
  labels: Record<string, string>;
  logger: Logger;
  /** The NATS user the sink connects as, when known (natsUser): named in the refusal's line. */
  user?: string;
  /** Resolves true once connected (at once when it is), false when closed for good or `signal` aborted. */
  ready(signal: AbortSignal): Promise<boolean>;
  /** The connection's session of now: it aborts at the next disconnect (or close). */
  session(): AbortSignal;
}

export interface ReplaySubscription {
  /**
   * Unsubscribes, and tries no more; resolves once the requests the server sent before it took the unsubscription
   * went to onRequest (a round trip, DRAIN_MS at most), and leaves nothing waiting (no timer).
   */
  stop(): Promise<void>;
}

/**
 * How long a stop waits for the round trip that ends the subscription's drain: the sink's whole stop waits about as
 * long for its connection's (nats.ts), and a connection that stalls would otherwise hold it for ever.
 */
const DRAIN_MS = 2_000;

/** One subscription made, and what ends it: the server's refusal (its error the reason). */
interface Made {
  subscription: Subscription;
  refused: AbortController;
}

/** The sid of a subscription to `subject` the server dropped on a reload of its configuration, if `error` says so. */
function droppedSid(error: Error, subject: string): number | undefined {
  if (!(error instanceof PermissionViolationError) || error.operation !== "subscription") return undefined;
  if (error.subject !== subject) return undefined;
  const sid = /\(sid "(\d+)"\)/.exec(error.message)?.[1];
  return sid === undefined ? undefined : Number(sid);
}

export function keepReplaySubscription(options: ReplaySubscriptionOptions): ReplaySubscription {
  const { nc, labels, logger } = options;
  // A refusal is logged at most once a minute: it comes back with every try while the permission is missing.
  const warn = rateLimitedWarn(logger);
  const stopped = new AbortController();
  const backoff = new Backoff({ ...options.backoff, jitter: "equal" });

  /** Each refusal, that of the client's resubscription at a reconnect included. */
  function refuse(refused: AbortController, error: Error): void {
    options.refusals.inc(labels);
    refused.abort(error);
  }

  function subscribe(): Made {
    const refused = new AbortController();
    const subscription = nc.subscribe(options.subject, {
      queue: options.queue,
      callback(error, msg) {
        if (error) return refuse(refused, error);
        options.onRequest(msg);
      },
    });
    return { subscription, refused };
  }

  let made = subscribe();

  /**
   * A reload of the server's configuration that takes the permission away drops the subscription on the server, which
   * says so naming its sid, not its queue group: the client, matching on the queue group, finds none of its own and
   * keeps it as if it stood (replay off, unnoticed). Told by its sid here, it is a refusal like any other. The
   * statuses end with the connection's close, which follows the stop.
   */
  async function watchDrops(): Promise<void> {
    for await (const status of nc.status()) {
      if (stopped.signal.aborted) return;
      if (status.type !== "error") continue;
      const { subscription, refused } = made;
      if (subscription.isClosed() || droppedSid(status.error, options.subject) !== subscription.getID()) continue;
      subscription.unsubscribe();
      refuse(refused, status.error);
    }
  }

  /** True when a round trip to the server came back with the subscription standing, in the session of `session`. */
  async function stands(session: AbortSignal): Promise<boolean> {
    const flushed = nc.flush().then(
      () => true,
      () => false,
    );
    const answered = (await until(flushed, Infinity, stopped.signal)) === true;
    return answered && !session.aborted && !made.refused.signal.aborted;
  }

  function standing(value: 0 | 1): void {
    if (!stopped.signal.aborted) options.subscribed.set(value, labels);
  }

  /** Connected, and not stopped: false once either is over for good. */
  async function connectedStill(): Promise<boolean> {
    return !stopped.signal.aborted && (await options.ready(stopped.signal)) && !stopped.signal.aborted;
  }

  /** Until the sink stops or the connection closes: after each refusal, a wait, then subscribing again. */
  async function keep(): Promise<void> {
    while (await connectedStill()) {
      const session = options.session();
      if (made.subscription.isClosed()) made = subscribe();
      if (await stands(session)) {
        standing(1);
        backoff.reset();
      }
      // It stands until it is refused (the client resends it at a reconnect, where the server may refuse it; a reload
      // of the server's configuration may drop it) or the connection drops.
      await firstAbort([stopped.signal, session, made.refused.signal]);
      standing(0);
      if (!made.refused.signal.aborted || stopped.signal.aborted) continue;
      const retryInMs = backoff.next();
      warn(`the NATS server refused the replay subscription (${PERMISSIONS_README}); subscribing again on a backoff`, {
        error: made.refused.signal.reason,
        subject: options.subject,
        user: options.user,
        retryInMs,
      });
      // A reconnect ends the wait: the permission may come with a restart of the server.
      await firstAbort([stopped.signal, session], retryInMs);
    }
  }

  void Promise.all([keep(), watchDrops()]).catch((error: unknown) => {
    // nats-core's subscribe throws on a closed or draining connection only, which connectedStill rules out.
    logger.error("the replay subscription is no longer kept; replay stays off on this connection", { error });
  });

  return {
    async stop() {
      options.subscribed.set(0, labels);
      stopped.abort();
      const { subscription } = made;
      if (subscription.isClosed()) return;
      // Unsubscribed at once, the requests already on their way would be dropped on arrival, their requesters left
      // to their timeouts; drained, they reach onRequest until the server confirms it took the unsubscription.
      const drained = subscription.drain().catch(() => {});
      // Not drained in time (a connection down or stalled): gone here all the same.
      if ((await until(drained, Date.now() + DRAIN_MS, options.session())) === TIMED_OUT) subscription.unsubscribe();
    },
  };
}
