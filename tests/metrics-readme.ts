/**
 * The two sides tests/metrics-documented.test.ts compares: the metric families a kubemeta's /metrics exposes (with the
 * labels their series carry), and what README.md says of metrics (every `kubemeta_…` name, the labels it gives one,
 * as `{sink,reason}`, `{phase="run"}` or a table's labels column, and the values it names where it describes one).
 */
import { readdir } from "node:fs/promises";
import { join } from "node:path";

export interface Family {
  type: string;
  /** Label names of its series, each with the values seen (`le` of a histogram's buckets left out). */
  labels: Map<string, Set<string>>;
  /** False for a family registered without a series yet: its labels are unknown. */
  sampled: boolean;
}

/** Families by name, from Prometheus text. */
export function exposedFamilies(text: string): Map<string, Family> {
  const found = new Map<string, Family>();
  for (const line of text.split("\n")) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) {
      found.set(type[1]!, { type: type[2]!, labels: new Map(), sampled: false });
      continue;
    }
    const sample = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? \S+$/.exec(line);
    if (!sample) continue;
    const family = found.get(sample[1]!) ?? found.get(sample[1]!.replace(/_(bucket|sum|count)$/, ""));
    if (!family) throw new Error(`a sample of no family: ${line}`);
    family.sampled = true;
    for (const [, name, value] of (sample[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      if (family.type === "histogram" && name === "le") continue;
      family.labels.set(name!, (family.labels.get(name!) ?? new Set()).add(value!));
    }
  }
  return found;
}

/** Several processes' families as one: a family's labels and values are those any of them exposed. */
export function mergeFamilies(all: Map<string, Family>[]): Map<string, Family> {
  const merged = new Map<string, Family>();
  for (const families of all)
    for (const [name, family] of families) {
      const seen = merged.get(name) ?? { type: family.type, labels: new Map(), sampled: false };
      merged.set(name, seen);
      seen.sampled ||= family.sampled;
      for (const [label, values] of family.labels)
        seen.labels.set(label, new Set([...(seen.labels.get(label) ?? []), ...values]));
    }
  return merged;
}

/** What README gives as one metric's labels, and where. */
export interface LabelClaim {
  metric: string;
  labels: string[];
  /** A list of label names (`{kind,type}`, a table's column) is all of them; a selector (`{phase="run"}`) is some. */
  complete: boolean;
  line: number;
}

/** Labels in braces: bare names, or selectors whose values are dropped first (a quoted value may hold a comma). */
function claimOf(metric: string, inBraces: string, line: number): LabelClaim {
  const parts = inBraces
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .split(",")
    .map((part) => part.trim());
  const labels = parts.map((part) => {
    const name = /^(\w+)(?:\s*(?:=|!=|=~|!~)\s*"")?$/.exec(part)?.[1];
    if (name === undefined) throw new Error(`README.md:${line}: unreadable labels of ${metric}: {${inBraces}}`);
    return name;
  });
  return { metric, labels, complete: parts.every((part) => /^\w+$/.test(part)), line };
}

/** Every `kubemeta_…` name README gives, and every label claim. */
export function readmeMetrics(readme: string): { names: Set<string>; claims: LabelClaim[] } {
  const names = new Set<string>();
  const claims: LabelClaim[] = [];
  readme.split("\n").forEach((text, i) => {
    const line = i + 1;
    for (const [name] of text.matchAll(/kubemeta_\w+/g)) names.add(name);
    for (const [, metric, inBraces] of text.matchAll(/(kubemeta_\w+)\{([^}]*)\}/g))
      claims.push(claimOf(metric!, inBraces!, line));
    const row = /^\| `(kubemeta_\w+)` \| ([^|]*) \|/.exec(text);
    if (row) {
      const labels = [...row[2]!.matchAll(/`(\w+)`/g)].map((match) => match[1]!);
      claims.push({ metric: row[1]!, labels, complete: true, line });
    }
  });
  return { names, claims };
}

/** README's paragraphs, list items and table rows that name `metric`: where README describes it. */
export function describing(readme: string, metric: string): string[] {
  const names = new RegExp(`${metric}(?!\\w)`);
  return readme.split(/\n\s*\n|\n(?=\s*- |\| )/).filter((block) => names.test(block));
}

/** The values README names where it describes `metric`: in backticks, or quoted as in `{reason="oversized"}`. */
export function valuesNamedWith(readme: string, metric: string): Set<string> {
  const values = new Set<string>();
  for (const block of describing(readme, metric)) {
    for (const [, value] of block.matchAll(/`([^`\s]+)`/g)) values.add(value!);
    for (const [, value] of block.matchAll(/="([^"]*)"/g)) values.add(value!);
  }
  return values;
}

/** Not kubemeta's source: what a kubemeta process never runs. */
const NOT_SOURCE = new Set(["node_modules", ".git", "data", ".tmp", "tests", "bench", "simulator", "examples"]);

/** Every metric name a kubemeta process's code spells as a string (`"kubemeta_…"`: registered, or looked up). */
export async function metricNamesInCode(root: string): Promise<Map<string, string>> {
  const files = ["main.ts"];
  for (const entry of await readdir(root, { withFileTypes: true })) {
    if (!entry.isDirectory() || NOT_SOURCE.has(entry.name)) continue;
    const inside = await readdir(join(root, entry.name), { recursive: true });
    files.push(...inside.filter((name) => name.endsWith(".ts")).map((name) => join(entry.name, name)));
  }
  const names = new Map<string, string>();
  for (const file of files) {
    const text = await Bun.file(join(root, file)).text();
    for (const [, name] of text.matchAll(/"(kubemeta_\w+)"/g)) names.set(name!, file);
  }
  return names;
}
