/**
 * Following streams over `GET /v1/watch` (Server-Sent Events) with fetch, so it runs in
 * Bun, Node and browsers alike, and can send `Authorization` (an EventSource cannot).
 *
 * One connection per stream. It resumes with `Last-Event-ID: <epoch>:<position>`; the
 * server answers with the missed updates and SYNCED, or, when it cannot resume (another
 * epoch, behind retention), with RESET, the stream's state as ADDED events and SYNCED,
 * which the cache turns into the adds, updates and deletes that reach that state.
 */
import { Backoff, MAX_RETRY_AFTER_MS, parseRetryAfter, sleep } from "../protocol/retry.ts";
import * as v from "valibot";
import {
  backoff,
  eachOnce,
  type EntriesOf,
  handlerEntries,
  milliseconds,
  parseOptions,
  strictOptions,
  streamsSchema,
} from "./options.ts";
import { KIND_PATTERN, NAMESPACE_PATTERN, type Envelope } from "../protocol/envelope.ts";
import { BEARER_TOKEN_PATTERN } from "../protocol/token.ts";
import { StreamCaches, type InformerHandlers, type StreamCache, type Subscription } from "./cache.ts";
import { SseParser, type SseEvent } from "./sse-parser.ts";
import { baseUrlProblem } from "./base-url.ts";

export interface SseSubscribeOptions extends InformerHandlers {
  /**
   * kubemeta's HTTP base URL, e.g. `https://kubemeta.example.com`, or with the path a reverse proxy mounts it under
   * (`https://example.com/kubemeta`: requests go to `/kubemeta/v1/watch`); no credentials (give a `token` or an
   * `Authorization` header), query or fragment.
   */
  url: string;
  /** `all`, `shared` or `node/<node name>`; one connection each. */
  streams: string[];
  /** Only these kinds (`Pod`, `Node`, …). A filtered stream's `prev` finds no gaps: resume points do the work. */
  kinds?: string[];
  /** Only objects of this namespace (same caveat as `kinds`). */
  namespace?: string;
  /** Bearer token (`http.tokens` on the server). */
  token?: string;
  /** More request headers. */
  headers?: Record<string, string>;
  /** More fetch options, e.g. Bun's `tls: { ca }`. */
  fetchInit?: RequestInit;
  /** Delays between reconnects: exponential with jitter (defaults 250 ms to 10 s). */
  reconnect?: { initialMs?: number; maxMs?: number };
  /** Nothing received for this long (heartbeats come every 15 s by default): the connection is dead. Default 45 s. */
  idleTimeoutMs?: number;
}

interface SyncedData {
  epoch: string;
  version: number;
}

interface ResetData {
  reason?: string;
  /** The reason as a code, as NATS replies name it (servers before it sent `reason` alone). */
  code?: string;
}

const RECONNECT_MS = { initialMs: 250, maxMs: 10_000 };
const IDLE_TIMEOUT_MS = 45_000;

/**
 * subscribeSse's options as it takes them. What the server would refuse for ever (a 400 or 404 on every reconnect),
 * and what fetch would fail on every time (a token no header carries), is refused at once, as over NATS.
 */
const optionsSchema = v.pipe(
  strictOptions("subscribeSse", {
    url: v.pipe(
      v.string("give kubemeta's http:// or https:// base URL"),
      v.check(
        (url) => baseUrlProblem(url) === undefined,
        ({ input }) => baseUrlProblem(input)!,
      ),
    ),
    streams: streamsSchema,
    kinds: v.optional(
      v.pipe(
        v.array(
          v.pipe(
            v.string('a list of API kinds, e.g. ["Pod"]'),
            v.regex(KIND_PATTERN, ({ input }) => `${input} is not an API kind such as Pod (not pods)`),
          ),
          'a list of API kinds, e.g. ["Pod"]',
        ),
        // The server refuses `kinds=` (400): no kinds is none to follow, not all of them.
        v.minLength(1, "give at least one API kind, or leave it out for all"),
        eachOnce(),
      ),
    ),
    namespace: v.optional(
      v.pipe(
        v.string("a namespace's name; leave it out for all"),
        v.regex(
          NAMESPACE_PATTERN,
          ({ input }) => `${JSON.stringify(input)} is not a namespace's name; leave it out for all`,
        ),
      ),
    ),
    // Neither message quotes the token.
    token: v.optional(
      v.pipe(
        v.string("a bearer token is a string"),
        v.regex(BEARER_TOKEN_PATTERN, "a bearer token is printable ASCII without spaces, and not empty"),
      ),
    ),
    headers: v.optional(
      v.pipe(
        v.record(v.string(), v.string("a header's value is a string"), "an object of header values"),
        // fetch would join the client's own value and this one into one header that neither means ("a, b").
        v.check(
          (headers) => clientSetHeader(headers) === undefined,
          ({ input }) => `${clientSetHeader(input)}: the client sets this header itself`,
        ),
      ),
    ),
    // What the client sets itself would replace these unseen.
    fetchInit: v.optional(
      v.looseObject(
        {
          headers: v.optional(v.undefined("give them as the `headers` option: the client sets the request's headers")),
          signal: v.optional(v.undefined("stop() ends the requests: the client sets the request's signal")),
        },
        "an object of fetch options",
      ),
    ),
    reconnect: backoff(RECONNECT_MS),
    idleTimeoutMs: v.optional(milliseconds(), IDLE_TIMEOUT_MS),
    ...handlerEntries,
  } satisfies EntriesOf<SseSubscribeOptions>),
  // A token is sent as the authorization header: beside one given, fetch would send both joined, which no server takes.
  v.forward(
    v.check(
      ({ token, headers = {} }) => token === undefined || !Object.keys(headers).some(isAuthorization),
      "give a token or an authorization header, not both: the token is sent as one",
    ),
    ["headers"],
  ),
);

/** Headers the client sets on every request (by any case of their name). */
const CLIENT_SET_HEADERS = new Set(["accept", "last-event-id"]);
const isAuthorization = (name: string) => name.toLowerCase() === "authorization";
const clientSetHeader = (headers: Record<string, string>) =>
  Object.keys(headers).find((name) => CLIENT_SET_HEADERS.has(name.toLowerCase()));

/** `<url>/v1/watch`: the path of the base URL kept (kubemeta mounted under a prefix), a trailing slash or not. */
function watchEndpoint(url: string): URL {
  const endpoint = new URL(url);
  endpoint.pathname = `${endpoint.pathname.replace(/\/+$/, "")}/v1/watch`;
  return endpoint;
}

/** Why a connection was cut by the client itself (a gap): reconnect from the position held. */
class Resume extends Error {}

export function subscribeSse(options: SseSubscribeOptions): Subscription {
  const { reconnect, idleTimeoutMs } = parseOptions(optionsSchema, options);
  const caches = new StreamCaches(options.streams, options);
  const stopped = new AbortController();
  const filtered = options.kinds !== undefined || options.namespace !== undefined;
  const endpoint = watchEndpoint(options.url);
  const runs = caches.caches.map((cache) => follow(cache));

  function watchUrl(stream: string): URL {
    const url = new URL(endpoint);
    url.searchParams.set("stream", stream);
    if (options.kinds) url.searchParams.set("kinds", options.kinds.join(","));
    if (options.namespace !== undefined) url.searchParams.set("namespace", options.namespace);
    return url;
  }

  function headersFor(cache: StreamCache): Record<string, string> {
    // JSON too: a refusal (a limit reached, kubemeta starting) then comes as its status and Retry-After, not as the
    // stream an EventSource gets instead, so that it is reported.
    const headers: Record<string, string> = { accept: "text/event-stream, application/json", ...options.headers };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    if (cache.hasPosition) headers["last-event-id"] = `${cache.epoch}:${cache.position}`;
    return headers;
  }

  async function follow(cache: StreamCache): Promise<void> {
    const backoff = new Backoff(reconnect);
    while (!stopped.signal.aborted) {
      let delay = backoff.next();
      try {
        delay = (await connect(cache, () => backoff.reset())) ?? delay;
      } catch (error) {
        // A gap was reported when found; anything else is news.
        if (!(error instanceof Resume) && !stopped.signal.aborted) cache.report(error);
      }
      // A reset cut short left no usable position: the reconnect starts one afresh.
      cache.abandonReset();
      await sleep(delay, stopped.signal);
    }
  }

  /**
   * A connection that failed (refused, reset, a TLS handshake), named by where it went, which the runtime's words
   * leave out (Bun: "Unable to connect. Is the computer able to access the url?"). The URL holds no secret.
   */
  function failed(error: unknown): Error {
    const message = error instanceof Error ? error.message : String(error);
    return new Error(`GET ${endpoint.origin}${endpoint.pathname}: ${message}`, { cause: error });
  }

  /** One connection, until it ends; returns a delay the server asked for, if any. */
  async function connect(cache: StreamCache, onSynced: () => void): Promise<number | undefined> {
    const connection = new AbortController();
    const cut = (reason: unknown) => connection.abort(reason);
    const onStop = () => cut(new Error("stopped"));
    stopped.signal.addEventListener("abort", onStop, { once: true });
    let idle: ReturnType<typeof setTimeout> | undefined;
    const touch = () => {
      clearTimeout(idle);
      idle = setTimeout(() => cut(new Error(`nothing received for ${idleTimeoutMs} ms; reconnecting`)), idleTimeoutMs);
    };
    try {
      touch();
      const response = await fetch(watchUrl(cache.stream), {
        ...options.fetchInit,
        headers: headersFor(cache),
        signal: connection.signal,
      }).catch((error: unknown) => {
        throw connection.signal.aborted ? connection.signal.reason : failed(error);
      });
      // A 200 of something else (an auth proxy's login page, an ingress's default backend) is no stream either.
      const type = response.headers.get("content-type") ?? "";
      const stream = /^text\/event-stream\b/i.test(type);
      if (!response.ok || !response.body || !stream) {
        const retryAfter = parseRetryAfter(response.headers.get("retry-after"));
        const body = await response.text().catch(() => "");
        const what = response.ok ? `${response.status} with ${type || "no content type"}, not an event stream` : "";
        const answer = `answered ${what || response.status}: ${body.slice(0, 200)}`;
        cache.report(new Error(`GET ${endpoint.pathname} ${answer}`));
        return retryAfter || undefined;
      }
      // Events already read after a cut (a gap) must not move the position past the gap.
      const parser = new SseParser((event) => connection.signal.aborted || handle(cache, event, onSynced, cut));
      const decoder = new TextDecoder();
      const body = response.body.getReader();
      try {
        for (;;) {
          const { done, value } = await body.read();
          if (done) return comeBackAfter(cache, parser.retryMs);
          parser.push(decoder.decode(value, { stream: true }));
          // From here: callbacks that took long (a large reset applied) kept the heartbeats unread, not unsent.
          touch();
        }
      } catch (error) {
        throw connection.signal.aborted ? connection.signal.reason : failed(error);
      } finally {
        body.releaseLock();
      }
    } finally {
      clearTimeout(idle);
      stopped.signal.removeEventListener("abort", onStop);
      connection.abort();
    }
  }

  /**
   * kubemeta ends a stream with `retry:` when it cannot serve it now (its store unreadable): said, and asked again
   * when it asked, as an EventSource does, rather than at once and unseen. Any other end is a proxy's or a restart's.
   */
  function comeBackAfter(cache: StreamCache, retryMs: number | undefined): number | undefined {
    if (retryMs === undefined) return undefined;
    cache.report(
      new Error(`GET ${endpoint.pathname}: kubemeta ended the stream, asking to come back in ${retryMs} ms`),
    );
    return Math.min(retryMs, MAX_RETRY_AFTER_MS) || undefined;
  }

  function handle(cache: StreamCache, message: SseEvent, onSynced: () => void, cut: (reason: unknown) => void): void {
    switch (message.type) {
      case "RESET": {
        const { code, reason } = JSON.parse(message.data) as ResetData;
        cache.beginReset(code ?? reason ?? "reset");
        return;
      }
      case "SYNCED": {
        const { epoch, version } = JSON.parse(message.data) as SyncedData;
        if (cache.resetting) cache.completeReset(epoch, version);
        else cache.advance(epoch, version);
        caches.markSynced(cache);
        onSynced();
        return;
      }
      case "ADDED":
      case "MODIFIED":
      case "DELETED":
        update(cache, JSON.parse(message.data) as Envelope, cut);
        return;
      case "OVERFLOW":
        // The server closes next and the reconnect resumes; a client that keeps falling behind is told why.
        cache.report(
          new Error(
            "kubemeta closed the stream: this client fell too far behind it " +
              "(OVERFLOW: its buffer for the stream filled); resuming",
          ),
        );
        return;
      default:
        // Events of later versions.
        return;
    }
  }

  function update(cache: StreamCache, envelope: Envelope, cut: (reason: unknown) => void): void {
    if (cache.resetting) {
      cache.stage(envelope);
      return;
    }
    if (cache.isDuplicate(envelope)) return;
    if (!filtered && cache.revealsGap(envelope)) {
      cache.report(
        new Error(`missed updates of ${cache.stream} between ${cache.position} and ${envelope.prev}; resuming`),
      );
      cut(new Resume());
      return;
    }
    cache.apply(envelope);
  }

  return {
    synced: caches.synced,
    objects: (stream) => caches.objects(stream),
    async stop() {
      stopped.abort();
      caches.end();
      await Promise.all(runs);
    },
  };
}
