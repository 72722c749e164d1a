/**
 * Plugin modules loaded by path that are no plugin: what the config says of each, at `--check` and at start, as a
 * config error at the entry rather than an exception of the host's.
 */
import { afterEach, expect, test } from "bun:test";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { ConfigError, resolveConfig } from "../host/config.ts";
import { builtins } from "../plugins/index.ts";
import { tempDir } from "../testing/index.ts";

const sdk = join(import.meta.dir, "../sdk/index.ts");
let folder: string | undefined;
afterEach(async () => {
  if (folder) await rm(folder, { recursive: true, force: true });
  folder = undefined;
});

/** Writes `files` (name → source) to a new folder and resolves a config of one sink per `types`: its issues. */
async function issuesOfModules(files: Record<string, string>, types: string[]): Promise<string[]> {
  folder = await tempDir("kubemeta-modules-");
  for (const [name, source] of Object.entries(files)) await Bun.write(join(folder, name), source);
  const sinks = types.map((type, i) => ({ type, name: `s${i}` }));
  const error = await resolveConfig({ sinks }, { baseDir: folder, registry: builtins }).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(ConfigError);
  return (error as ConfigError).issues.map((issue) => `${issue.path}: ${issue.message}`);
}

test("a syntax error names its file, line and column, in the plugin or in a module it imports", async () => {
  const issues = await issuesOfModules(
    {
      "broken.ts": `import { defineSink } from "${sdk}";\nexport default defineSink({ type: "x",\n`,
      "helper.ts": "export const a = 1;\nexport const b = = 2;\n",
      "uses-helper.ts": `import { a } from "./helper.ts";\nexport default a;\n`,
    },
    ["./broken.ts", "./uses-helper.ts"],
  );
  const at = (entry: number, module: string) => `sinks[${entry}].type: cannot load plugin module ${folder}/${module}: `;
  expect(issues).toEqual([
    `${at(0, "broken.ts")}${folder}/broken.ts:2:39: Expected identifier but found end of file`,
    `${at(1, "uses-helper.ts")}${folder}/helper.ts:2:18: Unexpected =`,
  ]);
});

test("a module that throws as it loads says where: its own line, or the line of its that called the SDK", async () => {
  const issues = await issuesOfModules(
    {
      "settings.ts": 'import { readFileSync } from "node:fs";\n\nexport const settings = readFileSync("/no/such");\n',
      "uses-settings.ts": `import { settings } from "./settings.ts";\nexport default settings;\n`,
      "big-batch.ts": `import { batchSchema } from "${sdk}";\n\nexport default batchSchema({ size: 20_000 });\n`,
    },
    ["./uses-settings.ts", "./big-batch.ts"],
  );
  const at = (entry: number, module: string) => `sinks[${entry}].type: cannot load plugin module ${folder}/${module}: `;
  // Was: the message alone, which named neither the file nor the line.
  expect(issues).toEqual([
    `${at(0, "uses-settings.ts")}ENOENT: no such file or directory, open '/no/such' ` +
      `(thrown at ${folder}/settings.ts:3:25)`,
    `${at(1, "big-batch.ts")}batchSchema: the default size 20000 is not a whole number from 1 to maxSize (10000) ` +
      `(thrown at ${folder}/big-batch.ts:3:16)`,
  ]);
});

test("a declaration whose schema is no valibot schema is a config error at its entry, not a TypeError", async () => {
  const declaring = (schema: string) =>
    `import { defineSink, v } from "${sdk}";\n` +
    `export default defineSink({ type: "x", description: "", schema: ${schema}, create: () => ({}) as never });\n`;
  const issues = await issuesOfModules(
    { "plain.ts": declaring("{ file: v.string() } as never"), "uncalled.ts": declaring("v.strictObject as never") },
    ["./plain.ts", "./uncalled.ts"],
  );
  const refused = (entry: number, module: string) =>
    `sinks[${entry}].type: ${folder}/${module}'s declaration has a schema that is no valibot schema: ` +
    "make it with the SDK's v, as v.strictObject({ … })";
  expect(issues).toEqual([refused(0, "plain.ts"), refused(1, "uncalled.ts")]);
});

test("a declaration whose schema is async, or holds an async part, is a config error at its entry", async () => {
  const declaring = (schema: string) =>
    `import { defineSink, v } from "${sdk}";\n` +
    `export default defineSink({ type: "x", description: "", schema: ${schema} as never, ` +
    "create: () => ({ async start() {}, async stop() {} }) });\n";
  const checked = "v.pipeAsync(v.string(), v.checkAsync(async (file) => file.length > 3, 'too short'))";
  const issues = await issuesOfModules(
    {
      "whole.ts": declaring(`v.objectAsync({ file: ${checked} })`),
      "nested.ts": declaring(
        `v.strictObject({ file: v.optional(v.string()), deep: v.strictObject({ file: ${checked} }) })`,
      ),
      "sync.ts": declaring("v.strictObject({ file: v.pipe(v.string(), v.check((file) => file.length > 3)) })"),
    },
    ["./whole.ts", "./nested.ts", "./sync.ts"],
  );
  // Before the fix: the first entry dropped without a word (no sink, config valid); the second's `deep.file` undefined.
  const refused = (entry: number, module: string) =>
    `sinks[${entry}].type: ${folder}/${module}'s declaration has an async schema (v.objectAsync, v.pipeAsync, ` +
    "v.checkAsync, …): kubemeta validates each entry at once, before anything starts, so make it synchronous and " +
    "check what needs I/O in the declaration's check(config), which --check runs";
  expect(issues).toEqual([
    refused(0, "whole.ts"),
    refused(1, "nested.ts"),
    "sinks[2].file: missing: this key is required",
  ]);
});

test("a module not found is said as the file that is not there, relative to the config's folder", async () => {
  const needsPackage = `import x from "no-such-package";\nexport default x;\n`;
  const issues = await issuesOfModules({ "needs-package.ts": needsPackage }, [
    "./plugins/deletions.ts",
    "./needs-package.ts",
  ]);
  expect(issues).toEqual([
    `sinks[0].type: cannot load plugin module ${folder}/plugins/deletions.ts: no such file ` +
      "(a relative type is relative to the config file's folder)",
    `sinks[1].type: cannot load plugin module ${folder}/needs-package.ts: ` +
      `Cannot find package 'no-such-package' imported from ${folder}/needs-package.ts`,
  ]);
});

test("a plugin outside a kubemeta install says how to install it; a path not exported, what is", async () => {
  const imports = (specifier: string) => `import "${specifier}";\nexport default 1;\n`;
  const issues = await issuesOfModules(
    { "sdk.ts": imports("kubemeta/sdk"), "deep.ts": imports("kubemeta/host/logger.ts") },
    ["./sdk.ts", "./deep.ts"],
  );
  const notFound = (entry: number, module: string) =>
    `sinks[${entry}].type: cannot load plugin module ${folder}/${module}: ` +
    `Cannot find package 'kubemeta' imported from ${folder}/${module}: `;
  // Was: Bun's message alone, the same for both, and nothing said what to do.
  expect(issues).toEqual([
    `${notFound(0, "sdk.ts")}install the kubemeta that runs it in the plugin's folder or one above it ` +
      `(npm install ${join(import.meta.dir, "..")}; README, "Load it by path")`,
    `${notFound(1, "deep.ts")}kubemeta's package exports kubemeta/sdk, kubemeta/testing, kubemeta/client alone`,
  ]);
  const { exports } = await Bun.file(join(import.meta.dir, "../package.json")).json();
  expect(Object.keys(exports).map((path) => path.replace(".", "kubemeta"))).toEqual([
    "kubemeta/client",
    "kubemeta/sdk",
    "kubemeta/testing",
  ]);
});

test("a declaration of another kind says where it goes, one by name to default-export it, what one lacks", async () => {
  const declaring = (define: string, exported: string) =>
    `import { ${define}, v } from "${sdk}";\n` +
    `export ${exported} ${define}({ type: "x", description: "", schema: v.strictObject({}), ` +
    "create: () => ({ async start() {}, async stop() {} }) });\n";
  const issues = await issuesOfModules(
    {
      "source.ts": declaring("defineSource", "default"),
      "named.ts": declaring("defineSink", "const sink ="),
      "other.ts": "export default { kind: 'sink' };\n",
      "parts.ts": `import { defineSink, v } from "${sdk}";\nexport default defineSink({ name: "x" } as never);\n`,
    },
    ["./source.ts", "./named.ts", "./other.ts", "./parts.ts"],
  );
  const wanted = (entry: number, module: string) =>
    `sinks[${entry}].type: ${folder}/${module} must default-export a sink declaration ` +
    "(defineSink({ type, schema, create }))";
  // Was: the first sentence alone, for a declaration listed in the wrong section and for one not the default alike.
  expect(issues).toEqual([
    `${wanted(0, "source.ts")}; its default export is a source declaration (defineSource): list it under \`sources\``,
    `${wanted(1, "named.ts")}; it exports one as \`sink\`, not as its default: write export default`,
    `${wanted(2, "other.ts")}; its declaration has no type (a string), no schema, no create (a function)`,
    `${wanted(3, "parts.ts")}; its declaration has no type (a string), no schema, no create (a function)`,
  ]);
});

test("a sink by path that declares a built-in's type needs a name: by default it takes that one's cursor", async () => {
  folder = await tempDir("kubemeta-modules-");
  const declaring = (type: string) =>
    `import { defineSink, v } from "${sdk}";\n` +
    `export default defineSink({ type: "${type}", description: "", schema: v.strictObject({}), ` +
    "create: () => ({ async start() {}, async stop() {} }) });\n";
  await Bun.write(join(folder, "my-webhook.ts"), declaring("webhook"));
  await Bun.write(join(folder, "audit.ts"), declaring("audit"));
  const resolved = (sinks: Record<string, unknown>[]) =>
    resolveConfig({ sinks }, { baseDir: folder!, registry: builtins }).catch((e: unknown) => e);
  const refused = await resolved([{ type: "./my-webhook.ts" }, { type: "jsonl", path: "-" }]);
  expect(refused).toBeInstanceOf(ConfigError);
  expect((refused as ConfigError).issues.map((issue) => `${issue.path}: ${issue.message}`)).toEqual([
    'sinks[0].name: required: its plugin declares type "webhook", the built-in sink\'s, so by default it would go by ' +
      "that sink's name and resume from its cursor in the store; give it a name of its own (name: webhook if that " +
      "is meant)",
  ]);
  const named = await resolved([
    { type: "./my-webhook.ts", name: "mine" },
    { type: "./audit.ts" },
    // The built-in's own module, named by its path, is the built-in.
    { type: join(import.meta.dir, "../plugins/sinks/jsonl.ts"), path: "-" },
  ]);
  expect(named).not.toBeInstanceOf(Error);
  expect((named as { sinks: { name: string }[] }).sinks.map((sink) => sink.name)).toEqual(["mine", "audit", "jsonl"]);
});

test("a type naming a folder loads it as Bun does: its package.json's main, else its index.ts", async () => {
  folder = await tempDir("kubemeta-modules-");
  const declaring = (type: string) =>
    `import { defineSink, v } from "${sdk}";\n` +
    `export default defineSink({ type: "${type}", description: "", schema: v.strictObject({}), ` +
    "create: () => ({ async start() {}, async stop() {} }) });\n";
  await Bun.write(join(folder, "indexed/index.ts"), declaring("indexed"));
  await Bun.write(join(folder, "packaged/package.json"), JSON.stringify({ main: "sink.ts" }));
  await Bun.write(join(folder, "packaged/sink.ts"), declaring("packaged"));
  await Bun.write(join(folder, "packaged/index.ts"), declaring("not-this-one"));
  await Bun.write(join(folder, "empty/notes.txt"), "no module here\n");
  const resolved = (sinks: Record<string, unknown>[]) =>
    resolveConfig({ sinks }, { baseDir: folder!, registry: builtins }).catch((e: unknown) => e);
  const loaded = await resolved([{ type: "./indexed" }, { type: "./packaged/" }]);
  expect((loaded as { sinks: { name: string }[] }).sinks.map((sink) => sink.name)).toEqual(["indexed", "packaged"]);
  const refused = await resolved([{ type: "./empty" }]);
  expect((refused as ConfigError).issues.map((issue) => `${issue.path}: ${issue.message}`)).toEqual([
    `sinks[0].type: cannot load plugin module ${folder}/empty: a folder with nothing to load: no package.json ` +
      "whose main names a module, no index.ts (or .js)",
  ]);
});

test("a module whose top-level await never settles is a config error at its entry after 10 s, not a hang", async () => {
  const declaring = `import { defineSink, v } from "${sdk}";\n`;
  const issues = await issuesOfModules(
    {
      "waits.ts": `${declaring}await new Promise(() => {});\nexport default 1;\n`,
      "imports-waits.ts": `import "./waits.ts";\nexport default 1;\n`,
    },
    ["./waits.ts", "./imports-waits.ts"],
  );
  const late = (entry: number, module: string) =>
    `sinks[${entry}].type: cannot load plugin module ${folder}/${module}: it did not finish loading within 10s ` +
    "(a top-level await that does not settle: connect in the plugin's start instead)";
  // Was: resolveConfig never settled, and --check and the start hung with nothing said.
  expect(issues).toEqual([late(0, "waits.ts"), late(1, "imports-waits.ts")]);
}, 30_000);
