/**
 * `webhook`: POSTs batches of envelopes, signed, to one URL, and never loses one.
 *
 * Body: `{ id, cluster, epoch, stream, first, last, updates: [envelope, …] }`, where
 * `first` and `last` are the versions of the first and last update and `id` is
 * `<epoch>:<first>-<last>` (the same on every retry of a batch). Headers:
 * `X-Kubemeta-Id`, `X-Kubemeta-Timestamp` (Unix seconds) and `X-Kubemeta-Signature:
 * sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" keyed with the secret>`.
 *
 * Delivery is at least once and in order: one batch at a time, and the cursor (kept in
 * the store) moves only when the receiver answered 2xx, or when a batch was given up by
 * policy (`on4xx: skip`, `maxRetries`). After a restart the sink resumes after its
 * cursor, so a receiver may see a batch again: it de-duplicates by version. The loop
 * (cursor, batching, lag, retention) is `consume`'s (core/consume.ts); the request and
 * its retry policy are webhook/delivery.ts.
 */
import * as v from "valibot";
import { defineSink } from "../../sdk/contract.ts";
import { consume } from "../../sdk/consume.ts";
import { duration, positiveInt } from "../../sdk/schema.ts";
import { isStreamName } from "../../protocol/streams.ts";
import { toEnvelope, type Update } from "../../sdk/model.ts";
import { createDelivery, type Request } from "./webhook/delivery.ts";

const schema = v.strictObject({
  /** The receiver (http or https). */
  url: v.pipe(v.string(), v.url("must be a URL"), v.regex(/^https?:\/\//i, "must be an http:// or https:// URL")),
  /** Key of the HMAC-SHA256 signature; use `${ENV_VAR}` to keep it out of the file. */
  secret: v.pipe(v.string(), v.minLength(1, "must not be empty: every request is signed")),
  /** The stream to send: `all`, `shared` or `node/<name>`. */
  stream: v.optional(v.pipe(v.string(), v.check(isStreamName, 'must be "all", "shared" or "node/<name>"')), "all"),
  /** Only these kinds (e.g. Pod, Service); empty sends every kind. */
  kinds: v.optional(v.array(v.pipe(v.string(), v.minLength(1))), []),
  /** Only objects in these namespaces (so no cluster-scoped objects); empty sends all. */
  namespaces: v.optional(v.array(v.pipe(v.string(), v.minLength(1))), []),
  /** Most updates in one request. */
  batchSize: v.optional(v.pipe(positiveInt, v.maxValue(10_000)), 100),
  /** Longest wait for a batch to fill once it holds an update. */
  linger: v.optional(duration, "500ms"),
  /** Per request; a request that takes longer is retried. */
  timeout: v.optional(duration, "10s"),
  /** Extra request headers (e.g. an Authorization for a gateway). */
  headers: v.optional(v.record(v.string(), v.string()), {}),
  /** Retries of one batch before it is skipped and counted; "forever" never gives up. */
  maxRetries: v.optional(v.union([v.literal("forever"), v.pipe(v.number(), v.integer(), v.minValue(0))]), "forever"),
  /** A 4xx other than 408 and 429: retry the batch, or skip it (counted in kubemeta_webhook_skipped_updates_total). */
  on4xx: v.optional(v.picklist(["retry", "skip"]), "retry"),
  /** Exponential backoff with full jitter between retries. */
  backoff: v.optional(v.strictObject({ initial: v.optional(duration, "1s"), max: v.optional(duration, "5m") }), {}),
  /** Where a webhook without a cursor starts: the oldest update the store retains, or the next one committed. */
  from: v.optional(v.picklist(["oldest", "head"]), "oldest"),
});

export default defineSink({
  type: "webhook",
  description: "POSTs signed batches of updates to a URL, retried until delivered, at least once and in order.",
  schema,
  example: {
    url: "https://receiver.example.com/kubemeta",
    secret: "${WEBHOOK_SECRET}",
    kinds: ["Pod", "Service"],
    batchSize: 100,
    linger: "500ms",
    headers: { Authorization: "Bearer gateway-token" },
    on4xx: "skip",
  },
  create(config, ctx) {
    const kinds = new Set(config.kinds);
    const namespaces = new Set(config.namespaces);
    const delivery = createDelivery({
      sink: ctx.name,
      url: config.url,
      secret: config.secret,
      headers: config.headers,
      timeoutMs: config.timeout,
      maxRetries: config.maxRetries === "forever" ? Infinity : config.maxRetries,
      on4xx: config.on4xx,
      backoff: { initialMs: config.backoff.initial, maxMs: config.backoff.max },
      logger: ctx.logger,
      metrics: ctx.metrics,
    });

    function request(updates: Update[]): Request {
      const epoch = ctx.log.epoch;
      const first = updates[0]!.version;
      const last = updates[updates.length - 1]!.version;
      const id = `${epoch}:${first}-${last}`;
      const envelopes = updates.map((update) => toEnvelope(epoch, update, config.stream));
      return { id, updates: updates.length, body: JSON.stringify({ id, cluster: ctx.cluster, epoch, stream: config.stream, first, last, updates: envelopes }) };
    }

    return consume(ctx, {
      stream: config.stream,
      filter: (update) =>
        (kinds.size === 0 || kinds.has(update.kind)) && (namespaces.size === 0 || (update.namespace !== null && namespaces.has(update.namespace))),
      batchSize: config.batchSize,
      lingerMs: config.linger,
      from: config.from,
      // Its own retry policy (Retry-After, on4xx, maxRetries) runs inside send(): it returns once the batch is delivered or given up.
      async deliver(updates, signal) {
        if ((await delivery.send(request(updates), signal)) === "stopped") signal.throwIfAborted();
      },
    });
  },
});
