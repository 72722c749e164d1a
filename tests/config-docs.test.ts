/**
 * The README's configuration tables are generated from the schemas (scripts/config-docs.ts);
 * CI fails here when one was edited by hand or a schema changed without a rerun.
 */
import { expect, test } from "bun:test";
import * as v from "valibot";
import { join } from "node:path";
import { renderTable, updateReadme } from "../scripts/config-docs.ts";
import { issuesOf } from "./config-issues.ts";

const ROOT = join(import.meta.dir, "..");

test("README.md's configuration tables are those the schemas generate (npx bun scripts/config-docs.ts --check)", () => {
  const run = Bun.spawnSync([process.execPath, "scripts/config-docs.ts", "--check"], { cwd: ROOT });
  expect({ exitCode: run.exitCode, stderr: run.stderr.toString() }).toEqual({ exitCode: 0, stderr: "" });
});

const sample = v.strictObject({
  url: v.pipe(v.string(), v.url(), v.description("The receiver.")),
  mode: v.optional(v.pipe(v.picklist(["a", "b"]), v.description("`a|b` or a|b.")), "a"),
  token: v.optional(v.pipe(v.string(), v.description("No default."))),
  prefix: v.optional(
    v.pipe(v.string(), v.metadata({ default: "kubemeta.<cluster>" }), v.description("Shown differently.")),
    "",
  ),
  retry: v.optional(
    v.pipe(
      v.strictObject({
        initial: v.optional(v.pipe(v.string(), v.description("First delay.")), "1s"),
        kinds: v.optional(v.pipe(v.array(v.string()), v.description("A list.")), ["Pod", "Node"]),
      }),
      v.transform((retry) => retry),
      v.description("Backoff."),
    ),
    {},
  ),
  backoff: v.optional(
    v.pipe(
      v.strictObject({ max: v.optional(v.string()) }),
      v.metadata({ deprecated: "retry" }),
      v.description("Deprecated: use `retry`."),
    ),
  ),
});

test(
  "a schema renders as a table: required keys, literal and metadata defaults, " +
    "nested objects as parent.child, deprecated keys as one row",
  () => {
    expect(renderTable("sink/sample", sample).split("\n")).toEqual([
      "| key | default | meaning |",
      "| --- | --- | --- |",
      "| `url` | required | The receiver. |",
      "| `mode` | `a` | `a\\|b` or a\\|b. |",
      "| `token` | — | No default. |",
      "| `prefix` | `kubemeta.<cluster>` | Shown differently. |",
      "| `retry` | `{}` | Backoff. |",
      "| `retry.initial` | `1s` | First delay. |",
      "| `retry.kinds` | `[Pod, Node]` | A list. |",
      "| `backoff` | — | Deprecated: use `retry`. |",
    ]);
  },
);

test("a key without a description fails the table, naming the schema and every such key", () => {
  const undocumented = v.strictObject({
    url: v.string(),
    retry: v.optional(v.pipe(v.strictObject({ max: v.optional(v.string(), "1m") }), v.description("Backoff.")), {}),
  });
  expect(() => renderTable("sink/sample", undocumented)).toThrow('sink/sample: no description for "url", "retry.max"');
});

test("the README update rewrites marked tables, and names tables that differ, lack markers or lack a schema", () => {
  const small = v.strictObject({ url: v.pipe(v.string(), v.description("The receiver.")) });
  const readme = [
    "intro",
    "<!-- config-table:sink/one -->",
    "| stale |",
    "<!-- /config-table -->",
    "<!-- config-table:sink/gone -->",
    "<!-- /config-table -->",
    "",
  ].join("\n");
  const result = updateReadme(readme, [
    { id: "sink/one", schema: small },
    { id: "sink/two", schema: small },
  ]);
  expect(result.differing).toEqual(["sink/one"]);
  expect(result.problems).toEqual([
    'README.md has a table for "sink/gone", which no schema has',
    'README.md has no table for "sink/two": ' +
      "add <!-- config-table:sink/two --> and <!-- /config-table --> where it belongs",
  ]);
  expect(result.readme).toContain(
    "<!-- config-table:sink/one -->\n| key | default | meaning |\n| --- | --- | --- |\n" +
      "| `url` | required | The receiver. |\n<!-- /config-table -->",
  );
  expect(updateReadme(result.readme, [{ id: "sink/one", schema: small }]).differing).toEqual([]);
});

test("a bound a key's schema enforces is said in its README row: the value past it refused, the row says", async () => {
  const readme = await Bun.file(join(ROOT, "README.md")).text();
  const rowOf = (key: string) => readme.split("\n").find((line) => line.startsWith(`| \`${key}\` |`)) ?? "";
  const kubernetes = (keys: object) => ({ sources: [{ type: "kubernetes", ...keys }] });
  const bounds: [key: string, config: object, said: string][] = [
    ["parseThreads", kubernetes({ parseThreads: 17 }), "at most 16"],
    ["watchTimeout", kubernetes({ watchTimeout: "999ms" }), "at least 1s"],
    ["heartbeat", { sinks: [{ type: "sse", heartbeat: "9ms" }] }, "at least 10ms"],
  ];
  for (const [key, config, said] of bounds) {
    expect(await issuesOf(config)).toHaveLength(1);
    expect({ key, row: rowOf(key).includes(said) }).toEqual({ key, row: true });
  }
});
