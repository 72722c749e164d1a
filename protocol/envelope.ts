/**
 * The update envelope: the JSON every consumer receives, over SSE, NATS, webhooks and
 * sink plugins alike (DESIGN.md, "The update envelope").
 */

export type ChangeType = "ADDED" | "MODIFIED" | "DELETED";

/** An API kind as `kind` spells it (`Pod`, `Rollout`), never a resource name (`pods`): filters name kinds so. */
export const KIND_PATTERN = /^[A-Z][A-Za-z0-9]*$/;

/** A slim object: only what telemetry needs (see core/slim.ts). Plain JSON. */
export type SlimObject = Record<string, unknown>;

/** The JSON a consumer receives. `stream` and `prev` are those of the stream it follows. */
export interface Envelope {
  epoch: string;
  version: number;
  /** The version of the previous update of `stream` (0 when it is the first). */
  prev: number;
  stream: string;
  type: ChangeType;
  kind: string;
  uid: string;
  namespace: string | null;
  name: string;
  /** The object's node, if any. */
  node: string | null;
  resourceVersion: string;
  /** ISO-8601 time of commit. */
  time: string;
  object: SlimObject;
}
