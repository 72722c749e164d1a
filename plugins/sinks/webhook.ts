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
 * policy (`on4xx: skip`, `maxRetries`). A batch refused as too large (413) is sent in
 * halves, each with a body, id and signature of its own, and the cursor moves once all
 * of them are through; a 413 with Retry-After (a passing condition) is waited for instead.
 * After a restart the sink resumes after its cursor, so a receiver may see a batch again:
 * it de-duplicates by version. The loop (cursor, batching, lag, retention) is `consume`'s
 * (sdk/consume.ts); the request and its retry policy are webhook/delivery.ts.
 */
import {
  alias,
  batchSchema,
  batchSizeSchema,
  consume,
  defineSink,
  deprecatedKey,
  duration,
  jsonText,
  positiveDuration,
  retrySchema,
  stallAfterSchema,
  streamName,
  stringifyWithRaw,
  v,
  type Envelope,
} from "../../sdk/index.ts";
import type { Request } from "./webhook/attempt.ts";
import { createDelivery } from "./webhook/delivery.ts";
import { HEADER_NAME, HEADER_VALUE, headerNamedTwice } from "../../protocol/http-header.ts";
import { NAMESPACE_PATTERN, NAMESPACE_RULE } from "../../protocol/envelope.ts";
import { kindProblem } from "../../sdk/schema.ts";
import { clearTextHost, namesCredential, urlCredentialPlaces } from "../../protocol/clear-text.ts";

/** What the request must carry as kubemeta writes it: its body's type and framing, and its signature. */
const OWN_HEADERS = /^(content-.*|host|connection|transfer-encoding|te|trailer|upgrade|expect|x-kubemeta-.*)$/i;

const HTTP_URL = /^https?:\/\//i;

/**
 * The shortest `secret`: anyone who sees one signed request can try every short key against its signature, offline.
 * The bar `http.tokens` sets for a credential.
 */
const SECRET_MIN_LENGTH = 16;

/**
 * A filter's list of names, each one an object can have: one no object can (`pods`, `HttpRoute`, `Payments`) would
 * send nothing, and is refused with its `problem`. An empty one is said to be empty, as at every other key, and only
 * so.
 */
const names = (problem: (name: string) => string | undefined, description: string) => {
  const name = v.pipe(
    v.string(),
    v.minLength(1),
    v.check(
      (text) => text === "" || problem(text) === undefined,
      ({ input }) => problem(input as string) ?? "",
    ),
  );
  return v.optional(v.pipe(v.array(name), v.description(description)), []);
};

const schema = v.pipe(
  v.strictObject({
    url: v.pipe(
      v.string(),
      // One line for a url without its scheme (`example.com/hook`), which is no URL either.
      v.check(
        (url) => HTTP_URL.test(url) && URL.canParse(url),
        ({ input }) =>
          HTTP_URL.test(input as string)
            ? "must be a URL (a space in it, or a port out of range?)"
            : "must be an http:// or https:// URL",
      ),
      v.description("The receiver, `http://` or `https://`."),
    ),
    secret: v.pipe(
      v.string(),
      v.minLength(1, "must not be empty: every request is signed"),
      // Said once of an empty one, above.
      v.check(
        (secret) => secret === "" || secret.length >= SECRET_MIN_LENGTH,
        `must be at least ${SECRET_MIN_LENGTH} characters, as an http token: a short key is guessed from one signed ` +
          "request; use a long random value (openssl rand -hex 32)",
      ),
      v.description(`Key of the HMAC-SHA256 signature, at least ${SECRET_MIN_LENGTH} characters. Use \`\${ENV_VAR}\`.`),
    ),
    stream: v.optional(
      v.pipe(streamName, v.description("The stream to send: `all`, `shared` or `node/<name>`.")),
      "all",
    ),
    kinds: names(
      kindProblem,
      "Only these API kinds (`Pod`, `Service`, …; a resource's name, `pods`, is a config error, and so is a built-in " +
        "kind in another case, `HttpRoute`, naming the kind to write); empty sends all.",
    ),
    namespaces: names(
      (name) => (NAMESPACE_PATTERN.test(name) ? undefined : NAMESPACE_RULE),
      "Only objects in these namespaces (so no cluster-scoped objects; a name no namespace can have is a config " +
        "error); empty sends all.",
    ),
    batch: batchSchema({ size: 100, linger: "500ms" }),
    timeout: v.optional(
      v.pipe(positiveDuration, v.description("Per request; a request that takes longer is retried.")),
      "10s",
    ),
    stallAfter: stallAfterSchema(),
    headers: v.optional(
      v.pipe(
        // A record takes a list as the mapping of "0", "1", …: `["Authorization: Bearer …"]`, written as curl's -H
        // is, would send a header named 0, and no Authorization.
        v.custom<unknown>((input) => !Array.isArray(input), "write a mapping (Name: value), not a list"),
        v.record(
          v.pipe(
            v.string(),
            v.regex(HEADER_NAME, "a header name is letters, digits and !#$%&'*+-.^_`|~"),
            v.check((name) => !OWN_HEADERS.test(name), "kubemeta sets this header itself"),
          ),
          v.pipe(v.string(), v.regex(HEADER_VALUE, "a header value is one line of visible characters")),
        ),
        v.check(
          (headers) => headerNamedTwice(headers) === undefined,
          "a header is named twice (names are case-insensitive)",
        ),
        v.description(
          "Extra request headers, e.g. `Authorization` for a gateway; `User-Agent` replaces kubemeta's. Those of " +
            "the body and its framing (`Content-*`, `Host`, `Connection`, `Transfer-Encoding`, `TE`, `Trailer`, " +
            "`Upgrade`, `Expect`) and `X-Kubemeta-*` are kubemeta's own: naming one here is a config error.",
        ),
      ),
      {},
    ),
    maxRetries: v.optional(
      v.pipe(
        v.union([v.literal("forever"), v.pipe(v.number(), v.integer(), v.minValue(0))]),
        v.description("Retries of one batch before it is skipped and counted."),
      ),
      "forever",
    ),
    on4xx: v.optional(
      v.pipe(
        v.picklist(["retry", "skip"]),
        v.description(
          "A 4xx other than 408 and 429: `retry` the batch, or `skip` it (counted). A 413 (too large) is only for a " +
            "batch of one update: a larger one is sent again in halves; neither is, with Retry-After (waited for).",
        ),
      ),
      "retry",
    ),
    retry: retrySchema({ initial: "1s", max: "5m" }),
    from: v.optional(
      v.pipe(
        v.picklist(["oldest", "head"]),
        v.description(
          "Where a webhook with no cursor yet starts: the log's oldest update (once retention has pruned, an object " +
            "unchanged since is not sent: take the state from /v1/objects first), or `head` (what comes after its " +
            "first start, one that failed and was retried included).",
        ),
      ),
      "oldest",
    ),
    batchSize: deprecatedKey(batchSizeSchema(), "batch.size"),
    linger: deprecatedKey(duration, "batch.linger"),
    backoff: deprecatedKey(
      v.strictObject({
        initial: deprecatedKey(positiveDuration, "retry.initial"),
        max: deprecatedKey(duration, "retry.max"),
      }),
      "retry",
    ),
  }),
  // The old keys stand for the new ones, so they are held to the same rule (retrySchema's initialWithinMax).
  v.forward(
    v.check(
      ({ backoff, retry }) => (backoff?.initial ?? retry.initialMs) <= (backoff?.max ?? retry.maxMs),
      "initial must not be longer than max",
    ),
    ["backoff"],
  ),
  v.transform(({ batchSize, linger, backoff, ...config }) => ({
    ...config,
    batch: { size: alias(batchSize, config.batch.size), lingerMs: alias(linger, config.batch.lingerMs) },
    retry: {
      initialMs: alias(backoff?.initial, config.retry.initialMs),
      maxMs: alias(backoff?.max, config.retry.maxMs),
    },
  })),
);

export default defineSink({
  type: "webhook",
  description: "POSTs signed batches of updates to a URL, retried until delivered, at least once and in order.",
  schema,
  example: {
    url: "https://receiver.example.com/kubemeta",
    secret: "${WEBHOOK_SECRET}",
    kinds: ["Pod", "Service"],
    batch: { size: 100, linger: "500ms" },
    headers: { Authorization: "Bearer gateway-token" },
    on4xx: "skip",
  },
  warnings: ({ url, headers }) => {
    const host = clearTextHost(url);
    const sent = [
      ...Object.keys(headers)
        .filter(namesCredential)
        .map((name) => `headers.${name}`),
      ...urlCredentialPlaces(url),
    ];
    if (host === undefined || sent.length === 0) return [];
    // The secret itself is never sent, only a signature of each body with it: no warning for it alone.
    return [
      `${sent.join(", ")} sent to ${host} over http://, unencrypted: anyone on the network path reads them; ` +
        "use an https:// url",
    ];
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
      retry: config.retry,
      logger: ctx.logger,
      metrics: ctx.metrics,
      requestOf: request,
    });

    function request(envelopes: Envelope[]): Request {
      const epoch = ctx.log.epoch;
      const first = envelopes[0]!.version;
      const last = envelopes[envelopes.length - 1]!.version;
      const id = `${epoch}:${first}-${last}`;
      // JSON.stringify of the whole, with each envelope's object text embedded as it is (jsonText).
      const updates = `[${envelopes.map(jsonText).join(",")}]`;
      const [only] = envelopes.length === 1 ? envelopes : [];
      return {
        id,
        updates: envelopes.length,
        ...(only
          ? { only: { kind: only.kind, namespace: only.namespace, name: only.name, version: only.version } }
          : {}),
        body: stringifyWithRaw(
          { id, cluster: ctx.cluster, epoch, stream: config.stream, first, last },
          "updates",
          updates,
        ),
      };
    }

    return consume(ctx, {
      stream: config.stream,
      filter: (envelope) =>
        (kinds.size === 0 || kinds.has(envelope.kind)) &&
        (namespaces.size === 0 || (envelope.namespace !== null && namespaces.has(envelope.namespace))),
      batch: config.batch,
      retry: config.retry,
      from: config.from,
      stallAfterMs: config.stallAfter,
      // Its own retry policy (Retry-After, on4xx, maxRetries, a 413's split) runs inside delivery.deliver: it returns
      // once the batch is delivered or given up, and says meanwhile whether the receiver is failing (no drain at stop).
      failing: delivery.failing,
      async deliver(envelopes, signal) {
        if ((await delivery.deliver(envelopes, signal)) === "stopped") signal.throwIfAborted();
      },
    });
  },
});
