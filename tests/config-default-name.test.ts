/**
 * An entry without `name` goes by the type its plugin declares: a type that breaks the rule a written name is held to
 * (`My Sink!`, `a/b`) would key a sink's cursor, label metrics and log lines, so the entry is refused until named.
 */
import { afterAll, expect, test } from "bun:test";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { ConfigError, resolveConfig } from "../host/config.ts";
import { builtins } from "../plugins/index.ts";
import { tempDir } from "../testing/index.ts";
import { runMain } from "./reliability-process.ts";

const sdk = join(import.meta.dir, "..", "sdk", "index.ts");
const folders: string[] = [];
afterAll(() => Promise.all(folders.map((folder) => rm(folder, { recursive: true, force: true }))));

/** A folder with a sink and a source module of each declared type, as `sink-<i>.ts` and `source-<i>.ts`. */
async function pluginsDeclaring(types: string[]): Promise<string> {
  const dir = await tempDir("kubemeta-default-name-");
  folders.push(dir);
  for (const [i, type] of types.entries()) {
    for (const kind of ["Sink", "Source"]) {
      await Bun.write(
        join(dir, `${kind.toLowerCase()}-${i}.ts`),
        `import { define${kind}, v } from ${JSON.stringify(sdk)};\n` +
          `export default define${kind}({ type: ${JSON.stringify(type)}, description: "", ` +
          "schema: v.strictObject({}), create: () => ({ async start() {}, async stop() {} }) });\n",
      );
    }
  }
  return dir;
}

const refusal = (type: string) =>
  `required: its plugin declares type ${JSON.stringify(type)}, no name (letters, digits, '_', '.', '-' only), so ` +
  "the entry has none by default; give it one";

test("an entry whose plugin declares a type that is no name is refused until named; a legal one names it", async () => {
  const dir = await pluginsDeclaring(["My Sink!", "a/b", "audit.v2"]);
  const entries = (kind: string, named: boolean) =>
    [0, 1, 2].map((i) => ({ type: `./${kind}-${i}.ts`, ...(named && i < 2 ? { name: `mine-${i}` } : {}) }));
  const refused = await resolveConfig(
    { sources: entries("source", false), sinks: entries("sink", false) },
    { baseDir: dir, registry: builtins },
  ).catch((e: unknown) => e);
  expect(refused).toBeInstanceOf(ConfigError);
  expect((refused as ConfigError).issues.map((issue) => `${issue.path}: ${issue.message}`)).toEqual([
    `sources[0].name: ${refusal("My Sink!")}`,
    `sources[1].name: ${refusal("a/b")}`,
    `sinks[0].name: ${refusal("My Sink!")}`,
    `sinks[1].name: ${refusal("a/b")}`,
  ]);
  const named = await resolveConfig(
    { sources: entries("source", true), sinks: entries("sink", true) },
    { baseDir: dir, registry: builtins },
  );
  expect(named.sinks.map((sink) => sink.name)).toEqual(["mine-0", "mine-1", "audit.v2"]);
  expect(named.sources.map((source) => source.name)).toEqual(["mine-0", "mine-1", "audit.v2"]);
});

test("--check says which entry needs a name, and passes once it has one", async () => {
  const dir = await pluginsDeclaring(["My Sink!"]);
  await Bun.write(join(dir, "kubemeta.yaml"), "sinks:\n  - type: ./sink-0.ts\n");
  const refused = await runMain(["--check", "--config", "kubemeta.yaml"], { cwd: dir });
  expect(refused).toMatchObject({
    code: 1,
    stdout: "",
    stderr: `invalid config:\n  sinks[0].name: ${refusal("My Sink!")}\n`,
  });
  await Bun.write(join(dir, "kubemeta.yaml"), "sinks:\n  - type: ./sink-0.ts\n    name: my-sink\n");
  expect(await runMain(["--check", "--config", "kubemeta.yaml"], { cwd: dir })).toMatchObject({
    code: 0,
    stdout: "config is valid\n",
  });
}, 20_000);
