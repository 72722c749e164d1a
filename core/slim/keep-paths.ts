/**
 * What a slim rule keeps, copied from the raw object into its slim copy: the subtrees at the rule's paths, through
 * lists item by item, without what is never published (rules.ts); and the value at a path (a rule's node).
 */
import { present, record, sortedKeys, type Json } from "./read.ts";
import { LAST_APPLIED } from "./rules.ts";

/** The value at `path` (own keys of nested maps only), or undefined. */
export function valueAt(object: Json, path: readonly string[]): unknown {
  let value: unknown = object;
  for (const key of path) {
    const from = record(value);
    if (from === undefined || !Object.hasOwn(from, key)) return undefined;
    value = from[key];
  }
  return value;
}

/**
 * Copies the subtree of `raw` at each path to the same path of `into`, replacing what the built-in slimmer put there.
 * Like `put`, an absent, empty list or empty map is not kept.
 *
 * A path through a list keeps the rest of the path in each item, as a projection (README "Slim rules"): the list keeps
 * its items' order and length, an item without that field (or no map) is `{}` so that each stays at its index, and a
 * value an item has is copied even when empty (`pause: {}`); nothing is kept when no item has it. Where the slim copy
 * already holds that list, the fields are added to its items if it holds every item (a built-in slimmer's lists are
 * the raw ones, in order, at most with items left out); a list left with fewer items (a Pod's conditions: Ready) gets
 * nothing, since which raw item each one is cannot be told. `partialLists` are the dot paths of the lists the built-in
 * slimmer may leave items out of: one it left every item out of gets nothing either, rather than a list of items
 * that are none of those it keeps (a pending Pod's PodScheduled condition as a condition without a type).
 */
export function keepPaths(
  raw: Json,
  into: Json,
  paths: readonly string[][],
  partialLists: ReadonlySet<string> = NO_LISTS,
): void {
  for (const path of paths) {
    const part = project(raw, path, 0, false);
    if (part !== undefined) merge(into, part, path, 0, partialLists);
  }
}

const NO_LISTS: ReadonlySet<string> = new Set();

/**
 * `value` cut down to path[i..]: the copy of what is at its end, through maps and every item of lists; undefined when
 * there is none. `inList`: an item of a list is being cut, whose empty values are kept.
 */
function project(value: unknown, path: readonly string[], i: number, inList: boolean): unknown {
  if (i === path.length) {
    const copied = copy(value, path[i - 1], NEVER_COPIED);
    return inList || present(copied) ? copied : undefined;
  }
  if (Array.isArray(value)) {
    const items = value.map((item) => project(item, path, i, true));
    return items.some((item) => item !== undefined) ? items.map((item) => item ?? {}) : undefined;
  }
  const from = record(value);
  const key = path[i]!;
  if (from === undefined || !Object.hasOwn(from, key)) return undefined;
  const part = project(from[key], path, i + 1, inList);
  return part === undefined ? undefined : { [key]: part };
}

/**
 * `target` (what the slim copy holds at a place) with `part`, the projection of path[i..] at that place, merged in;
 * `target` itself when nothing is added.
 */
function merge(
  target: unknown,
  part: unknown,
  path: readonly string[],
  i: number,
  partialLists: ReadonlySet<string>,
): unknown {
  if (i === path.length) return part;
  if (Array.isArray(part)) {
    if (!Array.isArray(target)) return partialLists.has(path.slice(0, i).join(".")) ? target : part;
    if (target.length === part.length)
      for (const [j, item] of part.entries()) target[j] = merge(target[j], item, path, i, partialLists);
    return target;
  }
  const from = record(part)!;
  const key = path[i]!;
  if (!Object.hasOwn(from, key)) return target; // an item without the field: nothing to add
  const map = record(target);
  const merged = merge(map?.[key], from[key], path, i + 1, partialLists);
  if (merged === undefined) return target;
  if (map === undefined) return { [key]: merged };
  map[key] = merged;
  return map;
}

const NEVER_COPIED: ReadonlySet<string> = new Set(["managedFields", LAST_APPLIED]);
const NEVER_COPIED_FROM_ENV: ReadonlySet<string> = new Set([...NEVER_COPIED, "value", "valueFrom"]);

/**
 * A deep copy of raw JSON with every map's keys sorted (a kept subtree may hold maps: labels, selectors, anything of a
 * custom resource), without what is never published. `key` is the field the value sits in: an `env` list's entries
 * lose their values.
 */
function copy(value: unknown, key: string | undefined, dropped: ReadonlySet<string>): unknown {
  if (Array.isArray(value)) {
    const itemDropped = key === "env" ? NEVER_COPIED_FROM_ENV : NEVER_COPIED;
    return value.map((item) => copy(item, undefined, itemDropped));
  }
  const from = record(value);
  if (from === undefined) return value;
  const result: Json = {};
  for (const field of sortedKeys(from)) {
    if (dropped.has(field)) continue;
    const kept = copy(from[field], field, NEVER_COPIED);
    if (field !== PROTO) result[field] = kept;
    // Assigned, `__proto__` would set the copy's prototype and vanish from it: a free-form map may hold that key.
    else Object.defineProperty(result, field, { value: kept, enumerable: true, writable: true, configurable: true });
  }
  return result;
}

const PROTO = "__proto__";
