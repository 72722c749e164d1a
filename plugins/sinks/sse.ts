/**
 * `GET /v1/watch`: streams of updates over Server-Sent Events (DESIGN.md, "HTTP").
 * Each subscriber is its own reader of the committed log; see sse/session.ts for the
 * protocol and sse/wire.ts for the event ids that make EventSource reconnects resume.
 *
 * `kubemeta_sink_lag_versions` is not exported for this sink: every subscriber has its
 * own position, and the bounded buffer caps how far one can lag before it is closed
 * (counted in `kubemeta_sse_overflows_total`, as are subscribers closed for taking nothing
 * of their catch-up or snapshot).
 */
import * as v from "valibot";
import type { Context, Hono } from "hono";
import { defineSink } from "../../sdk/contract.ts";
import { DRAIN_MS, DRAIN_READ_WAIT_MS } from "../../sdk/consume-options.ts";
import { clientAddress, setIdleTimeout } from "../../sdk/http.ts";
import {
  kindsParam,
  namespaceParam,
  otherRoutesParam,
  parseQuery,
  positionParam,
  refusedParam,
  streamParam,
} from "../../sdk/http.ts";
import { parsePosition } from "../../protocol/position.ts";
import { duration, positiveInt } from "../../sdk/schema.ts";
import { rateLimitedWarn, streamLabel } from "../../sdk/telemetry.ts";
import { SseChannel } from "./sse/channel.ts";
import { comeBackLater, HEADERS } from "./sse/refusal.ts";
import { streamCap } from "./sse/open-files.ts";
import { runSession } from "./sse/session.ts";
import { HEARTBEAT, OPENING, UpdateEvents } from "./sse/wire.ts";

const watchQuery = v.object({
  stream: streamParam,
  kinds: v.optional(kindsParam),
  kind: otherRoutesParam("kinds"),
  namespace: v.optional(namespaceParam),
  namespaces: otherRoutesParam("namespace"),
  node: refusedParam("this route takes stream=node/<node name>, not node"),
  limit: refusedParam("a stream has no end to limit: limit pages /v1/updates"),
});
/** Read only without a Last-Event-ID: the header wins, whatever the URL kept. */
const sinceQuery = v.object({ since: v.optional(positionParam) });

type Handler = (c: Context) => Response;

/**
 * Hono cannot unmount a route, and a sink may be started again after a stop (or two
 * instances may share an app in tests): the route is mounted once per app and serves
 * whichever instance is running.
 */
const watchRoutes = new WeakMap<Hono, { serve?: Handler }>();

function watchRoute(app: Hono): { serve?: Handler } {
  let route = watchRoutes.get(app);
  if (!route) {
    const mounted: { serve?: Handler } = {};
    app.get("/v1/watch", (c) => mounted.serve?.(c) ?? comeBackLater(c, 503, "the SSE sink is not running"));
    route = mounted;
    watchRoutes.set(app, route);
  }
  return route;
}

/**
 * A subscriber that takes nothing for this many heartbeat intervals while its catch-up or snapshot is read is closed:
 * it holds its stream (and a snapshot one of the store's few read transactions, see sse/session.ts). The heartbeat is
 * the interval within which an open stream shows life, so two of them in which Bun took not one of its writes (a
 * batch, a page) from the stream is a stuck subscriber, or one too slow to keep up once live.
 */
const STALL_HEARTBEATS = 2;

export default defineSink({
  type: "sse",
  description: "Serves GET /v1/watch: a stream's updates over Server-Sent Events, with resume by Last-Event-ID.",
  // A second sse sink's route would be shadowed by the first's, its options silently unused.
  claims: () => ["the route GET /v1/watch"],
  schema: v.strictObject({
    maxStreams: v.optional(
      v.pipe(
        positiveInt,
        v.description(
          "Concurrent streams; past it, a subscribe gets `503`. Fewer where the open-file limit, less 128, is " +
            "lower (a warning at start says so).",
        ),
      ),
      1000,
    ),
    maxStreamsPerClient: v.optional(
      v.pipe(
        positiveInt,
        v.description(
          "Concurrent streams from one client address; past it, a subscribe gets `429`. " +
            "Behind a proxy every client has the proxy's address: raise it to `maxStreams` there.",
        ),
      ),
      100,
    ),
    heartbeat: v.optional(
      v.pipe(
        duration,
        v.minValue(10, "at least 10ms"),
        v.description(
          "A comment line this often (at least 10ms) keeps idle streams (and the proxies on their way) open; a " +
            "filtered stream is also told this often how far it read past updates it does not take (an id alone).",
        ),
      ),
      "15s",
    ),
    bufferBytes: v.optional(
      v.pipe(
        positiveInt,
        v.minValue(4096, "at least 4096"),
        v.description(
          "Bytes buffered per subscriber (at least 4096); a live subscriber that fills it is closed with `OVERFLOW`.",
        ),
      ),
      1_048_576,
    ),
    batchSize: v.optional(
      v.pipe(positiveInt, v.maxValue(5000), v.description("Updates read from the log at once (at most 5000).")),
      500,
    ),
  }),
  example: { maxStreams: 1000, heartbeat: "15s" },
  create(config, ctx) {
    const subscribers = ctx.metrics.gauge(
      "kubemeta_sse_subscribers",
      "Open /v1/watch streams, by stream class (all, shared, node).",
    );
    const rejected = ctx.metrics.counter(
      "kubemeta_sse_rejected_total",
      "Subscriptions refused because maxStreams (reason max_streams) or maxStreamsPerClient (max_streams_per_client) " +
        "streams were open.",
    );
    const overflows = ctx.metrics.counter(
      "kubemeta_sse_overflows_total",
      "Subscribers closed because they could not keep up (their buffer was full, or stayed full for two heartbeats " +
        "during a catch-up or snapshot).",
    );
    const resets = ctx.metrics.counter(
      "kubemeta_sse_resets_total",
      "RESETs sent, each followed by the stream's state: a stream's first event, or one after retention overtook it.",
    );
    // From 0, not from the first event: rate() needs a sample before it.
    resets.inc(undefined, 0);
    overflows.inc(undefined, 0);
    for (const reason of ["max_streams", "max_streams_per_client"]) rejected.inc({ reason }, 0);
    const events = new UpdateEvents(ctx.log.epoch);
    const streams = streamCap(config.maxStreams, ctx.logger);
    // Counted each (kubemeta_sse_overflows_total); logged once a minute: hundreds of streams can overflow at once, or
    // stall at once in the catch-ups of clients that all came back after an outage.
    const tooSlow = rateLimitedWarn(ctx.logger);
    // A store down fails the reads of every client that catches up meanwhile: one line a minute, as /v1/updates.
    const readFailed = rateLimitedWarn(ctx.logger);
    const sessions = new Map<AbortController, { channel: SseChannel; done: Promise<void>; live(): boolean }>();
    let finishing = new AbortController();
    /** Streams whose stop's drain gave up a read of the store: said once, after the stop, not once for each. */
    let drainsGivenUp = 0;
    const perStream = new Map<string, number>();
    const perLabel = new Map<string, number>();
    const perClient = new Map<string, number>();
    let running = false;
    let heartbeat: ReturnType<typeof setInterval> | undefined;

    /** Adds `by` to a count; at zero the key is dropped, so that no name a client picked stays behind. */
    const tally = (counts: Map<string, number>, key: string, by: number): number => {
      const n = (counts.get(key) ?? 0) + by;
      if (n > 0) counts.set(key, n);
      else counts.delete(key);
      return n;
    };
    const count = (stream: string, by: number) => {
      if (tally(perStream, stream, by) === 0) events.forget(stream);
      const label = { stream: streamLabel(stream) };
      // A stream class is one of three labels: 0 is shown, not dropped, so that alerts see the last subscriber go.
      subscribers.set(tally(perLabel, label.stream, by), label);
    };

    function watch(c: Context): Response {
      const query = parseQuery(c, watchQuery);
      if (!query.ok) return query.response;
      // The header is the progress of this very EventSource, whose URL keeps its first `since`.
      const lastEventId = c.req.header("last-event-id");
      const since = lastEventId ? undefined : parseQuery(c, sinceQuery);
      if (since && !since.ok) return since.response;
      if (sessions.size >= streams.cap) {
        rejected.inc({ reason: "max_streams" });
        return comeBackLater(c, 503, `too many streams (${streams.refusal}); retry later`);
      }
      const client = clientAddress(c);
      if ((perClient.get(client) ?? 0) >= config.maxStreamsPerClient) {
        rejected.inc({ reason: "max_streams_per_client" });
        const limit = `maxStreamsPerClient is ${config.maxStreamsPerClient}`;
        return comeBackLater(c, 429, `too many streams from this address (${limit}); close one or retry later`);
      }
      // What a GET would get now, without a session: a stream, which a HEAD is answered without (Bun cancels it).
      if (c.req.method === "HEAD") return new Response(new ReadableStream(), { headers: HEADERS });
      // Gone before it is answered (a reconnect storm's), its abort already fired: no session reads for it.
      if (c.req.raw.signal.aborted) return new Response(null, { status: 499 });
      const { stream, kinds, namespace } = query.value;
      const resume = lastEventId ? parsePosition(lastEventId) : since?.value.since;

      const abort = new AbortController();
      const channel = new SseChannel(config.bufferBytes, () => abort.abort());
      c.req.raw.signal.addEventListener("abort", () => channel.close(), { once: true });
      setIdleTimeout(c, 0);
      channel.write(OPENING);
      count(stream, 1);
      tally(perClient, client, 1);
      let live = false;
      const done = runSession({
        log: ctx.log,
        stream,
        filter: { kinds, namespace },
        resume,
        batchSize: config.batchSize,
        channel,
        events,
        signal: abort.signal,
        finish: finishing.signal,
        onLive: () => {
          live = true;
        },
        onReset: (reason) => {
          resets.inc();
          ctx.logger.debug("stream reset", { stream, reason });
        },
        onOverflow: () => {
          overflows.inc();
          tooSlow("subscriber too slow; closed with OVERFLOW", { stream });
        },
        stallMs: STALL_HEARTBEATS * config.heartbeat,
        progressMs: config.heartbeat,
        onStall: () => {
          overflows.inc();
          tooSlow("subscriber took nothing for two heartbeats; closed", { stream });
        },
        onDrainReadGivenUp: () => drainsGivenUp++,
        onStoreReadFailed: (error) =>
          readFailed("a read of the store failed; the stream ends, its client to come back", { stream, error }),
      })
        .catch((error: unknown) => {
          // Ended while it waited for its turn to read a snapshot: the client went away, or the sink stops.
          if (!abort.signal.aborted) ctx.logger.error("stream failed", { stream, error });
        })
        .finally(() => {
          channel.close();
          sessions.delete(abort);
          count(stream, -1);
          tally(perClient, client, -1);
        });
      sessions.set(abort, { channel, done, live: () => live });
      return new Response(channel.body, { headers: HEADERS });
    }

    return {
      async start() {
        if (running) return;
        running = true;
        finishing = new AbortController();
        watchRoute(ctx.http).serve = watch;
        heartbeat = setInterval(() => {
          for (const { channel } of sessions.values()) if (channel.hasRoom()) channel.write(HEARTBEAT);
        }, config.heartbeat);
      },
      async stop() {
        running = false;
        const route = watchRoutes.get(ctx.http);
        if (route?.serve === watch) route.serve = undefined;
        clearInterval(heartbeat);
        const open = [...sessions.values()];
        // A live stream first takes what is committed (the stop's last commit included), as every sink drains; one
        // still in its catch-up or snapshot ends now: its reconnect resumes from its last id, or starts over.
        finishing.abort();
        for (const { channel, live } of open) if (!live()) channel.close();
        const cut = setTimeout(() => {
          for (const { channel } of open) channel.close();
        }, DRAIN_MS);
        await Promise.all(open.map((s) => s.done));
        clearTimeout(cut);
        if (drainsGivenUp > 0)
          ctx.logger.warn(
            "sse sink's drain gave up a read of the store left unanswered; its streams end where they are, their " +
              "clients resuming from their last event id: nothing is lost",
            { streams: drainsGivenUp, waitedMs: DRAIN_READ_WAIT_MS },
          );
        drainsGivenUp = 0;
      },
    };
  },
});
