/**
 * Following streams over `GET /v1/watch` (Server-Sent Events) with fetch, so it runs in
 * Bun, Node and browsers alike, and can send `Authorization` (an EventSource cannot).
 *
 * One connection per stream. It resumes with `Last-Event-ID: <epoch>:<position>`; the
 * server answers with the missed updates and SYNCED, or, when it cannot resume (another
 * epoch, behind retention), with RESET, the stream's state as ADDED events and SYNCED,
 * which the cache turns into the adds, updates and deletes that reach that state.
 */
import { errorText } from "../protocol/error-text.ts";
import { leadingText } from "../protocol/leading-text.ts";
import { Backoff, MAX_RETRY_AFTER_MS, parseRetryAfter, sleep, until } from "../protocol/retry.ts";
import { parseOptions } from "./options.ts";
import { parsePosition } from "../protocol/position.ts";
import type { Envelope } from "../protocol/envelope.ts";
import { StreamCaches, type StreamCache, type Subscription } from "./cache.ts";
import { SseParser, type SseEvent } from "./sse-parser.ts";
import { idleTimer } from "./idle-timer.ts";
import { type SseSubscribeOptions, sseOptionsSchema } from "./sse-options.ts";

export type { SseSubscribeOptions };

interface SyncedData {
  epoch: string;
  version: number;
}

interface ResetData {
  reason?: string;
  /** The reason as a code, as NATS replies name it (servers before it sent `reason` alone). */
  code?: string;
}

/** `<url>/v1/watch`: the path of the base URL kept (kubemeta mounted under a prefix), a trailing slash or not. */
function watchEndpoint(url: string): URL {
  const endpoint = new URL(url);
  endpoint.pathname = `${endpoint.pathname.replace(/\/+$/, "")}/v1/watch`;
  return endpoint;
}

/** How much of an answer that is no event stream is quoted (at most 4 bytes a character in UTF-8). */
const QUOTED_CHARS = 200;

/**
 * An error's message with its causes': Node's fetch says only "fetch failed" (or "terminated"), the socket's own error
 * in its cause, an AggregateError of one per address when it tried several. Each as errorText says it: Bun's hint to
 * pass `verbose: true` to fetch is for the client library, not for whoever reads the error.
 */
function inWords(error: unknown, depth = 0): string {
  if (!(error instanceof Error)) return String(error);
  const own =
    error instanceof AggregateError && error.message === ""
      ? error.errors.map((each) => inWords(each, depth + 1)).join("; ")
      : errorText(error);
  const cause = depth < 3 && error.cause !== undefined ? inWords(error.cause, depth + 1) : "";
  return cause === "" || own.includes(cause) ? own : `${own}: ${cause}`;
}

/** Why a connection was cut by the client itself (a gap): reconnect from the position held. */
class Resume extends Error {}

export function subscribeSse(options: SseSubscribeOptions): Subscription {
  const { reconnect, idleTimeoutMs } = parseOptions(sseOptionsSchema, options);
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
      const opened = Date.now();
      let synced = false;
      let asked: number | undefined;
      try {
        asked = await connect(cache, () => {
          synced = true;
        });
      } catch (error) {
        // A gap was reported when found; anything else is news.
        if (!(error instanceof Resume)) cache.report(error);
      }
      // Synced and up for longer than the longest backoff: a healthy connection, whose end (a restart) is retried
      // soon. One that ends as soon as it synced (a proxy that ends each stream at once) backs off as a failure does,
      // rather than come back a few times a second for as long as it lasts.
      if (synced && Date.now() - opened >= reconnect.maxMs) backoff.reset();
      const delay = backoff.next();
      // A reset cut short left no usable position: the reconnect starts one afresh.
      cache.abandonReset();
      await sleep(asked ?? delay, stopped.signal);
    }
  }

  /**
   * A connection that failed (refused, reset, a TLS handshake), named by where it went, which the runtime's words
   * leave out (Bun: "Unable to connect. Is the computer able to access the url?"). The URL holds no secret.
   */
  function failed(error: unknown): Error {
    return new Error(`GET ${endpoint.origin}${endpoint.pathname}: ${inWords(error)}`, { cause: error });
  }

  /** One connection, until it ends; returns a delay the server asked for, if any. */
  async function connect(cache: StreamCache, onSynced: () => void): Promise<number | undefined> {
    const connection = new AbortController();
    const cut = (reason: unknown) => connection.abort(reason);
    const onStop = () => cut(new Error("stopped"));
    stopped.signal.addEventListener("abort", onStop, { once: true });
    const idle = idleTimer(idleTimeoutMs, () =>
      cut(new Error(`nothing received for ${idleTimeoutMs} ms; reconnecting`)),
    );
    try {
      idle.touch();
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
        const body = (await leadingText(response.body, QUOTED_CHARS * 4)).slice(0, QUOTED_CHARS);
        const what = response.ok ? `${response.status} with ${type || "no content type"}, not an event stream` : "";
        const answer = `answered ${what || response.status}: ${body}`;
        cache.report(new Error(`GET ${endpoint.pathname} ${answer}`));
        return retryAfter || undefined;
      }
      let inSync = false;
      const syncedHere = () => {
        inSync = true;
        onSynced();
      };
      // Events already read after a cut (a gap) must not move the position past the gap.
      const parser = new SseParser(
        (event) => connection.signal.aborted || handle(cache, event, syncedHere, cut),
        undefined,
        (id) => connection.signal.aborted || progress(cache, id),
      );
      const decoder = new TextDecoder();
      const body = response.body.getReader();
      try {
        for (;;) {
          const backlog = options.paused?.();
          if (backlog) {
            idle.clear();
            await until(backlog, Infinity, connection.signal);
            idle.touch();
          }
          const { done, value } = await body.read();
          if (done) return comeBackAfter(cache, parser.retryMs, inSync);
          parser.push(decoder.decode(value, { stream: true }));
          // From here: callbacks that took long (a large reset applied) kept the heartbeats unread, not unsent.
          idle.touch();
        }
      } catch (error) {
        throw connection.signal.aborted ? connection.signal.reason : failed(error);
      } finally {
        body.releaseLock();
      }
    } finally {
      idle.clear();
      stopped.signal.removeEventListener("abort", onStop);
      connection.abort();
    }
  }

  /**
   * kubemeta ends a stream with `retry:` when it cannot serve it now (its store unreadable): said, and asked again
   * when it asked, as an EventSource does, rather than at once and unseen. Any other end is a proxy's or a restart's,
   * or, before the stream's SYNCED, kubemeta's closing a catch-up or snapshot this client took nothing of: callbacks
   * too slow, as an OVERFLOW says of a live stream, and as worth a word.
   */
  function comeBackAfter(cache: StreamCache, retryMs: number | undefined, inSync: boolean): number | undefined {
    if (retryMs === undefined) {
      if (!inSync)
        cache.report(
          new Error(
            `GET ${endpoint.pathname}: kubemeta ended the stream before it was in sync (it is stopping, or this ` +
              "client took nothing of its catch-up or snapshot for two heartbeats); resuming",
          ),
        );
      return undefined;
    }
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

  /**
   * A filtered stream's updates since the last one it was sent were all of other kinds or namespaces: the position
   * moves past them, so that a reconnect resumes from there rather than from behind retention, a reset. An unfiltered
   * stream's position moves with its updates alone (past a gap it would skip the updates missed).
   */
  function progress(cache: StreamCache, id: string): void {
    const position = parsePosition(id);
    if (filtered && !cache.resetting && position && position.epoch === cache.epoch)
      cache.advance(position.epoch, position.version);
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
