/**
 * `${NAME}` in a config's strings, a mapping's keys as its values, replaced by the environment's. An error is named
 * by the path the user wrote: a key's variable may hold a secret (a header's name a gateway keeps to itself), and its
 * value in a path would be printed by every error under that key. Nor does an error quote a variable's value: a
 * secret in the wrong variable, or put where a word from a list belongs (`level: ${TOKEN}`), would be printed by
 * `--check` and the log, and a config's author who may not read the Secrets it is given would read them there.
 */
import type { ConfigIssue } from "./config-issues.ts";

type Env = Record<string, string | undefined>;

/** A key `${}` made another: its path as written, the key as replaced and as written. */
interface Renamed {
  path: string;
  key: string;
  written: string;
}

/**
 * The config with its variables replaced, and `asWritten`, which names an issue found in it (by the schemas, the
 * plugins) by the path the user wrote. The issues of the variables themselves are added to `issues`, so named.
 */
export function interpolateConfig(raw: unknown, env: Env, issues: ConfigIssue[]) {
  /** By the path of the key as replaced (every key above it replaced too). */
  const renamed = new Map<string, Renamed>();
  const replaced = new Map<string, Replaced>();
  const interpolated = interpolate(raw, { env, issues, renamed, replaced }, "", "");
  const asWritten = (issue: ConfigIssue): ConfigIssue => {
    const { path } = issue;
    const message = withoutValues(issue, replaced);
    let at: string | undefined;
    for (const candidate of renamed.keys())
      if (within(path, candidate) && candidate.length > (at?.length ?? -1)) at = candidate;
    if (at === undefined) return { path, message };
    const { path: written, key, written: writtenKey } = renamed.get(at)!;
    // An issue of the key itself (one no option takes) quotes it.
    const said = path === at ? message.replaceAll(JSON.stringify(key), JSON.stringify(writtenKey)) : message;
    return { path: written + path.slice(at.length), message: said };
  };
  return { interpolated, asWritten };
}

/** A value this long, unquoted in a message, is taken for the variable's; a shorter one may be any word of it. */
const MIN_UNQUOTED = 8;
/** A shorter quoted word (an option's `"a"`) is not taken for a part of a value. */
const MIN_PART = 3;

/**
 * The issue's message with each value a variable gave a string at its path (or under or above it) said as the
 * variable: quoted whole (`received "${LEVEL}"`) or anywhere once of a secret's length, and a quoted part of one the
 * message does not hold whole (a selector's word, `"xyz" at character 16`) as `a part of ${NAME}`.
 */
function withoutValues({ path, message }: ConfigIssue, replaced: Map<string, Replaced>): string {
  const values: [string, string][] = [];
  for (const [at, variables] of replaced)
    if (within(at, path) || within(path, at)) values.push(...[...variables].filter(([, value]) => value !== ""));
  if (values.length === 0) return message;
  // The longest first: a value that holds another is said as its own variable.
  values.sort(([, a], [, b]) => b.length - a.length);
  // A value the message quotes whole is the one at fault: its quoted parts are the schema's words (`"info"` of a level
  // `information`), not pieces of it.
  const pieced = values.filter(([, value]) => !message.includes(JSON.stringify(value).slice(1, -1)));
  let said = message;
  for (const [name, value] of values)
    if (value.length >= MIN_UNQUOTED)
      said = said.replaceAll(value, `\${${name}}`).replaceAll(JSON.stringify(value).slice(1, -1), `\${${name}}`);
  return said.replace(/"((?:[^"\\]|\\.)+)"/g, (whole, inner: string) => {
    const text = unquoted(whole) ?? inner;
    const same = values.find(([, value]) => value === text);
    if (same) return `"\${${same[0]}}"`;
    const part = text.length >= MIN_PART ? pieced.find(([, value]) => value.includes(text)) : undefined;
    return part ? `a part of \${${part[0]}}` : whole;
  });
}

/** A JSON string's text; undefined for quotes around what JSON would not write so. */
function unquoted(quoted: string): string | undefined {
  try {
    return JSON.parse(quoted) as string;
  } catch {
    return undefined;
  }
}

/** True when `path` is `prefix` or a path under it (`prefix.key`, `prefix[0]`). */
export function within(path: string, prefix: string): boolean {
  return path === prefix || (path.startsWith(prefix) && (path[prefix.length] === "." || path[prefix.length] === "["));
}

/**
 * `text` with each `${NAME}` replaced by the environment's value; `$${` stands for a literal `${`, closed or not. A
 * `${` that no `}` closes is an error, never text: `secret: ${WEBHOOK_SECRET` (its `}` left out) would otherwise make
 * the variable's name, which anyone can read in the config, the secret.
 */
function interpolateText(text: string, env: Env, path: string, issues: ConfigIssue[], replaced?: Replaced): string {
  return text.replace(/\$\$\{|\$\{([^}]*)(\}?)/g, (match, name: string | undefined, closed: string | undefined) => {
    if (name === undefined) return "${";
    if (!closed) {
      issues.push({ path, message: "${ is not closed by a } (write ${NAME}, or $${ for a literal ${)" });
      return "";
    }
    if (name.trim() === "") {
      issues.push({ path, message: "${} names no environment variable (write $${ for a literal ${)" });
      return "";
    }
    // `${PORT:-8080}` (a shell's default, `:=`, `:?`…): no variable's name holds a colon.
    const colon = name.indexOf(":");
    if (colon > 0) {
      const shellDefault = name.slice(colon, colon + 2);
      const message = `${match}: \${} takes a variable's name alone, without a shell's ${shellDefault} default`;
      issues.push({ path, message: `${message}; set ${name.slice(0, colon)}` });
      return "";
    }
    const found = env[name];
    if (found === undefined) issues.push({ path, message: `environment variable ${name} is not set` });
    else replaced?.set(name, found);
    return found ?? "";
  });
}

/** The variables replaced in one string: each one's name and value. */
type Replaced = Map<string, string>;

interface Context {
  env: Env;
  issues: ConfigIssue[];
  renamed: Map<string, Renamed>;
  /** By the path of the string as replaced. */
  replaced: Map<string, Replaced>;
  ancestors?: Set<object>;
}

/**
 * Interpolates every string, a mapping's keys as its values (interpolateText), at `path` as written and `at` as
 * replaced. A key whose variable cannot be replaced is left out, its issue said at the key as written; two keys that
 * become one are an issue, as a key written twice is (duplicate-keys.ts).
 */
function interpolate(value: unknown, context: Context, path: string, at: string): unknown {
  const { env, issues, renamed, replaced, ancestors = new Set<object>() } = context;
  if (typeof value === "string") {
    const variables: Replaced = new Map();
    const text = interpolateText(value, env, path, issues, variables);
    if (variables.size > 0) replaced.set(at, variables);
    return text;
  }
  if (!value || typeof value !== "object") return value;
  // A YAML alias inside its own anchor (`a: &x [*x]`) parses to a cycle.
  if (ancestors.has(value)) {
    issues.push({ path, message: "refers to itself (a YAML alias inside its own anchor)" });
    return null;
  }
  ancestors.add(value);
  const inner = { ...context, ancestors };
  try {
    if (Array.isArray(value)) return value.map((item, i) => interpolate(item, inner, `${path}[${i}]`, `${at}[${i}]`));
    const under = (parent: string, key: string) => (parent ? `${parent}.${key}` : key);
    /** Each key as interpolated, with the key as written and its value. */
    const entries = new Map<string, [string, unknown]>();
    for (const [written, item] of Object.entries(value)) {
      const before = issues.length;
      const key = interpolateText(written, env, under(path, written), issues);
      if (issues.length > before) continue;
      const twice = entries.get(key)?.[0];
      if (twice !== undefined)
        issues.push({
          path: under(path, written),
          message: `written twice once \${} is replaced (${twice}, ${written}): only the last would count`,
        });
      if (key !== written) renamed.set(under(at, key), { path: under(path, written), key, written });
      entries.set(key, [written, interpolate(item, inner, under(path, written), under(at, key))]);
    }
    return Object.fromEntries([...entries].map(([key, [, item]]) => [key, item]));
  } finally {
    ancestors.delete(value);
  }
}
