/**
 * One batch to the receiver, retried until it is accepted: 2xx delivers; 429 and 503 wait
 * for Retry-After; 5xx, 408, redirects, timeouts and network errors back off exponentially
 * with jitter; 413 (a body larger than the receiver takes) splits the batch in halves,
 * each a request of its own, down to one update, unless its Retry-After says the condition
 * is temporary (then the batch waits for it, whole); any other 4xx, and a 413 of one update,
 * follows `on4xx` (retry, or skip and count). Retries go on forever unless `maxRetries`
 * says otherwise.
 */
import { errorText } from "../../../protocol/error-text.ts";
import { Backoff, parseRetryAfter, sleep } from "../../../protocol/retry.ts";
import type { Envelope, Logger, Metrics, RetrySettings } from "../../../sdk/index.ts";
import { outageLog, rateLimited, rateLimitedWarn } from "../../../sdk/telemetry.ts";
import { answerText } from "./answer.ts";
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, sign } from "./sign.ts";

const ID_HEADER = "X-Kubemeta-Id";

export interface DeliveryOptions {
  sink: string;
  url: string;
  secret: string;
  headers: Record<string, string>;
  timeoutMs: number;
  /** Retries after the first attempt; Infinity retries forever. */
  maxRetries: number;
  on4xx: "retry" | "skip";
  /** Delays between attempts, unless the receiver says how long to wait (a 429, 503 or 413 with Retry-After). */
  retry: RetrySettings;
  logger: Logger;
  metrics: Metrics;
  /** The request of these updates (a batch, or a part of one the receiver found too large). */
  requestOf(envelopes: Envelope[]): Request;
}

/** A batch ready to send: its id (the same on every retry) and its JSON body. */
export interface Request {
  id: string;
  body: string;
  updates: number;
  /** The update of a request that holds only one, named in the log when it is given up. */
  only?: Pick<Envelope, "kind" | "namespace" | "name" | "version">;
}

/** `too_large`: a request of several updates the receiver refused with 413, to be sent in parts. */
type Outcome = "delivered" | "skipped" | "stopped" | "too_large";

/** Why a request failed: `kubemeta_webhook_failures_total`'s reasons, each a series from the start. */
const NO_ANSWER = ["timeout", "network"] as const;
const REFUSED = ["status_3xx", "status_408", "status_413", "status_4xx", "status_429", "status_5xx"] as const;
/** Why updates were given up: `kubemeta_webhook_skipped_updates_total`'s reasons. */
const GIVEN_UP = ["status_4xx", "too_large", "max_retries"] as const;

type Attempt =
  | { ok: true }
  /**
   * `detail`: why the request got no answer (a refused connection, a certificate not trusted), for the log; `code`:
   * its error code (`ECONNREFUSED`), which tells one cause of an outage from another.
   */
  | { ok: false; reason: (typeof NO_ANSWER)[number] | "stopped"; detail?: string; code?: string }
  | {
      ok: false;
      reason: (typeof REFUSED)[number];
      status: number;
      retryAfterMs?: number;
      detail: string;
    };

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

/**
 * What of a receiver's URL may be a credential, as a receiver could echo it (Express's 404 says `Cannot POST <path and
 * query>`): the URL, its path and query, each query value, each long path segment (a token in the path), and its
 * user and password, also as the Basic credentials fetch sends for them.
 */
function urlCredentials(url: string): string[] {
  const { username, password, pathname, search, searchParams } = new URL(url);
  const [user, pass] = [decodeURIComponent(username), decodeURIComponent(password)];
  const basic = user || pass ? [Buffer.from(`${user}:${pass}`).toString("base64")] : [];
  const segments = pathname.split("/").filter((segment) => segment.length >= 16);
  return [
    url,
    pathname + search,
    search,
    ...searchParams.values(),
    ...segments,
    username,
    password,
    user,
    pass,
    ...basic,
  ];
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
  // Up to the longest `timeout` a receiver is commonly given: the default buckets end at 2.5 s, `timeout` at 10 s.
  const duration = metrics.histogram(
    "kubemeta_webhook_request_seconds",
    "Webhook request duration, by outcome.",
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  );
  // A receiver's answer is logged, and some echo the credentials they got: the secret, the extra headers' values
  // (each word too, so a token without its "Bearer") and what of the URL may be one never reach the log.
  const hidden = [
    options.secret,
    ...Object.values(options.headers).flatMap((value) => [value, ...value.split(/\s+/)]),
    ...urlCredentials(options.url),
  ]
    .filter((value) => value.length >= 8)
    .sort((a, b) => b.length - a.length);
  const redact = (text: string) => hidden.reduce((out, value) => out.replaceAll(value, "[redacted]"), text);

  async function attempt(request: Request, signal: AbortSignal): Promise<Attempt> {
    const timestamp = Math.floor(Date.now() / 1000);
    const timeout = AbortSignal.timeout(options.timeoutMs);
    const started = performance.now();
    try {
      const response = await fetch(options.url, {
        method: "POST",
        body: request.body,
        redirect: "manual",
        signal: AbortSignal.any([signal, timeout]),
        headers: {
          "user-agent": "kubemeta-webhook",
          // Names are case-insensitive: the config's own `User-Agent` replaces the one above, not joins it.
          ...lowerCased(options.headers),
          "content-type": "application/json",
          [ID_HEADER]: request.id,
          [TIMESTAMP_HEADER]: String(timestamp),
          [SIGNATURE_HEADER]: sign(options.secret, timestamp, request.body),
        },
      });
      const detail = redact(await answerText(response)).slice(0, 200);
      duration.observe((performance.now() - started) / 1000, { sink, outcome: String(response.status) });
      return classify(response, detail);
    } catch (error) {
      duration.observe((performance.now() - started) / 1000, { sink, outcome: "error" });
      if (signal.aborted) return { ok: false, reason: "stopped" };
      if (timeout.aborted) return { ok: false, reason: "timeout" };
      const { code } = error as { code?: unknown };
      // As the kubernetes source says its own: Bun's hint to whoever calls fetch (pass `verbose: true`) left out.
      return {
        ok: false,
        reason: "network",
        detail: redact(errorText(error)).slice(0, 200),
        ...(typeof code === "string" ? { code } : {}),
      };
    }
  }

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

function classify(response: Response, detail: string): Attempt {
  const { status } = response;
  if (status >= 200 && status < 300) return { ok: true };
  // Said by a 429, by a 503 of how long the service is expected to be unavailable, and by a 413 whose condition is
  // temporary (RFC 9110); what the others say is not waited for.
  const retryAfterMs = parseRetryAfter(response.headers.get("retry-after"));
  if (status === 429) return { ok: false, reason: "status_429", status, detail, retryAfterMs };
  if (status === 503) return { ok: false, reason: "status_5xx", status, detail, retryAfterMs };
  if (status >= 500) return { ok: false, reason: "status_5xx", status, detail };
  // 408 is the receiver timing out: an outage, not a verdict on the batch, so it is retried like a 5xx.
  if (status === 408) return { ok: false, reason: "status_408", status, detail };
  // A verdict on the body's size, not on its updates: a part of it may pass. Unless it says when to come back.
  if (status === 413) return { ok: false, reason: "status_413", status, detail, retryAfterMs };
  if (status >= 400) return { ok: false, reason: "status_4xx", status, detail };
  return { ok: false, reason: "status_3xx", status, detail };
}

function lowerCased(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value]));
}
