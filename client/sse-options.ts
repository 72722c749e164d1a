/**
 * subscribeSse's options: what they are, and the schema that checks them at the call (client/options.ts has the
 * pieces shared with subscribeNats).
 */
import * as v from "valibot";
import {
  backoff,
  type EntriesOf,
  handler,
  handlerEntries,
  milliseconds,
  strictOptions,
  streamsSchema,
} from "./options.ts";
import { eachOnce } from "../protocol/each-once.ts";
import { KIND_PATTERN, NAMESPACE_PATTERN } from "../protocol/envelope.ts";
import { builtInKindInItsCase } from "../protocol/kinds.ts";
import { BEARER_TOKEN_PATTERN } from "../protocol/token.ts";
import { HEADER_NAME, HEADER_VALUE, headerNamedTwice } from "../protocol/http-header.ts";
import type { InformerHandlers } from "./cache.ts";
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
  /**
   * Asked before each read of a stream: a promise while what the callbacks hand on cannot go further (a pipe nobody
   * reads), resolved once it can. Nothing is read meanwhile, so the server's bound applies (it closes the stream with
   * `OVERFLOW`, and the client resumes after the last update it took) rather than this process's memory; the wait is
   * no silence (`idleTimeoutMs`).
   */
  paused?: () => Promise<void> | undefined;
}
const RECONNECT_MS = { initialMs: 250, maxMs: 10_000 };
const IDLE_TIMEOUT_MS = 45_000;

/**
 * subscribeSse's options as it takes them. What the server would refuse for ever (a 400 or 404 on every reconnect),
 * and what fetch would fail on every time (a token no header carries), is refused at once, as over NATS.
 */
export const sseOptionsSchema = v.pipe(
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
            builtInKindInItsCase(),
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
        // A record takes a list as the mapping of "0", "1", …: `["Authorization: Bearer …"]` would send a header
        // named 0, and no Authorization.
        v.custom<unknown>((input) => !Array.isArray(input), "an object of header values (name: value), not a list"),
        // What fetch throws on at every request; a value is not quoted (it may be a key).
        v.record(
          v.pipe(v.string(), v.regex(HEADER_NAME, "a header's name is letters, digits and !#$%&'*+-.^_`|~")),
          v.pipe(
            v.string("a header's value is a string"),
            v.regex(HEADER_VALUE, "a header's value is one line of Latin-1 characters, without control characters"),
          ),
          "an object of header values",
        ),
        // fetch would join the two values (or the client's own value and this one) into one that neither means.
        v.check(
          (headers) => headerNamedTwice(headers) === undefined,
          ({ input }) => `${headerNamedTwice(input)} is named twice (names are case-insensitive)`,
        ),
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
          // Each would fail every request: a 405, or fetch's refusal of a GET with a body.
          method: v.optional(
            v.pipe(
              v.string("the stream is a GET; leave the method out"),
              v.check((method) => method.toUpperCase() === "GET", "the stream is a GET; leave the method out"),
            ),
          ),
          body: v.nullish(v.undefined("the stream is a GET, which has no body")),
        },
        "an object of fetch options",
      ),
    ),
    reconnect: backoff(RECONNECT_MS),
    idleTimeoutMs: v.optional(milliseconds(), IDLE_TIMEOUT_MS),
    paused: handler,
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
