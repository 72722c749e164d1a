/**
 * A stream's subscription (nats-follower.ts), kept standing. The NATS server refuses it when the consumer's user may
 * not subscribe to the stream's subject (at the start, or at a reconnect where the client sends it again) and drops it
 * when a reload of its configuration takes that permission away; nats-core then forgets it for good, and the stream
 * would go quiet with a single word at most. Each such end is told to `onRefused` and the subscription is made again
 * on a backoff; once the server took it (a round trip after it came back without a refusal: the server answers a SUB
 * it refuses before the PING that follows), `onResumed`, for a replay of what was published meanwhile.
 */
import type { Msg, NatsConnection, Subscription } from "@nats-io/transport-node";
import { Backoff, firstAbort, sleep, until } from "../protocol/retry.ts";

export interface StreamSubscriptionOptions {
  nc: NatsConnection;
  subject: string;
  /** Delays between subscriptions the server refused. */
  retry: { initialMs: number; maxMs: number };
  /** Ends the subscription: aborted by the caller's stop(), or once the connection is closed. */
  ended: AbortSignal;
  onMessage(msg: Msg): void;
  /** The server refused or dropped the subscription, saying `error`; it is made again in `retryInMs`. */
  onRefused(error: Error, retryInMs: number): void;
  /** Made again, and the server took it: what was published on the subject meanwhile was missed. */
  onResumed(): void;
}

/**
 * Subscribes at the call (before the caller's first replay goes out on the same connection, so that nothing falls in
 * between; throwing, as nc.subscribe does, on a closed or draining connection) and keeps the subscription until
 * `ended` or the connection's close or drain; resolves then, unsubscribed.
 */
export function keepStreamSubscription(options: StreamSubscriptionOptions): Promise<void> {
  const { nc, subject, ended } = options;
  // Equal jitter: tries at least half the ceiling apart, for a user denied for good costs the server a `Subscription
  // Violation` at each.
  const backoff = new Backoff({ ...options.retry, jitter: "equal" });
  let refused = new AbortController();

  function subscribe(): Subscription {
    const refusal = new AbortController();
    refused = refusal;
    // nats-core hands a subscription an error only when the server refused or dropped it, and then closes it.
    return nc.subscribe(subject, {
      callback: (error, msg) => (error ? refusal.abort(error) : options.onMessage(msg)),
    });
  }

  /** `ended` is aborted once the connection's close has resolved; nc.subscribe throws from its drain on. */
  const over = () => ended.aborted || nc.isClosed() || nc.isDraining();

  async function stands(): Promise<boolean> {
    const flushed = nc.flush().then(
      () => true,
      () => false,
    );
    return (await until(flushed, Infinity, ended)) === true && !refused.signal.aborted;
  }

  let subscription = subscribe();
  async function keep(): Promise<void> {
    for (;;) {
      await firstAbort([ended, refused.signal]);
      if (over()) break;
      const retryInMs = backoff.next();
      options.onRefused(refused.signal.reason as Error, retryInMs);
      await sleep(retryInMs, ended);
      if (over()) break;
      subscription = subscribe();
      if (await stands()) {
        backoff.reset();
        options.onResumed();
      }
    }
    subscription.unsubscribe();
  }
  return keep();
}
