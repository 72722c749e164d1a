/**
 * One batch to the receiver, retried until it is accepted: 2xx delivers; 429 and 503 wait
 * for Retry-After; 5xx, 408, redirects, timeouts and network errors back off exponentially
 * with jitter; 413 (a body larger than the receiver takes) splits the batch in halves,
 * each a request of its own, down to one update, unless its Retry-After says the condition
 * is temporary (then the batch waits for it, whole); any other 4xx, and a 413 of one update,
 * follows `on4xx` (retry, or skip and count). Retries go on forever unless `maxRetries`
 * says otherwise. One request sent, and its answer read: attempt.ts.
 */
import { Backoff, sleep } from "../../../protocol/retry.ts";
import type { Envelope, Logger, RetrySettings } from "../../../sdk/index.ts";
import { outageLog, rateLimited, rateLimitedWarn } from "../../../sdk/telemetry.ts";
import { type AttemptOptions, createAttempt, NO_ANSWER, REFUSED, type Request } from "./attempt.ts";

export interface DeliveryOptions extends AttemptOptions {
  /** Retries after the first attempt; Infinity retries forever. */
  maxRetries: number;
  on4xx: "retry" | "skip";
  /** Delays between attempts, unless the receiver says how long to wait (a 429, 503 or 413 with Retry-After). */
  retry: RetrySettings;
  logger: Logger;
  /** The request of these updates (a batch, or a part of one the receiver found too large). */
  requestOf(envelopes: Envelope[]): Request;
}

/** `too_large`: a request of several updates the receiver refused with 413, to be sent in parts. */
type Outcome = "delivered" | "skipped" | "stopped" | "too_large";

/** Why updates were given up: `kubemeta_webhook_skipped_updates_total`'s reasons. */
const GIVEN_UP = ["status_4xx", "too_large", "max_retries"] as const;

/** A refused request, as the log says it. */
interface Failure {
  id: string;
  reason: (typeof NO_ANSWER)[number] | (typeof REFUSED)[number];
  status?: number;
  detail?: string;
}

export interface Delivery {
  /**
   * Sends `envelopes` until delivered or skipped by policy, in parts if the receiver finds them too large; "stopped"
   * once `signal` aborts, maybe after some parts were delivered (sent again after a restart: at least once).
   */
  deliver(envelopes: Envelope[], signal: AbortSignal): Promise<"done" | "stopped">;
  /** True while the receiver's last answer was a failure (none yet: false). */
  failing(): boolean;
}

export function createDelivery(options: DeliveryOptions): Delivery {
  const { sink, logger, metrics } = options;
  const labels = { sink };
  const deliveries = metrics.counter(
    "kubemeta_webhook_deliveries_total",
    "Webhook requests the receiver accepted (2xx): batches, or parts of one it refused as too large.",
  );
  const deliveredUpdates = metrics.counter(
    "kubemeta_webhook_delivered_updates_total",
    "Updates in webhook requests the receiver accepted.",
  );
  const failures = metrics.counter(
    "kubemeta_webhook_failures_total",
    `Failed webhook requests, by reason (${[...NO_ANSWER, ...REFUSED].join(", ")}).`,
  );
  const skipped = metrics.counter(
    "kubemeta_webhook_skipped_updates_total",
    "Updates a webhook gave up on, by reason (status_4xx and too_large with on4xx: skip, max_retries).",
  );
  const splits = metrics.counter(
    "kubemeta_webhook_splits_total",
    "Webhook requests the receiver refused as too large (413), each sent again in two halves.",
  );
  const splitLog = rateLimitedWarn(logger);
  // A batch given up is updates the receiver never gets: an error, but a receiver that refuses every batch would have
  // one a batch. The counter counts each update; the log says each kind at most once a minute, with `unlogged`.
  const skipLog = rateLimited(logger, "error");
  // A receiver away for an hour is retried at every backoff step, or every second under a 429 `Retry-After: 1`: a
  // warning each time would flood the log. A retried failure is an outage of the receiver's, not yet data lost.
  const outage = outageLog(logger, "webhook delivery failed; retrying", "webhook delivery works again", {
    first: "warn",
  });
  // From 0, not from the first event: rate() needs a sample before it.
  deliveries.inc(labels, 0);
  deliveredUpdates.inc(labels, 0);
  splits.inc(labels, 0);
  for (const reason of [...NO_ANSWER, ...REFUSED]) failures.inc({ sink, reason }, 0);
  for (const reason of GIVEN_UP) skipped.inc({ sink, reason }, 0);
  const attempt = createAttempt(options);
  let failing = false;

  /**
   * What becomes of a request the receiver refused, as it answers (so nothing to hold a drain back): a 413 of several
   * updates is sent in parts; a 413 of one, or another 4xx, is skipped under `on4xx: skip`. Undefined: retried.
   */
  function verdict(request: Request, failure: Failure): Outcome | undefined {
    const bytes = Buffer.byteLength(request.body);
    if (failure.reason === "status_413" && request.updates > 1) {
      splits.inc(labels);
      // With every batch when batch.size is too large for the receiver: once a minute is enough to say so.
      splitLog("webhook receiver refused a batch as too large; sending it in two halves", {
        ...failure,
        updates: request.updates,
        bytes,
      });
      failing = false;
      return "too_large";
    }
    if (options.on4xx !== "skip") return undefined;
    if (failure.reason === "status_413") {
      skipped.inc({ sink, reason: "too_large" }, request.updates);
      skipLog("webhook receiver refuses an update as too large; skipping it", {
        ...failure,
        ...request.only,
        bytes,
      });
    } else if (failure.reason === "status_4xx") {
      skipped.inc({ sink, reason: "status_4xx" }, request.updates);
      skipLog("webhook receiver rejected a batch; skipping it (on4xx: skip)", {
        ...failure,
        updates: request.updates,
      });
    } else return undefined;
    failing = false;
    return "skipped";
  }

  async function send(request: Request, signal: AbortSignal): Promise<Outcome> {
    const backoff = new Backoff(options.retry);
    for (let retries = 0; ; retries++) {
      const result = await attempt(request, signal);
      if (result.ok || result.reason !== "stopped") failing = !result.ok;
      if (result.ok) {
        deliveries.inc(labels);
        deliveredUpdates.inc(labels, request.updates);
        outage.succeeded();
        return "delivered";
      }
      if (result.reason === "stopped") return "stopped";
      failures.inc({ sink, reason: result.reason });
      const failure: Failure = {
        id: request.id,
        reason: result.reason,
        ...("status" in result ? { status: result.status } : {}),
        ...(result.detail ? { detail: result.detail } : {}),
      };
      const retryAfterMs = "retryAfterMs" in result ? result.retryAfterMs : undefined;
      // A refusal that says when to come back (RFC 9110: a 413 whose condition is temporary) is no verdict on the
      // request: it is sent again as it is, after the wait, under either on4xx.
      const given = retryAfterMs === undefined ? verdict(request, failure) : undefined;
      if (given) return given;
      if (retries >= options.maxRetries) {
        skipped.inc({ sink, reason: "max_retries" }, request.updates);
        skipLog("webhook gave up on a batch after maxRetries", {
          ...failure,
          retries,
          updates: request.updates,
        });
        return "skipped";
      }
      // A Retry-After of 0 (or a past date) is no delay at all: back off rather than spin on the receiver.
      const delay = retryAfterMs || backoff.next();
      // The status, or why there was none (its error code): a 503 after the 429s is a warning at once.
      const cause = "status" in result ? String(result.status) : ("code" in result && result.code) || result.reason;
      outage.failed({ ...failure, retries, retryInMs: delay }, cause);
      await sleep(delay, signal);
      if (signal.aborted) return "stopped";
    }
  }

  async function deliver(envelopes: Envelope[], signal: AbortSignal): Promise<"done" | "stopped"> {
    const outcome = await send(options.requestOf(envelopes), signal);
    if (outcome !== "too_large") return outcome === "stopped" ? "stopped" : "done";
    // In order: the second half only once the first is delivered or given up.
    const half = Math.ceil(envelopes.length / 2);
    if ((await deliver(envelopes.slice(0, half), signal)) === "stopped") return "stopped";
    return deliver(envelopes.slice(half), signal);
  }

  return { failing: () => failing, deliver };
}
