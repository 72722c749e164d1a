/**
 * The docs' references stay true: the `bun test … -t "…"` commands in README.md and RELIABILITY.md run the tests
 * they name, the Markdown files' relative links reach a file and a heading, and the tests/ files named in prose exist.
 * A renamed test or heading fails here, not in the hands of a reader.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, normalize } from "node:path";

const ROOT = join(import.meta.dir, "..");
const read = (path: string) => readFileSync(join(ROOT, path), "utf8");
const DOCS = [
  "README.md",
  "RELIABILITY.md",
  "bench/RESULTS.md",
  ...new Bun.Glob("{deploy/*.md,examples/**/README*}").scanSync({ cwd: ROOT }),
];
const COMMANDS_IN = ["README.md", "RELIABILITY.md"];

/** The text outside fenced code blocks, lines kept in place (a `#` or a `[x](y)` in code is no heading or link). */
function prose(markdown: string): string {
  let fenced = false;
  return markdown
    .split("\n")
    .map((line) => {
      if (/^\s*(```|~~~)/.test(line)) fenced = !fenced;
      return fenced || /^\s*(```|~~~)/.test(line) ? "" : line;
    })
    .join("\n");
}

/**
 * The `bun test …` commands written as inline code (several joined by `;` or `&&`), their words after `test`. In a
 * table a pipe is written `\|`, code spans included, or it would end the cell (GFM): it reads as `|`.
 */
function commands(markdown: string): string[][] {
  return [...markdown.matchAll(/`([^`\n]*)`/g)]
    .flatMap((span) => (span[1] ?? "").replaceAll("\\|", "|").split(/;|&&/))
    .map((command) => /^\s*(?:npx )?bun test (.*)$/.exec(command)?.[1])
    .filter((args) => args !== undefined)
    .map((args) => [...args.matchAll(/"([^"]*)"|(\S+)/g)].map((w) => w[1] ?? w[2] ?? ""));
}

const WITH_VALUE = new Set(["-t", "--test-name-pattern", "--timeout", "--preload", "--rerun-each"]);
/** A command's paths and -t pattern; `<file>`, `…` and flags are no paths. */
function parseCommand(words: string[]): { paths: string[]; pattern?: string } {
  const paths: string[] = [];
  let pattern: string | undefined;
  for (let i = 0; i < words.length; i++) {
    const word = words[i] ?? "";
    if (WITH_VALUE.has(word)) {
      if (word === "-t" || word === "--test-name-pattern") pattern = words[i + 1];
      i++;
    } else if (!word.startsWith("-") && !/^<.*>$|…/.test(word)) paths.push(word);
  }
  return { paths, pattern };
}

/** Its alternatives (a `|` outside a group): each must still name a test, or a half-stale pattern would pass. */
const alternatives = (pattern: string) => pattern.split(/(?<!\\)\|(?![^(]*\))/);

/** A dynamic part of a name: a `${…}` in a template literal, or `.each`'s `%s`, `$field`. */
const HOLE = "\u0000";
const START = /(?<![.\w$])(?:test|it|describe)\b/g;

/** From `i` on a quote: the literal's text (holes for `${…}`) and the index after it (a quote in a regex literal
 * or a comment ends its false string at the line's end). */
function literal(source: string, i: number): [string, number] {
  const quote = source[i];
  let text = "";
  for (i++; i < source.length && source[i] !== quote && (quote === "`" || source[i] !== "\n"); i++) {
    if (source[i] === "\\") text += { n: "\n", t: "\t" }[source[++i] ?? ""] ?? source[i];
    else if (quote === "`" && source.startsWith("${", i)) {
      const close = source.indexOf("}", i); // names interpolate plain expressions, no nested braces
      i = close < 0 ? source.length : close;
      text += HOLE;
    } else text += source[i];
  }
  return [text, i + 1];
}

/** The index after the parenthesised group that opens at `i`, stepping over string literals. */
function skipParens(source: string, i: number): number {
  for (let depth = 0; i < source.length; ) {
    const c = source[i];
    if (c === '"' || c === "'" || c === "`") [, i] = literal(source, i);
    else {
      if (c === "(") depth++;
      if (c === ")" && --depth === 0) return i + 1;
      i++;
    }
  }
  return i;
}

/**
 * The test and describe names a test file writes: literals, literals joined by `+`, template literals (their
 * interpolations are holes), `.each` names (their placeholders holes). A name given as a variable cannot be read;
 * the count of those is returned, and the test says if any pattern went unmatched while some were skipped.
 */
function testNames(source: string): { names: string[]; unread: number } {
  const names: string[] = [];
  let unread = 0;
  for (const m of source.matchAll(START)) {
    let i = (m.index ?? 0) + m[0].length;
    /** The match of `re` right at `i`, moving `i` past it. */
    const eat = (re: RegExp) => {
      const sticky = new RegExp(re.source, "y");
      sticky.lastIndex = i;
      const found = sticky.exec(source);
      if (found) i = sticky.lastIndex;
      return found;
    };
    let each = false;
    for (let chain = eat(/\.(\w+)/); chain; chain = eat(/\.(\w+)/)) {
      each ||= chain[1] === "each";
      if (/^(if|skipIf|todoIf|each)$/.test(chain[1] ?? "") && source[i] === "(") i = skipParens(source, i);
    }
    if (!eat(/\(\s*/)) continue; // `test` as a word, not a call
    if (!"\"'`".includes(source[i] ?? "")) {
      unread++;
      continue;
    }
    let name = "";
    do {
      const [text, end] = literal(source, i);
      name += text;
      i = end;
    } while (eat(/\s*\+\s*(?=["'`])/));
    names.push(each ? name.replace(/%[sdifjop#%]|\$[\w.]+/g, HOLE) : name);
  }
  return { names, unread };
}

/** Whether the regex finds a match within a written part of the name (never across a hole). */
const matches = (pattern: string, name: string) => name.split(HOLE).some((part) => new RegExp(pattern).test(part));

describe.each(COMMANDS_IN)("%s", (doc) => {
  const found = commands(read(doc)).map(parseCommand);

  test("its `bun test` commands name files that exist", () => {
    const missing = found.flatMap((c) => c.paths).filter((path) => !existsSync(join(ROOT, path)));
    expect(missing).toEqual([]);
  });

  test("each alternative of each `-t` pattern matches a test or describe name in the command's files", () => {
    const unmatched: string[] = [];
    for (const { paths, pattern } of found) {
      const files = paths.filter((path) => path.endsWith(".test.ts") && existsSync(join(ROOT, path)));
      if (pattern === undefined || files.length === 0) continue;
      const parsed = files.map((file) => testNames(read(file)));
      const names = parsed.flatMap((r) => r.names);
      const unread = parsed.reduce((sum, r) => sum + r.unread, 0);
      for (const alternative of alternatives(pattern)) {
        if (!names.some((name) => matches(alternative, name)))
          unmatched.push(`${paths.join(" ")} -t "${alternative}"${unread ? ` (${unread} names not readable)` : ""}`);
      }
    }
    expect(unmatched).toEqual([]);
  });

  test("a pipe in a table cell's code span is escaped (`\\|`): a bare one ends the cell, cutting the command", () => {
    const cut = read(doc)
      .split("\n")
      .filter((line) => line.startsWith("|"))
      .flatMap((line) => [...line.matchAll(/`([^`]*)`/g)].map((span) => span[1] ?? ""))
      .filter((code) => /(?<!\\)\|/.test(code));
    expect(cut).toEqual([]);
  });

  test("the tests/ files its prose names exist (test files and their helpers)", () => {
    const named = [...read(doc).matchAll(/(?<![\w./-])tests\/[\w./-]+\.ts\b/g)].map((m) => m[0]);
    expect(named.filter((path) => !existsSync(join(ROOT, path)))).toEqual([]);
  });
});

/** GitHub's anchor for a heading: its text as rendered, lower case, punctuation but `-` and `_` gone, spaces `-`. */
function slug(heading: string): string {
  return heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1")
    .replace(/<[^>]+>/g, "")
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, "")
    .replace(/ /g, "-");
}

/** The anchors of a Markdown file's headings, duplicates numbered `-1`, `-2` as GitHub does. */
function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const result = new Set<string>();
  for (const m of prose(markdown).matchAll(/^#{1,6}\s+(.*?)(?:\s+#+)?\s*$/gm)) {
    const base = slug(m[1] ?? "");
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    result.add(count === 0 ? base : `${base}-${count}`);
  }
  return result;
}

const anchorsByFile = new Map<string, Set<string>>();
/** A file's anchors, read once however many links point into it. */
function anchorsOf(file: string): Set<string> {
  const found = anchorsByFile.get(file) ?? anchors(read(file));
  anchorsByFile.set(file, found);
  return found;
}

test("GitHub's anchors: code and links as their text, punctuation dropped, duplicates numbered", () => {
  const doc = "# A `GET /v1/x` — the state\n## On S\n## On S\n```\n# not a heading\n```\n### [Link](x.md) it_s 2.0\n";
  expect([...anchors(doc)]).toEqual(["a-get-v1x--the-state", "on-s", "on-s-1", "link-it_s-20"]);
});

describe.each(DOCS)("%s", (doc) => {
  test("its relative links reach a file, and their #anchors a heading there", () => {
    const broken: string[] = [];
    const text = prose(read(doc)).replace(/`[^`\n]*`/g, "");
    for (const m of text.matchAll(/\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
      const target = m[1] ?? "";
      if (/^[a-z][a-z+.-]*:/i.test(target)) continue; // https:, mailto: and the like
      const [path = "", anchor] = target.split("#");
      const file = path === "" ? doc : normalize(join(dirname(doc), decodeURI(path)));
      if (!existsSync(join(ROOT, file))) broken.push(`${target}: no file ${file}`);
      else if (anchor !== undefined && !anchorsOf(file).has(decodeURIComponent(anchor)))
        broken.push(`${target}: no heading in ${file}`);
    }
    expect(broken).toEqual([]);
  });
});
