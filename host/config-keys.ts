/**
 * A config key missing or not known, said in kubemeta's words rather than valibot's (`Invalid key: Expected never but
 * received "namespce"`): `missing: this key is required`, `unknown key; did you mean "namespace"?`. The keys an object
 * takes are read from the schema the config was parsed with, along the issue's path, so a plugin's own schema (built
 * with the SDK's valibot or its own) gets the same words. Only keys are quoted, never a value: a value may be a secret.
 * The same reading of a schema finds the words a value is likely a typo of (nearestName) and the durations written as
 * bare numbers (bareMilliseconds).
 */
import * as v from "valibot";
import { issuePath } from "../protocol/issue-path.ts";

/** The object schemas whose key issues these are: valibot names an issue by the schema that raised it. */
const OBJECT_TYPES = new Set(["object", "loose_object", "strict_object", "object_with_rest"]);

/**
 * What to say of a key the object at the issue's path requires and the input lacks, or holds and the object does not
 * take; undefined for any other issue, and for one whose schema gave its own words (`v.strictObject(entries, "…")`).
 * `hostKeys`: keys of the input's top level the host took before the schema saw it (a plugin entry's `type`, `name`),
 * known as the schema's own are.
 */
export function keyMessage(
  schema: v.GenericSchema,
  issue: v.BaseIssue<unknown>,
  hostKeys: readonly string[] = [],
): string | undefined {
  const last = keyItem(issue);
  if (last === undefined) return undefined;
  if (issue.expected !== "never") return "missing: this key is required";
  const parent = issue.path!.slice(0, -1);
  const host = parent.length === 0 ? hostKeys.map((name) => ({ name, meant: name })) : [];
  return unknownKeyMessage(last.key, [...host, ...keysAt(schema, parent)]);
}

/**
 * The keys that may be typos of a key required and missing (`tpye` of a plugin entry's `type`), each with the words an
 * unknown key gets: in an object that lets keys it does not know pass (a plugin entry's are its plugin's), nothing else
 * would name them. A key counts when the missing one is the known key it is nearest to.
 */
export function misspeltKeys(schema: v.GenericSchema, issue: v.BaseIssue<unknown>): { key: string; message: string }[] {
  const last = keyItem(issue);
  if (last === undefined || issue.expected === "never" || issue.type === "strict_object") return [];
  const known = keysAt(schema, issue.path!.slice(0, -1));
  return Object.keys(last.input)
    .filter((key) => !known.some(({ name }) => name === key) && nearest(key, known)?.name === last.key)
    .map((key) => ({ key, message: `unknown key; did you mean "${last.key}"?` }));
}

/**
 * Each duration `input` writes as a bare number under a second (`shutdownTimeout: 30`, `leaseDuration: 15`), with its
 * path under `prefix`, as a warning: a bare number is milliseconds, and such a one was likely meant as seconds. 0 is
 * none in every unit; a duration written with its unit, or a key the schema does not take, is not looked at.
 */
export function bareMilliseconds(schema: v.GenericSchema, input: unknown, prefix: string): string[] {
  const found = new Set<string>();
  const visit = (at: v.GenericSchema, value: unknown, keys: readonly (string | number)[]) => {
    if (typeof value === "number") {
      if (metadataOf(at).duration === true && value > 0 && value < 1000)
        found.add(
          `${issuePath(keys, prefix)}: ${value} is ${value} ms, as a bare number is; write "${value}ms" to say so, ` +
            `or "${value}s" if seconds were meant`,
        );
      return;
    }
    if (typeof value !== "object" || value === null) return;
    for (const [key, inner] of Object.entries(value)) {
      const index = Array.isArray(value) ? Number(key) : key;
      for (const outer of unwrap(at)) {
        const next = child(outer, index);
        if (next !== undefined) visit(next, inner, [...keys, index]);
      }
    }
  };
  visit(schema, input, []);
  return [...found];
}

/** The keys the object at `path` takes, as a config writes them today (no deprecated one). */
export function keysTaken(schema: v.GenericSchema, path: readonly v.IssuePathItem[]): string[] {
  return keysAt(schema, path)
    .filter(({ name, meant }) => name === meant)
    .map(({ name }) => name);
}

/** The key of an issue of a key missing or unknown, raised by the object that holds it; undefined for any other. */
function keyItem(issue: v.BaseIssue<unknown>): v.ObjectPathItem | undefined {
  const last = issue.path?.at(-1);
  if (last?.type !== "object" || last.origin !== "key" || !OBJECT_TYPES.has(issue.type)) return undefined;
  return issue.message.startsWith("Invalid key: ") ? last : undefined;
}

function unknownKeyMessage(key: string, known: readonly Known[]): string {
  const found = meantOf(key, known);
  if (found === undefined) return "unknown key";
  const said = `unknown key; did you mean "${found.near.meant}"?`;
  return found.guessed ? `${said} ${found.near.guesses!.hint}` : said;
}

/** The known key `key` is (or is a typo of: nearest), else the one users write it for (`guessedKeys`). */
function meantOf(key: string, known: readonly Known[]): { near: Known; guessed: boolean } | undefined {
  const near = nearest(key, known);
  if (near !== undefined) return { near, guessed: false };
  const guessed = known.find(({ guesses }) => guesses?.keys.includes(key.toLowerCase()));
  return guessed && { near: guessed, guessed: true };
}

/**
 * The top-level key of `schema`'s object that `key` is, or is likely meant for (a typo of it, or a key users guess
 * for it), as an unknown key's did-you-mean names it; undefined for a key it would call merely unknown.
 */
export function meantKey(schema: v.GenericSchema, key: string): string | undefined {
  return meantOf(key, keysAt(schema, []))?.near.meant;
}

/** The parts of a schema that say what is inside it; which of them a schema has depends on its type. */
interface Inside {
  type: string;
  wrapped?: v.GenericSchema;
  options?: readonly unknown[];
  entries?: Record<string, v.GenericSchema>;
  item?: v.GenericSchema;
  items?: readonly v.GenericSchema[];
  value?: v.GenericSchema;
}

/** A key an object takes, and the key a typo of it is told to write: the one that replaced it, if it is deprecated. */
interface Known {
  name: string;
  meant: string;
  /** Other keys users write for it, not near it (`guessedKeys` in sdk/schema.ts), and what to tell them. */
  guesses?: { keys: readonly string[]; hint: string };
}

/**
 * The keys the object at `path` takes: every option's, where a union or variant could have held it. The current keys
 * come first, so that one wins a tie with a deprecated key.
 */
function keysAt(schema: v.GenericSchema, path: readonly v.IssuePathItem[]): Known[] {
  let schemas = unwrap(schema);
  for (const { key } of path) schemas = schemas.flatMap((outer) => unwrap(child(outer, key)));
  const known = new Map<string, Known>();
  for (const [name, entry] of schemas.flatMap((object) => Object.entries(object.entries ?? {})))
    if (!known.has(name)) known.set(name, { name, meant: replacementOf(entry) ?? name, guesses: guessesOf(entry) });
  const all = [...known.values()];
  return [...all.filter(({ name, meant }) => name === meant), ...all.filter(({ name, meant }) => name !== meant)];
}

/** The key that replaced a deprecated one (`deprecatedKey` in sdk/schema.ts says it in the key's metadata). */
function replacementOf(schema: v.GenericSchema): string | undefined {
  const { deprecated } = metadataOf(schema);
  return typeof deprecated === "string" ? deprecated : undefined;
}

/** The keys users guess for this one, lower-cased, and the hint they get (`guessedKeys` in sdk/schema.ts). */
function guessesOf(schema: v.GenericSchema): Known["guesses"] {
  const { guessedKeys, hint } = metadataOf(schema);
  if (!Array.isArray(guessedKeys) || typeof hint !== "string") return undefined;
  return { keys: guessedKeys.map((key) => String(key).toLowerCase()), hint };
}

function metadataOf(schema: v.GenericSchema): Record<string, unknown> {
  let inside = schema as v.GenericSchema & Inside;
  // Only through `v.optional` and its kin: a union's options hold no key's metadata (a duration is a piped union).
  while (inside.wrapped !== undefined) inside = inside.wrapped as v.GenericSchema & Inside;
  return v.getMetadata(inside as v.SchemaWithPipe<[v.GenericSchema]>);
}

/**
 * The schemas a value of `schema` is checked against: through `v.optional` and its kin, and each option of a union or
 * variant. A pipe needs no unwrapping: it spreads its first schema (a piped object still has its `entries`).
 */
function unwrap(schema: v.GenericSchema | undefined): Inside[] {
  const inside = schema as Inside | undefined;
  if (inside === undefined) return [];
  if (inside.wrapped !== undefined) return unwrap(inside.wrapped);
  // A picklist's options are its values, not schemas.
  if (inside.type === "union" || inside.type === "variant")
    return (inside.options as v.GenericSchema[]).flatMap((option) => unwrap(option));
  return [inside];
}

/** The schema of the value at `key` in a value of `outer`: an object's entry, a list's or a record's values. */
function child(outer: Inside, key: unknown): v.GenericSchema | undefined {
  if (outer.entries !== undefined) return typeof key === "string" ? outer.entries[key] : undefined;
  if (outer.type === "array") return outer.item;
  if (outer.type === "tuple") return typeof key === "number" ? outer.items?.[key] : undefined;
  if (outer.type === "record") return outer.value;
  return undefined;
}

/** The one of `names` that `word` is likely a typo of (a case difference, or up to two edits), as for a key. */
export function nearestName(word: string, names: readonly string[]): string | undefined {
  return nearest(
    word,
    names.map((name) => ({ name, meant: name })),
  )?.name;
}

/**
 * The known key `key` is likely a typo of: equal but for case, or within two edits (a transposition is one) and no
 * more than half of it changed, so that `ur` suggests `url` and `id` no `ha`. The closest wins, the first on a tie.
 */
function nearest(key: string, known: readonly Known[]): Known | undefined {
  const most = Math.min(2, Math.floor(key.length / 2));
  let best: { near: Known; distance: number } | undefined;
  for (const near of known) {
    const distance = editDistance(key.toLowerCase(), near.name.toLowerCase());
    if (distance <= most && distance < (best?.distance ?? Number.POSITIVE_INFINITY)) best = { near, distance };
  }
  return best?.near;
}

/** Edits (insert, delete, replace, swap two neighbours) that turn `a` into `b`: the optimal string alignment. */
function editDistance(a: string, b: string): number {
  // rows[i][j]: the distance between a's first i characters and b's first j.
  const rows = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      const row = rows[i]!;
      const above = rows[i - 1]!;
      row[j] = Math.min(above[j]! + 1, row[j - 1]! + 1, above[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        row[j] = Math.min(row[j]!, rows[i - 2]![j - 2]! + 1);
    }
  }
  return rows[a.length]![b.length]!;
}
