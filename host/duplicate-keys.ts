/**
 * Keys written twice in one mapping of a config file. YAML and JSON parsers keep the last one silently, so a second
 * `sinks:` section drops the first one's sinks without a word; kubemeta refuses such a file instead.
 *
 * Neither parser reports them, so the text is parsed a second time with each key marked apart: two keys of one
 * mapping that differ only by their marks were the same key. The marks go where a key can be seen from its line
 * alone (a block or flow mapping's key, a JSON object's); a mark put where no key was (inside a block scalar)
 * changes only a value, and a text the marks would make unparsable is not checked further: no config is refused
 * wrongly.
 */
import type { ConfigIssue } from "./config-issues.ts";

/** Private use: never in a config's keys, and allowed in YAML's plain scalars. */
const MARK = "\uE000";
/** A plain key: no flow indicator, quote, `:` or `#`, but for the braces of a `${NAME}` in it (config.ts). */
const PLAIN = String.raw`(?:[A-Za-z0-9_]|\$\{[^}\n]*\}|\$(?!\{))(?:[^:#'"{}[\],$]|\$\{[^}\n]*\}|\$(?!\{))*?`;
const QUOTED = String.raw`"(?:[^"\\\n]|\\.)*"|'(?:[^'\n]|'')*'`;
/**
 * A block mapping's key at a line's start (after any `- `), plain or quoted, before `:` and a space or the end. A merge
 * key (`<<`) is marked too: marked, it merges nothing, so the keys a mapping overrides are not taken for its own twice.
 */
const YAML_KEY = new RegExp(String.raw`^(\s*(?:-\s+)*)(<<|${PLAIN}|${QUOTED})(\s*:(?:\s|$))`);
/** An explicit key (`? port`, its value on the next line after `: `), plain or quoted, alone on its line. */
const EXPLICIT_KEY = new RegExp(String.raw`^(\s*(?:-\s+)*\?\s+)(${PLAIN}|${QUOTED})(\s*)$`);
/** A flow mapping's plain key (`{ name: a, port: 1 }`) after its `{` or `,`. */
const FLOW_KEY = new RegExp(String.raw`([{,]\s*)(<<|${PLAIN})(\s*:\s)`, "g");
/** A flow mapping's quoted key (`{"name": a, 'port':1}`, JSON written as YAML), escapes and all. */
const FLOW_QUOTED_KEY = new RegExp(String.raw`([{,]\s*)(${QUOTED})(\s*:)`, "g");
/** Every JSON string, in order; the ones followed by `:` are keys. */
const JSON_STRING = /"((?:[^"\\]|\\.)*)"(?=\s*:)|"(?:[^"\\]|\\.)*"/g;

/** One issue per key written twice, at its path (`sinks`, `sources[0].kubeconfig`), naming the lines. */
export function duplicateKeys(text: string, format: "yaml" | "json"): ConfigIssue[] {
  // Each mark is a number of its own (two keys may share a line); `lines` says where each was.
  const lines: number[] = [];
  const mark = (line: number) => `${MARK}${lines.push(line) - 1}`;
  let marked: unknown;
  try {
    marked = format === "json" ? JSON.parse(markJson(text, mark)) : Bun.YAML.parse(markYaml(text, mark));
  } catch {
    return [];
  }
  const issues: ConfigIssue[] = [];
  collect(marked, "", lines, issues, new WeakSet());
  return issues;
}

function markYaml(text: string, mark: (line: number) => string): string {
  /** The key with its mark, inside its quotes if it has any. */
  const marked = (key: string, index: number) => {
    const quote = key[0] === '"' || key[0] === "'" ? key[0] : "";
    const bare = quote ? key.slice(1, -1) : key.trimEnd();
    return `${quote}${bare}${mark(index + 1)}${quote}`;
  };
  return text
    .split("\n")
    .map((line, i) =>
      line
        .replace(YAML_KEY, (_, lead: string, key: string, colon: string) => `${lead}${marked(key, i)}${colon}`)
        .replace(EXPLICIT_KEY, (_, lead: string, key: string, rest: string) => `${lead}${marked(key, i)}${rest}`)
        .replace(FLOW_KEY, (_, lead: string, key: string, colon: string) => `${lead}${marked(key, i)}${colon}`)
        .replace(FLOW_QUOTED_KEY, (_, lead: string, key: string, colon: string) => `${lead}${marked(key, i)}${colon}`),
    )
    .join("\n");
}

function markJson(text: string, mark: (line: number) => string): string {
  // Keys come in order: the line count goes on from the last one.
  let line = 1;
  let counted = 0;
  return text.replace(JSON_STRING, (string, key: string | undefined, offset: number) => {
    for (let i = text.indexOf("\n", counted); i >= 0 && i < offset; i = text.indexOf("\n", i + 1)) line++;
    counted = offset;
    return key === undefined ? string : `"${key}${mark(line)}"`;
  });
}

/** `walked`: an alias makes a value appear again, inside itself too (`a: &x [*x]`); it is looked at once. */
function collect(value: unknown, path: string, lines: number[], issues: ConfigIssue[], walked: WeakSet<object>): void {
  if (typeof value !== "object" || value === null || walked.has(value)) return;
  walked.add(value);
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) collect(item, `${path}[${i}]`, lines, issues, walked);
    return;
  }
  const seen = new Map<string, number[]>();
  for (const [marked, child] of Object.entries(value)) {
    const [key = marked, n] = marked.split(MARK);
    const keyPath = path === "" ? key : `${path}.${key}`;
    if (n !== undefined) seen.set(keyPath, [...(seen.get(keyPath) ?? []), lines[Number(n)]!]);
    collect(child, keyPath, lines, issues, walked);
  }
  for (const [keyPath, at] of seen) {
    if (at.length === 1) continue;
    const where = new Set(at).size === 1 ? `line ${at[0]}` : `lines ${at.join(", ")}`;
    issues.push({ path: keyPath, message: `written ${at.length} times (${where}): only the last would count` });
  }
}
