/**
 * A config's mistakes as issues with their paths (`sinks[1].url`): every one of them at once, none quoting a secret.
 */
import * as v from "valibot";
import { issuePath } from "../protocol/issue-path.ts";
import { keysTaken, keyMessage, misspeltKeys, nearestName } from "./config-keys.ts";

export interface ConfigIssue {
  path: string;
  message: string;
}

/**
 * Parses like v.safeParse, adding every issue to `issues` (with `prefix` before their paths) and returning undefined
 * on failure. A strict object names only its first unknown key: each one named is removed from a copy of the input
 * and the copy parsed again, until no new unknown key is named, so that all of them are listed at once, each beside
 * the others of its object. Issues the removals revealed (checks that ran only on a sound object) come last. A number
 * or boolean written as a string is read as one (coerceString). A bound checked without words of its own is said in
 * kubemeta's (inOwnWords); so is a key missing or unknown, with the known key an unknown one is likely a typo of
 * (config-keys.ts), `hostKeys` (what the host took from the input's top level) known too.
 */
export function parseAll<S extends v.GenericSchema>(
  schema: S,
  input: unknown,
  prefix: string,
  issues: ConfigIssue[],
  hostKeys: readonly string[] = [],
): v.InferOutput<S> | undefined {
  const copy = structuredClone(input);
  const toIssue = (issue: v.BaseIssue<unknown>): ConfigIssue => ({
    path: pathOf(prefix, issue.path ?? []),
    message:
      keyMessage(schema, issue, hostKeys) ??
      withoutSecrets(issue) + booleanHint(issue) + shapeHint(schema, issue) + choiceHint(issue),
  });
  // A key missing is followed by the keys that may be it misspelt.
  const toIssues = (issue: v.BaseIssue<unknown>): ConfigIssue[] => [
    toIssue(issue),
    ...misspeltKeys(schema, issue).map(({ key, message }) => ({
      path: pathOf(prefix, [...issue.path!.slice(0, -1), { key }]),
      message,
    })),
  ];
  const listed: ConfigIssue[] = [];
  /** The object (its path) of each unknown key listed, by the key's path. */
  const unknownIn = new Map<string, string>();
  for (let first = true; ; first = false) {
    const result = v.safeParse(schema, copy, { message: inOwnWords });
    const found = result.issues ?? [];
    // An unknown key expects "never"; a missing one has the same type and expects its name. One named again is in an
    // object the schema made itself, not in the copy: removing it would change nothing.
    const fresh = found.filter(
      (i) => i.type === "strict_object" && i.expected === "never" && !unknownIn.has(pathOf(prefix, i.path!)),
    );
    const coerced = found.filter(coerceString);
    if (fresh.length === 0 && coerced.length === 0) {
      const seen = (issue: ConfigIssue) => listed.some((l) => l.path === issue.path && l.message === issue.message);
      listed.push(...found.flatMap(toIssues).filter((issue) => !seen(issue)));
      issues.push(...listed);
      return result.success && unknownIn.size === 0 ? result.output : undefined;
    }
    if (first) listed.push(...found.filter((i) => !coerced.includes(i)).flatMap(toIssues));
    for (const stray of fresh) {
      const issue = toIssue(stray);
      const object = pathOf(prefix, stray.path!.slice(0, -1));
      if (!first) listed.splice(listed.findLastIndex((other) => unknownIn.get(other.path) === object) + 1, 0, issue);
      unknownIn.set(issue.path, object);
      const { input: parent, key } = stray.path!.at(-1) as { input: Record<string, unknown>; key: string };
      delete parent[key];
    }
  }
}

/**
 * A bound a schema checks without words of its own, said as a bound (valibot: `Invalid length: Expected >=1 but
 * received 0`, `Invalid value: Expected <=65535 …`, `Invalid integer: Received 1.5`). Valibot asks this only of
 * issues whose check gave no message, so that every key, plugins' too, gets the same words and keeps its own.
 */
function inOwnWords(issue: v.BaseIssue<unknown>): string {
  const { requirement } = issue;
  const units = Array.isArray(issue.input) ? "items" : "characters";
  if (issue.type === "min_length")
    return requirement === 1 ? "must not be empty" : `must have at least ${requirement} ${units}`;
  if (issue.type === "max_length") return `must have at most ${requirement} ${units}`;
  if (issue.type === "min_value") return `must be at least ${requirement}`;
  if (issue.type === "max_value") return `must be at most ${requirement}`;
  if (issue.type === "integer") return "must be a whole number";
  return issue.message;
}

/** What a number or boolean written as a string means, when it is exactly one (`"8080"`, `"true"`). */
const STRING_VALUES: Partial<Record<string, (text: string) => unknown>> = {
  number: (text) => (/^-?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?$/.test(text) ? Number(text) : undefined),
  boolean: (text) => (text === "true" ? true : text === "false" ? false : undefined),
};

/**
 * Replaces, in the input the issue points into, a string where a number or boolean belongs by the value it spells:
 * `${VAR}` is always a string (`port: ${PORT}`), as a variable is. Where one of several belongs (`maxRetries:
 * forever | <number>`), the union's options say which. True if it did.
 */
function coerceString(issue: v.BaseIssue<unknown>): boolean {
  const { input } = issue;
  const item = issue.path?.at(-1) as { input: Record<string | number, unknown>; key: string | number } | undefined;
  if (typeof input !== "string" || !item) return false;
  for (const type of [issue.type, ...(issue.issues ?? []).map((option) => option.type)]) {
    const value = STRING_VALUES[type]?.(input);
    if (value === undefined) continue;
    item.input[item.key] = value;
    return true;
  }
  return false;
}

function pathOf(prefix: string, path: readonly { key: unknown }[]): string {
  const keys = path.map((item) => item.key);
  return issuePath(keys, prefix);
}

/** YAML 1.1's spellings of true (captured) and false that YAML 1.2, as the config is read, has as strings. */
const YAML_1_1_BOOLEANS = /^(?:(y|Y|yes|Yes|YES|on|On|ON)|n|N|no|No|NO|off|Off|OFF)$/;

/**
 * Where a boolean belongs, what to write: `enabled: no` is the string "no" to YAML 1.2 (and so to Bun's parser), and
 * "Expected boolean but received a string" alone does not say why. Such a word is no secret, so it may be quoted.
 */
function booleanHint(issue: v.BaseIssue<unknown>): string {
  if (issue.type !== "boolean") return "";
  const word = typeof issue.input === "string" ? YAML_1_1_BOOLEANS.exec(issue.input) : null;
  if (!word) return ": write true or false";
  const meant = word[1] !== undefined;
  return `: write ${meant} ("${word[0]}" meant ${meant} in YAML 1.1, not in YAML 1.2, which kubemeta reads)`;
}

/**
 * Of a word from a list (`level: INFO`, `streamingList: Auto`), the one it is likely a typo of: quoted, as the list is
 * (the word written is not: a variable's value is said as the variable).
 */
function choiceHint(issue: v.BaseIssue<unknown>): string {
  if (issue.type !== "picklist" || typeof issue.input !== "string") return "";
  const options = [...issue.expected!.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((match) => JSON.parse(match[0]) as string);
  const near = nearestName(issue.input, options);
  return near === undefined ? "" : `; did you mean "${near}"?`;
}

/**
 * Where a list or a mapping belongs, how to write one: a single value there (`resources: pods`, `tokens: ${TOKEN}`,
 * `cluster: prod`) is what users write, and "Expected Array" alone does not say that one item is a list too, nor
 * "Expected Object" which keys go under it.
 */
function shapeHint(schema: v.GenericSchema, issue: v.BaseIssue<unknown>): string {
  if (issue.kind !== "schema") return "";
  if (issue.expected === "Array") return ': write a list, even of one: [a, b], or a "- a" line each';
  if (issue.expected !== "Object") return "";
  const keys = keysTaken(schema, issue.path ?? []);
  return keys.length > 0 ? `: write a mapping of its keys (${keys.join(", ")})` : ": write a mapping (key: value)";
}

/**
 * A string where another type belongs (`tokens: ${KUBEMETA_TOKEN}` for a list, `tls: ${KEY}` for an object) is often a
 * secret: the message says "received a string" instead of quoting it. Picklists and literals still quote what they
 * got, a variable's value said as the variable (config-interpolate.ts); a key missing or unknown is said without its
 * value (config-keys.ts).
 */
function withoutSecrets(issue: v.BaseIssue<unknown>): string {
  const { input, message, received } = issue;
  if (typeof input === "string" && !["picklist", "literal"].includes(issue.type))
    return message.replace(`but received ${received}`, "but received a string");
  // An unquoted numeric secret (`token: 1234567890123456`) is a number where a string belongs.
  if (typeof input === "number" && issue.expected === "string")
    return message.replace(`but received ${received}`, "but received a number");
  return message;
}

/**
 * What a plugin's code threw (its check(), claims(), rbac(), its store's open), as a config error says it: an Error's
 * message, or its name when it has none (an empty line otherwise); anything else as JSON (`[object Object]` otherwise).
 */
export function thrownText(error: unknown): string {
  if (error instanceof Error) return error.message || `${error.name}, with no message`;
  if (typeof error !== "object" || error === null) return String(error);
  try {
    return JSON.stringify(error);
  } catch {
    return String(error);
  }
}
