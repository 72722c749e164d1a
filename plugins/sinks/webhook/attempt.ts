/**
 * One POST of a request to the receiver, signed, and what its answer says: accepted, refused (why, and any
 * Retry-After), or no answer. What of the credentials a receiver's answer echoes is redacted before it is logged.
 */
import { errorText } from "../../../protocol/error-text.ts";
import { parseRetryAfter } from "../../../protocol/retry.ts";
import type { Envelope, Metrics } from "../../../sdk/index.ts";
import { answerText } from "./answer.ts";
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, sign } from "./sign.ts";

const ID_HEADER = "X-Kubemeta-Id";

export interface AttemptOptions {
  sink: string;
  url: string;
  secret: string;
  headers: Record<string, string>;
  timeoutMs: number;
  metrics: Metrics;
}

/** A batch ready to send: its id (the same on every retry) and its JSON body. */
export interface Request {
  id: string;
  body: string;
  updates: number;
  /** The update of a request that holds only one, named in the log when it is given up. */
  only?: Pick<Envelope, "kind" | "namespace" | "name" | "version">;
}

/** Why a request failed: `kubemeta_webhook_failures_total`'s reasons, each a series from the start. */
export const NO_ANSWER = ["timeout", "network"] as const;
export const REFUSED = ["status_3xx", "status_408", "status_413", "status_4xx", "status_429", "status_5xx"] as const;

export type Attempt =
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

/** What sends a request once: each one's duration is observed in `kubemeta_webhook_request_seconds`, by outcome. */
export function createAttempt(options: AttemptOptions): (request: Request, signal: AbortSignal) => Promise<Attempt> {
  const { sink, metrics } = options;
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
      // No error of the receiver's to say: the wait is the cause, and the operator's to lengthen.
      if (timeout.aborted)
        return { ok: false, reason: "timeout", detail: `no answer within the sink's timeout, ${options.timeoutMs} ms` };
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

  return attempt;
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
