/**
 * Defensive readers for raw Kubernetes JSON. The source hands us whatever the API server
 * (or a tombstone) contained, so every field may be missing or of the wrong type: these
 * readers return `undefined` for anything unexpected instead of throwing, and the slim
 * copy simply lacks that field.
 *
 * Empty maps and lists are treated as absent, because Go's `omitempty` drops them on some
 * paths and not on others; keeping them would make two equal objects digest differently.
 */

export type Json = Record<string, unknown>;

/** A plain JSON object, or undefined. */
export function record(value: unknown): Json | undefined {
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Json) : undefined;
}

/** A JSON string, or undefined. */
export function text(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

function isScalar(value: unknown): boolean {
  const type = typeof value;
  return type === "string" || type === "number" || type === "boolean";
}

/** False for undefined, an empty list and an empty map: what `put` leaves out. */
export function present(value: unknown): boolean {
  if (value === undefined) return false;
  return Array.isArray(value)
    ? value.length > 0
    : typeof value !== "object" || value === null || !isEmpty(value as Json);
}

/** Sets `key` unless `value` is undefined, an empty list or an empty map. */
export function put(target: Json, key: string, value: unknown): void {
  if (present(value)) target[key] = value;
}

function isEmpty(map: Json): boolean {
  for (const _ in map) return false;
  return true;
}

/** Copies the scalar (string, number, boolean) fields named in `keys`; nested values are never copied. */
export function scalars(source: unknown, keys: readonly string[], into: Json = {}): Json {
  const from = record(source);
  if (from === undefined) return into;
  for (const key of keys) {
    const value = from[key];
    if (isScalar(value)) into[key] = value;
  }
  return into;
}

/**
 * A string-to-string map (labels, annotations, selectors) with its keys sorted, so the
 * digest does not depend on the order a serializer happened to write them in.
 */
export function stringMap(value: unknown, keep?: (key: string) => boolean): Record<string, string> | undefined {
  const from = record(value);
  if (from === undefined) return undefined;
  let result: Record<string, string> | undefined;
  for (const key of sortedKeys(from)) {
    const entry = from[key];
    if (typeof entry !== "string" || (keep !== undefined && !keep(key))) continue;
    result ??= {};
    result[key] = entry;
  }
  return result;
}

/** Go's encoding/json already sorts map keys, so sorting is rarely needed: check first, it is cheaper. */
export function sortedKeys(map: Json): string[] {
  const keys = Object.keys(map);
  for (let i = 1; i < keys.length; i++) if (keys[i - 1]! > keys[i]!) return keys.sort();
  return keys;
}

/** The strings of a list; other items are skipped. */
export function stringList(value: unknown): string[] | undefined {
  if (!Array.isArray(value)) return undefined;
  const result: string[] = [];
  for (const item of value) if (typeof item === "string") result.push(item);
  return result.length > 0 ? result : undefined;
}

/** Maps each object of a list through `pick`; non-objects and empty picks are skipped. */
export function objectList(value: unknown, pick: (item: Json) => Json): Json[] | undefined {
  if (!Array.isArray(value)) return undefined;
  const result: Json[] = [];
  for (const item of value) {
    const from = record(item);
    if (from === undefined) continue;
    const picked = pick(from);
    if (!isEmpty(picked)) result.push(picked);
  }
  return result.length > 0 ? result : undefined;
}

/** Copies the scalar fields named in `keys` of each object of a list. */
export function scalarList(value: unknown, keys: readonly string[]): Json[] | undefined {
  return objectList(value, (item) => scalars(item, keys));
}

/**
 * The ports of a container, Service or EndpointSlice. `protocol` is dropped when it is
 * "TCP": the API server fills that default in, and Kubernetes reads an absent protocol as
 * TCP, so it carries nothing (and a pod with five ports saves ~70 bytes per update).
 */
export function portList(value: unknown, keys: readonly string[]): Json[] | undefined {
  return objectList(value, (item) => {
    const port = scalars(item, keys);
    if (port.protocol === "TCP") delete port.protocol;
    return port;
  });
}

/**
 * The conditions of `types` as `{type, status}` only: their timestamps, reasons and
 * messages move on every heartbeat or probe without the condition changing.
 */
export function conditions(value: unknown, types: readonly string[]): Json[] | undefined {
  return objectList(value, (item) =>
    typeof item.type === "string" && types.includes(item.type) ? scalars(item, CONDITION_FIELDS) : {},
  );
}
const CONDITION_FIELDS = ["type", "status"] as const;

/** `{matchLabels, matchExpressions}` of a label selector. */
export function labelSelector(value: unknown): Json | undefined {
  const from = record(value);
  if (from === undefined) return undefined;
  const selector: Json = {};
  put(selector, "matchLabels", stringMap(from.matchLabels));
  put(
    selector,
    "matchExpressions",
    objectList(from.matchExpressions, (item) => {
      const expression = scalars(item, ["key", "operator"]);
      put(expression, "values", stringList(item.values));
      return expression;
    }),
  );
  return selector;
}
