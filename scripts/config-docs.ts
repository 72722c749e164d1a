/**
 * Writes the README's configuration tables from the valibot schemas, the one place where
 * each option's meaning (`v.description`) and default live. Each table sits between
 * `<!-- config-table:<id> -->` and `<!-- /config-table -->`; the id is `host`, `http`
 * or `<kind>/<type>` of a built-in plugin.
 *
 *   npx bun scripts/config-docs.ts           rewrite the tables in README.md
 *   npx bun scripts/config-docs.ts --check   change nothing; exit 1 if a table differs
 *
 * Either way a key without a description is an error naming its schema and key, so an
 * option cannot be added undocumented. tests/config-docs.test.ts runs the check in CI.
 */
import * as v from "valibot";
import { join } from "node:path";
import { hostSchema } from "../host/config-schema.ts";
import { httpSchema } from "../host/http-config.ts";
import { builtins } from "../plugins/index.ts";

const README = join(import.meta.dir, "..", "README.md");

export interface ConfigTable {
  /** What the README's markers name, and error messages too. */
  id: string;
  schema: v.GenericSchema;
}

const CONFIG_TABLES: ConfigTable[] = [
  // `http` has a section of its own in the README, so its keys get a table there.
  { id: "host", schema: v.omit(hostSchema, ["http"]) },
  { id: "http", schema: httpSchema },
  ...Object.values(builtins)
    .flat()
    .map((declaration) => ({ id: `${declaration.kind}/${declaration.type}`, schema: declaration.schema })),
];

/**
 * The table of an object schema's keys, one row per key and, after a key holding an
 * object, one row per key of that object (`parent.child`). Throws, naming `id` and every
 * key without a description.
 */
export function renderTable(id: string, schema: v.GenericSchema): string {
  if (!("entries" in schema)) throw new Error(`${id}: not an object schema (use v.strictObject)`);
  const undocumented: string[] = [];
  const rows = describeKeys(schema.entries, "", undocumented);
  if (undocumented.length > 0) {
    throw new Error(
      `${id}: no description for ${undocumented.map((key) => `"${key}"`).join(", ")} ` +
        `(end the key's pipe with v.description("…"))`,
    );
  }
  return [
    "| key | default | meaning |",
    "| --- | --- | --- |",
    ...rows.map((row) => `| \`${row.key}\` | ${cell(row.shownDefault)} | ${cell(row.meaning)} |`),
  ].join("\n");
}

/** A key that may be left out (`v.optional`), or written empty too (`v.nullish`): its default is shown. */
type Optional = v.OptionalSchema<v.GenericSchema, unknown> | v.NullishSchema<v.GenericSchema, unknown>;

interface Row {
  key: string;
  shownDefault: string;
  meaning: string;
}

function describeKeys(entries: unknown, prefix: string, undocumented: string[]): Row[] {
  return Object.entries(entries as Record<string, v.GenericSchema>).flatMap(([name, field]) => {
    const key = prefix + name;
    // `v.optional` (or `v.nullish`) goes around the pipe that documents the key, so the description and metadata are
    // inside it.
    const optional = field.type === "optional" || field.type === "nullish" ? (field as Optional) : undefined;
    const inner = optional?.wrapped ?? field;
    const meaning = v.getDescription(inner);
    if (meaning === undefined) undocumented.push(key);
    const metadata = v.getMetadata(inner);
    const row = { key, shownDefault: shownDefault(optional, metadata), meaning: meaning ?? "" };
    // A pipe spreads its first schema, so a piped object still has its `entries`. A deprecated
    // key (sdk/schema.ts deprecatedKey) is one row naming its replacement, whatever it holds.
    if ("deprecated" in metadata) return [row];
    if ("entries" in inner) return [row, ...describeKeys(inner.entries, `${key}.`, undocumented)];
    // A record of objects documents its values' keys once, under a placeholder: `kinds.<Kind>.keep`.
    const value = inner.type === "record" ? (inner as unknown as { value: v.GenericSchema }).value : undefined;
    if (value !== undefined && "entries" in value) {
      const placeholder = typeof metadata.key === "string" ? metadata.key : "<key>";
      return [row, ...describeKeys(value.entries, `${key}.${placeholder}.`, undocumented)];
    }
    return [row];
  });
}

/** `v.metadata({ default })` wins: for a default computed at run time, or one better shown than its raw value. */
function shownDefault(optional: Optional | undefined, metadata: Record<string, unknown>): string {
  if ("default" in metadata) return code(metadata.default);
  if (!optional) return "required";
  const value = v.getDefault(optional);
  return value === undefined ? "—" : code(value);
}

/** A value as a YAML config would write it (flow style), as code. */
function code(value: unknown): string {
  return `\`${flow(value)}\``;
}

function flow(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(flow).join(", ")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value);
    return entries.length === 0 ? "{}" : `{ ${entries.map(([key, item]) => `${key}: ${flow(item)}`).join(", ")} }`;
  }
  return String(value);
}

/** A `|` would end the cell, even inside a code span. */
function cell(text: string): string {
  return text.replaceAll("|", "\\|");
}

const REGION = /<!-- config-table:(\S+) -->\n[\s\S]*?<!-- \/config-table -->/g;

export interface DocsUpdate {
  /** The README with every table that could be rendered written in. */
  readme: string;
  /** Ids of the tables whose text changed. */
  differing: string[];
  /** Keys without a description, tables without markers, markers without a schema. */
  problems: string[];
}

export function updateReadme(readme: string, tables: ConfigTable[] = CONFIG_TABLES): DocsUpdate {
  const problems: string[] = [];
  const rendered = new Map<string, string>();
  for (const { id, schema } of tables) {
    try {
      rendered.set(id, renderTable(id, schema));
    } catch (error) {
      problems.push((error as Error).message);
    }
  }
  const differing: string[] = [];
  const marked = new Set<string>();
  const updated = readme.replace(REGION, (region, id: string) => {
    marked.add(id);
    const table = rendered.get(id);
    if (table === undefined) {
      if (!tables.some((t) => t.id === id)) problems.push(`README.md has a table for "${id}", which no schema has`);
      return region;
    }
    const fresh = `<!-- config-table:${id} -->\n${table}\n<!-- /config-table -->`;
    if (fresh !== region) differing.push(id);
    return fresh;
  });
  for (const { id } of tables) {
    if (!marked.has(id))
      problems.push(
        `README.md has no table for "${id}": ` +
          `add <!-- config-table:${id} --> and <!-- /config-table --> where it belongs`,
      );
  }
  return { readme: updated, differing, problems };
}

if (import.meta.main) {
  const check = process.argv.includes("--check");
  const current = await Bun.file(README).text();
  const { readme, differing, problems } = updateReadme(current);
  for (const problem of problems) console.error(problem);
  if (check) {
    if (differing.length > 0)
      console.error(
        `README.md's configuration tables differ from the schemas: ${differing.join(", ")} ` +
          "(run npx bun scripts/config-docs.ts)",
      );
  } else if (differing.length > 0) {
    await Bun.write(README, readme);
    console.log(`README.md: rewrote ${differing.join(", ")}`);
  }
  process.exitCode = problems.length > 0 || (check && differing.length > 0) ? 1 : 0;
}
