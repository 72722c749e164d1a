/**
 * The read API over plain HTTP: `GET /v1/objects` (current state) and `GET /v1/updates`
 * (replay pages). Query parsing is shared with the SSE sink (sdk/http.ts).
 */
import * as v from "valibot";
import type { Hono } from "hono";
import { BehindRetentionError, type CommittedLog } from "../sdk/contract.ts";
import {
  kindsParam,
  nonEmptyParam,
  parseQuery,
  positionParam,
  readObjects,
  streamParam,
  textParam,
} from "../sdk/http.ts";
import { toEnvelope } from "../sdk/model.ts";
import { formatPosition } from "../protocol/position.ts";

export const UPDATES_MAX_LIMIT = 5000;

function limitParam(max: number, fallback: number) {
  return v.optional(
    v.pipe(
      textParam,
      v.regex(/^\d+$/, "expected a positive integer"),
      v.transform(Number),
      v.minValue(1, "must be at least 1"),
      v.maxValue(max, `must be at most ${max}`),
    ),
    String(fallback),
  );
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
      c.json(
        {
          error: `since: ${reason}; take the current state from /v1/objects and continue from its version`,
          parameter: "since",
          epoch: log.epoch,
          oldest: log.oldest(),
        },
        410,
      );
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
      if (error instanceof BehindRetentionError)
        return gone(`version ${error.after} is older than retention (oldest ${error.oldest})`);
      throw error;
    }
  });
}
