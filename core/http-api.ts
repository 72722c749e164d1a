/**
 * The read API over plain HTTP: `GET /v1/objects` (current state) and `GET /v1/updates`
 * (replay pages), plus the query parsing every /v1 route shares, so that a bad value is
 * always a 400 naming its parameter and an unknown stream a 404, never a 500.
 */
import * as v from "valibot";
import type { Context, Hono } from "hono";
import { BehindRetentionError, type CommittedLog, type ObjectQuery } from "./contract.ts";
import { ALL, isStreamName, toEnvelope, type CurrentObject } from "./types.ts";

/** A point in the log, as event ids and cursors spell it: `<epoch>:<version>`. */
export interface Position {
  epoch: string;
  version: number;
}

export function formatPosition(epoch: string, version: number): string {
  return `${epoch}:${version}`;
}

/** Parses `<epoch>:<version>`; undefined when it is not one. */
export function parsePosition(text: string): Position | undefined {
  const match = /^(\S+):(\d{1,15})$/.exec(text);
  return match ? { epoch: match[1]!, version: Number(match[2]) } : undefined;
}

export const streamParam = v.optional(
  v.pipe(v.string(), v.check(isStreamName, 'unknown stream: expected "all", "shared" or "node/<node name>"')),
  ALL,
);

export const positionParam = v.pipe(
  v.string(),
  v.check((text) => parsePosition(text) !== undefined, 'expected "<epoch>:<version>", as in an event id or a "next" cursor'),
  v.transform((text) => parsePosition(text)!),
);

/** A comma list of API kinds (`Pod,Node`); lowercase resource names are a common slip, so they are refused. */
export const kindsParam = v.pipe(
  v.string(),
  v.transform((text) => text.split(",").map((kind) => kind.trim())),
  v.array(v.pipe(v.string(), v.regex(/^[A-Z][A-Za-z0-9]*$/, 'expected API kinds such as "Pod,Node" (not resource names like "pods")'))),
  v.transform((kinds) => new Set(kinds)),
);

export const nonEmptyParam = v.pipe(v.string(), v.minLength(1, "must not be empty"));

export const UPDATES_MAX_LIMIT = 5000;

function limitParam(max: number, fallback: number) {
  return v.optional(
    v.pipe(
      v.string(),
      v.regex(/^\d+$/, "expected a positive integer"),
      v.transform(Number),
      v.minValue(1, "must be at least 1"),
      v.maxValue(max, `must be at most ${max}`),
    ),
    String(fallback),
  );
}

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

const objectsQuery = v.object({
  kind: v.optional(kindsParam),
  namespace: v.optional(nonEmptyParam),
  node: v.optional(nonEmptyParam),
  stream: streamParam,
});

const updatesQuery = v.object({
  stream: streamParam,
  since: v.optional(positionParam),
  limit: limitParam(UPDATES_MAX_LIMIT, 500),
});

/** Reads current objects with the kind filter applied: one kind goes to the store, several are filtered here. */
export async function readObjects(log: CommittedLog, query: Omit<ObjectQuery, "kind">, kinds: Set<string> | undefined): Promise<{ version: number; objects: CurrentObject[] }> {
  const single = kinds?.size === 1 ? [...kinds][0] : undefined;
  const snapshot = await log.snapshot({ ...query, ...(single ? { kind: single } : {}) });
  if (!kinds || single) return snapshot;
  return { version: snapshot.version, objects: snapshot.objects.filter((object) => kinds.has(object.kind)) };
}

/** Mounts /v1/objects and /v1/updates on the shared app. */
export function mountApi(app: Hono, log: CommittedLog): void {
  app.get("/v1/objects", async (c) => {
    const query = parseQuery(c, objectsQuery);
    if (!query.ok) return query.response;
    const { kind, namespace, node, stream } = query.value;
    const { version, objects } = await readObjects(log, { stream, namespace, node }, kind);
    return c.json({ epoch: log.epoch, version, items: objects });
  });

  app.get("/v1/updates", async (c) => {
    const query = parseQuery(c, updatesQuery);
    if (!query.ok) return query.response;
    const { stream, since, limit } = query.value;
    const gone = (reason: string) =>
      c.json({ error: `since: ${reason}; take the current state from /v1/objects and continue from its version`, parameter: "since", epoch: log.epoch, oldest: log.oldest() }, 410);
    if (since && since.epoch !== log.epoch) return gone(`epoch ${since.epoch} is not this store's (${log.epoch})`);
    const head = log.head();
    const after = since?.version ?? log.oldest() - 1;
    if (after > head) return gone(`version ${after} is ahead of the log (head ${head})`);
    try {
      const updates = await log.read({ stream, after, to: head, limit });
      const more = updates.length === limit;
      const last = more ? updates[updates.length - 1]!.version : head;
      return c.json({
        epoch: log.epoch,
        stream,
        items: updates.map((update) => toEnvelope(log.epoch, update, stream)),
        next: formatPosition(log.epoch, last),
        more,
      });
    } catch (error) {
      if (error instanceof BehindRetentionError) return gone(`version ${error.after} is older than retention (oldest ${error.oldest})`);
      throw error;
    }
  });
}
