/**
 * The read API over plain HTTP: `GET /v1/objects` (current state) and `GET /v1/updates`
 * (replay pages). Query parsing is shared with the SSE sink (sdk/http.ts).
 *
 * `/v1/objects` streams its body: the state is read from the store a page at a time as the
 * client takes it (sdk/http.ts readObjectPages), and written as the very bytes `c.json` would
 * write for the whole of it; a state within the first page is sent whole, with its length.
 * The pages are one consistent read, so the `version` at the top, known from the first page,
 * is the one every item is consistent with. That read holds a store read transaction until the
 * last page: a client that goes away ends it, and one that takes nothing is closed by
 * `http.idleTimeout`. Only while the request waits for its turn
 * among the snapshots read at once (sdk/http.ts HTTP_SNAPSHOT_READS), sending nothing through
 * no fault of its client, is it exempt.
 * A failure before the first byte gets the status it always had; after it, the response is
 * aborted, so the client sees a failed read, never a shorter body that still parses. A new store
 * answers 503 until its sources have synced, as its SSE and NATS resets wait for them. One a stop's drain finds still
 * unanswered as its time runs out gets a 503 too: its connection is closed next.
 */
import * as v from "valibot";
import type { Context, Hono } from "hono";
import { type Logger, rateLimitedWarn } from "../sdk/telemetry.ts";
import { isBehindRetention, type CommittedLog } from "../sdk/contract.ts";
import {
  kindsParam,
  nodeParam,
  namespaceParam,
  otherRoutesParam,
  parseQuery,
  positionParam,
  readObjectPages,
  refusedParam,
  setIdleTimeout,
  streamParam,
  textParam,
} from "../sdk/http.ts";
import { envelopeJson, stringifyWithRaw, type Update } from "../sdk/model.ts";
import { objectsBody } from "./objects-body.ts";
import { formatPosition } from "../protocol/position.ts";
import type { ResetReason } from "../protocol/replay.ts";
import {
  checkResumePoint,
  isStoreUnreadable,
  retiredReason,
  STORE_UNREADABLE_RETRY_MS,
  wholeYet,
} from "../sdk/resume.ts";

/** A 503 the reader outlasts by asking again after Retry-After. */
function retryLater(c: Context, error: string): Response {
  c.header("retry-after", String(STORE_UNREADABLE_RETRY_MS / 1000));
  return c.json({ error }, 503);
}

/** A read of the store failed: a store down for a while, which readers outlast by asking again; no bad request. */
function storeUnreadable(c: Context, warn: ReturnType<typeof rateLimitedWarn>, error: unknown): Response {
  warn("a read of the store failed; answered 503", { path: c.req.path, error });
  return retryLater(c, "the store cannot be read now; retry later");
}

/** A snapshot the drain's end found unanswered: another replica (or this one, restarted) answers it. */
const SHUTTING_DOWN = "kubemeta is shutting down; ask again later";

const UPDATES_MAX_LIMIT = 5000;

function limitParam(max: number, fallback: number) {
  return v.optional(
    v.pipe(
      textParam,
      // As a position's version: `010` is no spelling of 10 kubemeta writes, so it is refused, not read as one.
      v.regex(/^(0|[1-9]\d*)$/, "expected a positive integer, without leading zeros"),
      v.transform(Number),
      v.minValue(1, "must be at least 1"),
      v.maxValue(max, `must be at most ${max}`),
    ),
    String(fallback),
  );
}

const objectsQuery = v.object({
  kind: v.optional(kindsParam),
  kinds: otherRoutesParam("kind"),
  namespace: v.optional(namespaceParam),
  namespaces: otherRoutesParam("namespace"),
  node: v.optional(nodeParam),
  stream: streamParam,
  // /v1/updates' paging, which a snapshot (one version, whole) has no use for: taken silently, it answered all.
  since: refusedParam(
    "this route answers the whole current state: follow on from its version with since, on /v1/updates or /v1/watch",
  ),
  limit: refusedParam("this route answers the whole current state, in pages it streams: limit pages /v1/updates"),
});

/** A replay page is the stream's every update: a filter of the other routes is said to be none here. */
const noFilter = refusedParam(
  "this route filters nothing: it pages through every update of its stream (stream=node/<node name> for a node's; " +
    "/v1/watch filters by kinds and namespace)",
);

const updatesQuery = v.object({
  stream: streamParam,
  since: v.optional(positionParam),
  limit: limitParam(UPDATES_MAX_LIMIT, 500),
  kind: noFilter,
  kinds: noFilter,
  namespace: noFilter,
  namespaces: noFilter,
  node: noFilter,
});

/**
 * Mounts /v1/objects and /v1/updates on the shared app; `idleTimeout` is the listener's (seconds, 0 for none).
 * `refused` aborts once the store serves no read any more (replaced: Host.failed): the snapshots waiting for their
 * turn are answered 503 then, as the reads it refuses are, where they waited on for turns held by slow clients and the
 * stop that follows cut them, unanswered. `drainOver` (HttpServer's) aborts as a stop's drain runs out of time: a
 * snapshot not answered yet (waiting for its turn, or for its first pages) is answered 503 then, where its connection
 * was closed with nothing (ECONNRESET); one whose body streams is left to be cut.
 */
export function mountApi(
  app: Hono,
  log: CommittedLog,
  logger: Logger,
  idleTimeout: number,
  ends: { refused?: AbortSignal; drainOver?: AbortSignal } = {},
): void {
  const { refused, drainOver } = ends;
  const whole = wholeYet(log);
  // Once a minute: clients polling a store that is down would otherwise write a line per request.
  const readFailed = rateLimitedWarn(logger);

  app.get("/v1/objects", async (c) => {
    const query = parseQuery(c, objectsQuery);
    if (!query.ok) return query.response;
    // The store's state is read from the store, but its version is one this process's streams would never get to.
    const retired = retiredReason(log);
    if (retired) return retryLater(c, retired);
    // A client that reconciles its view with a partial state (after a new epoch) would drop what is not listed yet.
    if (!whole()) return retryLater(c, "the store's first sync is under way; ask again later");
    const { kind, namespace, node, stream } = query.value;
    const { signal } = c.req.raw;
    const unanswered = new AbortController();
    const answerNow = () => unanswered.abort(new Error(SHUTTING_DOWN));
    if (drainOver?.aborted) answerNow();
    drainOver?.addEventListener("abort", answerNow, { once: true });
    const ended = AbortSignal.any([signal, unanswered.signal, ...(refused ? [refused] : [])]);
    const pages = readObjectPages(log, { stream, namespace, node }, kind, ended);
    // Waiting for its turn among the snapshots read at once, it sends nothing through no fault of its client.
    setIdleTimeout(c, 0);
    let body: string | ReadableStream<Uint8Array>;
    try {
      // Read before answering: a store that fails now fails the request with its usual status.
      body = await objectsBody(log.epoch, pages, signal, unanswered.signal, logger).finally(() =>
        setIdleTimeout(c, idleTimeout),
      );
    } catch (error) {
      // Gone while it waited for its turn: nobody to answer.
      if (signal.aborted) return new Response(null, { status: 499 });
      if (unanswered.signal.aborted) return retryLater(c, SHUTTING_DOWN);
      return storeUnreadable(c, readFailed, error);
    } finally {
      drainOver?.removeEventListener("abort", answerNow);
    }
    return new Response(body, { headers: { "content-type": "application/json" } });
  });

  app.get("/v1/updates", async (c) => {
    const query = parseQuery(c, updatesQuery);
    if (!query.ok) return query.response;
    const { stream, since, limit } = query.value;
    // A page that ends at this log's head would tell its client it has all there is (`more: false`).
    const retired = retiredReason(log);
    if (retired) return retryLater(c, retired);
    // `oldest`: of the log, or of the stream when retention removed its updates after `since` (its horizon + 1).
    const gone = (reason: string, oldest = log.oldest()) =>
      c.json(
        {
          error: `since: ${reason}; take the current state from /v1/objects and continue from its version`,
          parameter: "since",
          epoch: log.epoch,
          oldest,
        },
        410,
      );
    const aheadOfLog = (version: number, head: number) => gone(`version ${version} is ahead of the log (head ${head})`);
    const olderThanRetention = (version: number, oldest: number) =>
      gone(`version ${version} is older than retention (oldest ${oldest})`, oldest);
    // Without `since`: from the oldest update the stream keeps (below the log's for a quiet stream: see horizon).
    const oldestKept = () => log.horizon(stream);
    if (since) {
      let reason: ResetReason | undefined;
      try {
        reason = await checkResumePoint(log, stream, since, c.req.raw.signal);
      } catch (error) {
        // Behind a store it cannot read, or a read (of retention's horizon) failing: either way, ask again.
        return isStoreUnreadable(error) ? retryLater(c, error.message) : storeUnreadable(c, readFailed, error);
      }
      if (reason === "other-epoch") return gone(`epoch ${since.epoch} is not this store's (${log.epoch})`);
      if (reason === "ahead-of-log") return aheadOfLog(since.version, log.head());
      if (reason === "behind-retention") return olderThanRetention(since.version, oldestKept() + 1);
    }
    const head = log.head();
    const after = since?.version ?? oldestKept();
    // Only without `since`: a follower behind retention knows the store's horizons before its log reaches them.
    if (after > head) return aheadOfLog(after, head);
    const read = async (): Promise<Update[]> => {
      if (since) return log.read({ stream, after, to: head, limit });
      // Without `since` the page starts at the horizon, no reader's position: a prune that overtakes it (one still
      // running, which the log hears of only as it reads, chunk after chunk) moves the start on and resets no one.
      for (let from = after; ; from = oldestKept()) {
        try {
          return await log.read({ stream, after: from, to: head, limit, noPosition: true });
        } catch (error) {
          // The read moved the horizon past `from`: each turn starts further on.
          if (!isBehindRetention(error)) throw error;
        }
      }
    };
    try {
      const updates = await read();
      // A full page that ends at the head leaves nothing more: `more` says so, rather than cost a page that is empty.
      const more = updates.length === limit && updates[updates.length - 1]!.version < head;
      const last = more ? updates[updates.length - 1]!.version : head;
      // c.json()'s bytes, with each update's stored object text embedded as it is (envelopeJson).
      const items = `[${updates.map((update) => envelopeJson(log.epoch, update, stream)).join(",")}]`;
      const next = formatPosition(log.epoch, last);
      return c.body(stringifyWithRaw({ epoch: log.epoch, stream }, "items", items, { next, more }), 200, {
        "content-type": "application/json",
      });
    } catch (error) {
      if (isBehindRetention(error)) return olderThanRetention(error.after, error.oldest);
      return storeUnreadable(c, readFailed, error);
    }
  });
}
