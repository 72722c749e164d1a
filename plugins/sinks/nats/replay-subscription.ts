/**
 * The replay responder's subscription, kept standing. The server refuses it when kubemeta's user may not subscribe
 * to `<prefix>.replay`, and the client then drops it for good, on its reconnects too. It is made again on a backoff
 * while the connection lasts, and at once at each reconnect: an operator who grants the permission with a reload of
 * the server's configuration keeps the connection, so waiting for a reconnect alone could wait for ever.
 *
 * Whether it stands is known from a round trip after each subscription (and reconnect): the server answers a SUB it
 * refuses before the PING that follows it.
 */
import type { Msg, NatsConnection, Subscription } from "@nats-io/transport-node";
import { Backoff, firstAbort, until } from "../../../protocol/retry.ts";
import { type Counter, type Gauge, type Logger, rateLimitedWarn } from "../../../sdk/telemetry.ts";

export interface ReplaySubscriptionOptions {
  nc: NatsConnection;
  subject: string;
  queue: string;
  /** Each request; called only while the subscription is not stopped. */
  onRequest(msg: Msg): void;
  /** Delays between subscriptions the server refuses: `reconnect.*`'s scale, from a few seconds. */
  backoff: { initialMs: number; maxMs: number };
  /** `kubemeta_nats_replay_subscription_failures_total`. */
  refusals: Counter;
  /** `kubemeta_nats_replay_subscribed`: 1 while the subscription stands, 0 otherwise. */
  subscribed: Gauge;
  labels: Record<string, string>;
  logger: Logger;
  /** Resolves true once connected (at once when it is), false when closed for good or `signal` aborted. */
  ready(signal: AbortSignal): Promise<boolean>;
  /** The connection's session of now: it aborts at the next disconnect (or close). */
  session(): AbortSignal;
}

export interface ReplaySubscription {
  /** Unsubscribes, and tries no more; nothing is left waiting (no timer). */
  stop(): void;
}

/** One subscription made, and what ends it: the server's refusal (its error the reason). */
interface Made {
  subscription: Subscription;
  refused: AbortController;
}

export function keepReplaySubscription(options: ReplaySubscriptionOptions): ReplaySubscription {
  const { nc, labels, logger } = options;
  // A refusal is logged at most once a minute: it comes back with every try while the permission is missing.
  const warn = rateLimitedWarn(logger);
  const stopped = new AbortController();
  const backoff = new Backoff({ ...options.backoff, jitter: "equal" });

  function subscribe(): Made {
    const refused = new AbortController();
    const subscription = nc.subscribe(options.subject, {
      queue: options.queue,
      callback(error, msg) {
        if (error) {
          // Each refusal, that of the client's resubscription at a reconnect included.
          options.refusals.inc(labels);
          return refused.abort(error);
        }
        if (!stopped.signal.aborted) options.onRequest(msg);
      },
    });
    return { subscription, refused };
  }

  let made = subscribe();

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
      // It stands until it is refused (the client resends it at a reconnect, where the server may refuse it) or the
      // connection drops.
      await firstAbort([stopped.signal, session, made.refused.signal]);
      standing(0);
      if (!made.refused.signal.aborted || stopped.signal.aborted) continue;
      const retryInMs = backoff.next();
      warn("the NATS server refused the replay subscription; subscribing again on a backoff", {
        error: made.refused.signal.reason,
        subject: options.subject,
        retryInMs,
      });
      // A reconnect ends the wait: the permission may come with a restart of the server.
      await firstAbort([stopped.signal, session], retryInMs);
    }
  }

  void keep().catch((error: unknown) => {
    // nats-core's subscribe throws on a closed or draining connection only, which connectedStill rules out.
    logger.error("the replay subscription is no longer kept; replay stays off on this connection", { error });
  });

  return {
    stop() {
      options.subscribed.set(0, labels);
      stopped.abort();
      made.subscription.unsubscribe();
    },
  };
}
