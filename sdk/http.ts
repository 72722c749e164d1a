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

export const streamParam = v.optional(
  v.pipe(v.string(), v.check(isStreamName, `unknown stream: expected ${STREAM_NAME_RULE}`)),
  ALL,
);

export const positionParam = v.pipe(
  v.string(),
  v.check(
    (text) => parsePosition(text) !== undefined,
    'expected "<epoch>:<version>", as in an event id or a "next" cursor',
  ),
  v.transform((text) => parsePosition(text)!),
);

/** A comma list of API kinds (`Pod,Node`); lowercase resource names are a common slip, so they are refused. */
export const kindsParam = v.pipe(
  v.string(),
  v.transform((text) => text.split(",").map((kind) => kind.trim())),
  v.array(
    v.pipe(
      v.string(),
      v.regex(/^[A-Z][A-Za-z0-9]*$/, 'expected API kinds such as "Pod,Node" (not resource names like "pods")'),
    ),
  ),
  v.transform((kinds) => new Set(kinds)),
);

export const nonEmptyParam = v.pipe(v.string(), v.minLength(1, "must not be empty"));

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

/**
 * Keeps a streaming response open past the listener's idle timeout (Bun.serve closes a
 * response that sends nothing for `idleTimeout`, streams included).
 */
export function exemptFromIdleTimeout(c: Context): void {
  const server = c.env as { timeout?: (request: Request, seconds: number) => void } | undefined;
  server?.timeout?.(c.req.raw, 0);
}
