/**
 * The update envelope: the JSON every consumer receives, over SSE, NATS, webhooks and
 * sink plugins alike (DESIGN.md, "The update envelope").
 */

export type ChangeType = "ADDED" | "MODIFIED" | "DELETED";

/** An API kind as `kind` spells it (`Pod`, `Rollout`), never a resource name (`pods`): filters name kinds so. */
export const KIND_PATTERN = /^[A-Z][A-Za-z0-9]*$/;
/** What a config is told of a name KIND_PATTERN refuses: a rule or filter by it would match nothing. */
export const KIND_RULE = "must be an API kind such as Pod or Rollout (not a resource such as pods)";
/** A namespace's name: a DNS-1123 label (no object is in any other). */
export const NAMESPACE_PATTERN = /^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$/;
/** What a config is told of a name NAMESPACE_PATTERN refuses: one no namespace can have matches nothing. */
export const NAMESPACE_RULE =
  "must be a namespace's name (a DNS-1123 label: lowercase letters, digits and '-', at most 63), such as payments";

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

const CHANGE_TYPES: readonly unknown[] = ["ADDED", "MODIFIED", "DELETED"] satisfies ChangeType[];

const isVersion = (value: unknown, min: number): value is number =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= min;
const isStringOrNull = (value: unknown) => value === null || typeof value === "string";

/**
 * What makes `value` not an update envelope (the fields DESIGN.md requires, with their types; `prev` below `version`),
 * or undefined when it is one. A consumer checks what arrives before it takes it: anything else published on a stream's
 * subject (a replay chunk, a stray message) would otherwise enter its cache and move its position.
 */
export function envelopeProblem(value: unknown): string | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return "not a JSON object";
  const e = value as Record<string, unknown>;
  if (typeof e.epoch !== "string" || e.epoch === "") return "no epoch";
  if (!isVersion(e.version, 1)) return "no version (a positive integer)";
  if (!isVersion(e.prev, 0) || e.prev >= e.version) return "no prev (an integer below version)";
  if (!CHANGE_TYPES.includes(e.type)) return "no type (ADDED, MODIFIED or DELETED)";
  for (const key of ["stream", "kind", "uid", "name", "resourceVersion", "time"] as const)
    if (typeof e[key] !== "string") return `no ${key}`;
  if (!isStringOrNull(e.namespace)) return "namespace is neither a string nor null";
  if (!isStringOrNull(e.node)) return "node is neither a string nor null";
  if (typeof e.object !== "object" || e.object === null || Array.isArray(e.object)) return "no object";
  return undefined;
}
