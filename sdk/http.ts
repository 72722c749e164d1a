/**
 * What a plugin that serves HTTP shares with the host's read API: query parameters
 * validated the same way (a bad value is a 400 naming its parameter, an unknown stream
 * a 404, never a 500), snapshots filtered by kind, and streaming responses kept open.
 */
import * as v from "valibot";
import type { Context } from "hono";
import type { CommittedLog, ObjectQuery } from "./contract.ts";
import type { CurrentObject } from "./model.ts";
import { parsePosition } from "../protocol/position.ts";
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

/** A comma list of API kinds (`Pod,Node`); lowercase resource names are a common slip, so they are refused. */
export const kindsParam = v.pipe(
  textParam,
  v.transform((text) => text.split(",").map((kind) => kind.trim())),
  v.maxLength(MAX_KINDS, `at most ${MAX_KINDS} kinds`),
  v.array(
    v.pipe(
      v.string(),
      v.regex(/^[A-Z][A-Za-z0-9]*$/, 'expected API kinds such as "Pod,Node" (not resource names like "pods")'),
    ),
  ),
  v.transform((kinds) => new Set(kinds)),
);

export const nonEmptyParam = v.pipe(textParam, v.minLength(1, "must not be empty"));

export type Parsed<T> = { ok: true; value: T } | { ok: false; response: Response };

/** Validates the query string; a bad `stream` is a 404 (no such stream), any other bad value a 400. */
export function parseQuery<S extends v.GenericSchema>(c: Context, schema: S): Parsed<v.InferOutput<S>> {
  const result = v.safeParse(schema, c.req.query());
  if (result.success) return { ok: true, value: result.output };
  const issue = result.issues[0];
  const parameter = String(issue.path?.[0]?.key ?? "");
  const status = parameter === "stream" ? 404 : 400;
  return { ok: false, response: c.json({ error: `${parameter}: ${issue.message}`, parameter }, status) };
}

/** Reads current objects with the kind filter applied: one kind goes to the store, several are filtered here. */
export async function readObjects(
  log: CommittedLog,
  query: Omit<ObjectQuery, "kind">,
  kinds: Set<string> | undefined,
): Promise<{ version: number; objects: CurrentObject[] }> {
  const single = kinds?.size === 1 ? [...kinds][0] : undefined;
  const snapshot = await log.snapshot({ ...query, ...(single ? { kind: single } : {}) });
  if (!kinds || single) return snapshot;
  return { version: snapshot.version, objects: snapshot.objects.filter((object) => kinds.has(object.kind)) };
}

/** What Hono on Bun.serve passes as `c.env`: the server, which knows more of a request than the request itself. */
interface BunServer {
  timeout?(request: Request, seconds: number): void;
  requestIP?(request: Request): { address: string } | null;
}

/**
 * Keeps a streaming response open past the listener's idle timeout (Bun.serve closes a
 * response that sends nothing for `idleTimeout`, streams included).
 */
export function exemptFromIdleTimeout(c: Context): void {
  (c.env as BunServer | undefined)?.timeout?.(c.req.raw, 0);
}

/**
 * The address the request came from: the peer's, so behind a proxy every client has the proxy's (forwarding
 * headers are not trusted: anyone can send them). Empty when the server cannot tell.
 */
export function clientAddress(c: Context): string {
  return (c.env as BunServer | undefined)?.requestIP?.(c.req.raw)?.address ?? "";
}
