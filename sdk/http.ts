/**
 * What a plugin that serves HTTP shares with the host's read API: query parameters
 * validated the same way (a bad value is a 400 naming its parameter, an unknown stream
 * a 404, never a 500), snapshots filtered by kind and read in pages (a few at a time),
 * and streaming responses kept open.
 */
import * as v from "valibot";
import type { Context } from "hono";
import { SNAPSHOT_PAGE, type CommittedLog, type ObjectQuery } from "./contract.ts";
import type { CurrentObject } from "./model.ts";
import { snapshotTurn } from "./snapshot-turns.ts";
import { eachOnce } from "../protocol/each-once.ts";
import { KIND_PATTERN, NAMESPACE_PATTERN } from "../protocol/envelope.ts";
import { builtInKindInItsCase } from "../protocol/kinds.ts";
import { parsePosition } from "../protocol/position.ts";
import { isNodeName } from "../protocol/node-token.ts";
import { ALL, isStreamName, STREAM_NAME_RULE } from "../protocol/streams.ts";

/** The longest value a parameter may have: well above any legal one, and a bound on what a request costs. */
export const MAX_PARAM_LENGTH = 2048;
/** The most kinds one `kinds` list may name (Kubernetes has about 60 built-in kinds). */
export const MAX_KINDS = 64;

/** Every parameter is a string of bounded length first. */
export const textParam = v.pipe(v.string(), v.maxLength(MAX_PARAM_LENGTH, `at most ${MAX_PARAM_LENGTH} characters`));

export const streamParam = v.optional(
  v.pipe(textParam, v.check(isStreamName, `unknown stream: expected ${STREAM_NAME_RULE}`)),
  ALL,
);

export const positionParam = v.pipe(
  textParam,
  v.check(
    (text) => parsePosition(text) !== undefined,
    'expected "<epoch>:<version>", as in an event id or a "next" cursor',
  ),
  v.transform((text) => parsePosition(text)!),
);

/**
 * A comma list of API kinds (`Pod,Node`); lowercase resource names are a common slip, so they are refused, and so are
 * a built-in kind in another case (`HttpRoute`, which no object has) and a kind given twice, in the client library's
 * words (`"Pod" is given twice`).
 */
export const kindsParam = v.pipe(
  textParam,
  v.transform((text) => text.split(",").map((kind) => kind.trim())),
  v.maxLength(MAX_KINDS, `at most ${MAX_KINDS} kinds`),
  v.array(
    v.pipe(
      v.string(),
      v.regex(KIND_PATTERN, 'expected API kinds such as "Pod,Node" (not resource names like "pods")'),
      builtInKindInItsCase(),
    ),
  ),
  eachOnce(),
  v.transform((kinds) => new Set(kinds)),
);

/**
 * A filter another route takes and this one does not (`node` on /v1/watch, `namespace` on /v1/updates): refused,
 * saying what to write instead, rather than ignored, which answered every object as if it had filtered.
 */
export function refusedParam(instead: string) {
  return v.optional(
    v.pipe(
      textParam,
      v.check(() => false, instead),
    ),
  );
}

/**
 * Another spelling of this route's filter: another route's (`kinds` on /v1/objects, `kind` on /v1/watch) or the
 * webhook sink's config's (`namespaces`: a route filters by one).
 */
export function otherRoutesParam(name: string) {
  return refusedParam(`this route takes ${name}, not this spelling`);
}

/** A node no object can be on (`Bad_Name`) is a mistake to say, not an empty answer to give. */
export const nodeParam = v.pipe(textParam, v.check(isNodeName, "expected a legal node name (DNS-1123 subdomain)"));

/** Likewise a namespace no object can be in (`Payments`, `a.b`): a namespace's name is a DNS-1123 label. */
export const namespaceParam = v.pipe(
  textParam,
  v.regex(NAMESPACE_PATTERN, "expected a legal namespace name (DNS-1123 label)"),
);

export type Parsed<T> = { ok: true; value: T } | { ok: false; response: Response };

/**
 * A 400 naming the first of `names` the query gives more than once (`?kind=Pod&kind=Node`): each takes one value,
 * and the first one alone, taken silently, answered another question than the one asked. Undefined when none is.
 */
export function refuseRepeated(c: Context, names: Iterable<string>): Response | undefined {
  for (const name of names)
    if ((c.req.queries(name)?.length ?? 0) > 1)
      return refused(c, name, "given more than once; it takes one value", 400).response;
  return undefined;
}

/**
 * Validates the query string; a bad `stream` is a 404 (no such stream), any other bad value a 400, and so is a
 * parameter of the schema given twice. Parameters the schema does not name are ignored, but bounded in length like
 * the others: no parameter makes a request costly.
 */
export function parseQuery<S extends v.GenericSchema & { entries: v.ObjectEntries }>(
  c: Context,
  schema: S,
): Parsed<v.InferOutput<S>> {
  const garbled = undecodable(c.req.url);
  if (garbled !== undefined) return refused(c, garbled, "not percent-encoded UTF-8");
  const query = c.req.query();
  const long = Object.entries(query).find(
    ([name, value]) => name.length > MAX_PARAM_LENGTH || value.length > MAX_PARAM_LENGTH,
  );
  if (long) return refused(c, long[0].slice(0, 64), `at most ${MAX_PARAM_LENGTH} characters`);
  const repeated = refuseRepeated(c, Object.keys(schema.entries));
  if (repeated) return { ok: false, response: repeated };
  const result = v.safeParse(schema, query);
  if (result.success) return { ok: true, value: result.output };
  const issue = result.issues[0];
  return refused(c, String(issue.path?.[0]?.key ?? ""), issue.message);
}

/** A query component decoded; undefined when it is not percent-encoded UTF-8 (`%FF`). */
function decoded(text: string): string | undefined {
  try {
    return decodeURIComponent(text.replaceAll("+", " "));
  } catch {
    return undefined;
  }
}

/** The first parameter whose name or value is not percent-encoded UTF-8: Hono would take it as written. */
function undecodable(url: string): string | undefined {
  const start = url.indexOf("?");
  if (start < 0) return undefined;
  for (const pair of url.slice(start + 1).split("&")) {
    const split = pair.indexOf("=");
    const [name, value] = split < 0 ? [pair, ""] : [pair.slice(0, split), pair.slice(split + 1)];
    const parameter = decoded(name);
    if (parameter === undefined) return name.slice(0, 64);
    if (decoded(value) === undefined) return parameter;
  }
  return undefined;
}

/** A bad `stream` names no stream there is (404) unless `status` says otherwise; any other parameter's is a 400. */
function refused(
  c: Context,
  parameter: string,
  message: string,
  status: 400 | 404 = parameter === "stream" ? 404 : 400,
): { ok: false; response: Response } {
  return { ok: false, response: c.json({ error: `${parameter}: ${message}`, parameter }, status) };
}

/** One kind goes to the store; several are filtered here (`filter` is undefined when none is needed). */
function kindQuery(query: Omit<ObjectQuery, "kind">, kinds: Set<string> | undefined) {
  const single = kinds?.size === 1 ? [...kinds][0] : undefined;
  const filter = kinds && !single ? kinds : undefined;
  return { query: single ? { ...query, kind: single } : query, filter };
}

/**
 * Snapshot reads that HTTP clients (SSE resets, `/v1/objects`) hold at once per log (sdk/snapshot-turns.ts): two
 * leave the store's other read transactions to NATS resets and to the core's own reads, whatever HTTP clients do.
 */
export const HTTP_SNAPSHOT_READS = 2;

/**
 * Current objects of `kinds` (all when undefined), SNAPSHOT_PAGE at a time (CommittedLog.snapshotPages): every page
 * carries the version of the one consistent read they all come from; the first comes even when empty. The read, and
 * the turn among HTTP_SNAPSHOT_READS, are held until the last page is taken or the loop is left: leave it as soon as
 * the client is gone. While it waits for its turn, `signal` ends the wait (it throws the signal's reason): a generator
 * cannot be left before it yields.
 */
export async function* readObjectPages(
  log: CommittedLog,
  query: Omit<ObjectQuery, "kind">,
  kinds: Set<string> | undefined,
  signal?: AbortSignal,
): AsyncGenerator<{ version: number; objects: CurrentObject[] }> {
  const { query: stored, filter } = kindQuery(query, kinds);
  const endTurn = await snapshotTurn(log, "http", HTTP_SNAPSHOT_READS, signal);
  try {
    // A client gone before a page is read costs no read: reconnect storms leave many such behind.
    signal?.throwIfAborted();
    for await (const page of log.snapshotPages(stored, SNAPSHOT_PAGE)) {
      yield filter ? { version: page.version, objects: page.objects.filter((o) => filter.has(o.kind)) } : page;
      signal?.throwIfAborted();
    }
  } finally {
    endTurn();
  }
}

/** What Hono on Bun.serve passes as `c.env`: the server, which knows more of a request than the request itself. */
interface BunServer {
  timeout?(request: Request, seconds: number): void;
  requestIP?(request: Request): { address: string } | null;
}

/**
 * The idle timeout of this request's connection, in seconds: Bun.serve closes a response that sends nothing for
 * that long, streams included. 0 keeps it open however quiet (a stream that sends its own heartbeats).
 */
export function setIdleTimeout(c: Context, seconds: number): void {
  (c.env as BunServer | undefined)?.timeout?.(c.req.raw, seconds);
}

/**
 * The address the request came from: the peer's, so behind a proxy every client has the proxy's (forwarding
 * headers are not trusted: anyone can send them). Empty when the server cannot tell.
 */
export function clientAddress(c: Context): string {
  return (c.env as BunServer | undefined)?.requestIP?.(c.req.raw)?.address ?? "";
}
