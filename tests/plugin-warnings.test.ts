/**
 * A plugin's own warnings (Declaration.warnings) may be async, as its check may: what they read may be loaded only
 * when read. Ones that never settle are given up on after the plugins' deadline, as a check is: --check goes on.
 */
import { afterEach, expect, test } from "bun:test";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { tempDir } from "../testing/index.ts";
import { runMain } from "./reliability-process.ts";

const sdk = join(import.meta.dir, "../sdk/index.ts");
let folder: string | undefined;
afterEach(async () => {
  if (folder) await rm(folder, { recursive: true, force: true });
  folder = undefined;
});

/** Its listener on loopback: --check says no warning of one without tokens that others reach. */
const LOOPBACK = "http: { address: 127.0.0.1 }\n";

/** A sink plugin of type `type` whose warnings return `warnings` (an expression). */
const sinkWarning = (type: string, warnings: string) =>
  [
    `import { defineSink, v } from ${JSON.stringify(sdk)};`,
    "export default defineSink({",
    `  type: "${type}", description: "a sink of the test's", schema: v.strictObject({}),`,
    `  warnings() { return ${warnings}; },`,
    "  create() { return { async start() {}, async stop() {} }; },",
    "});",
  ].join("\n");

test("--check says a plugin's async warnings, and goes on past ones that never settle after 10 s", async () => {
  folder = await tempDir("kubemeta-warnings-");
  await Bun.write(
    join(folder, "later.ts"),
    sinkWarning("later", `Bun.sleep(10).then(() => ["its key is sent in clear"])`),
  );
  await Bun.write(join(folder, "never.ts"), sinkWarning("never", "new Promise(() => {})"));
  await Bun.write(join(folder, "kubemeta.yaml"), `sinks:\n  - type: ./later.ts\n  - type: ./never.ts\n${LOOPBACK}`);
  const started = Date.now();
  const result = await runMain(["--check", "--config", "kubemeta.yaml"], { cwd: folder });
  expect(result).toEqual({
    code: 0,
    stdout: "config is valid\n",
    stderr:
      "kubemeta: warning: sinks[0]: its key is sent in clear\nkubemeta: warning: no sources: nothing is watched\n",
  });
  // Given up on once, beside the checks: not a deadline for each plugin, nor one after them.
  expect(Date.now() - started).toBeLessThan(20_000);
}, 30_000);

test("--check says a plugin's warnings() that returns no list of strings as such, rather than fail", async () => {
  folder = await tempDir("kubemeta-warnings-");
  await Bun.write(join(folder, "string.ts"), sinkWarning("string", `"its key is sent in clear"`));
  await Bun.write(join(folder, "numbers.ts"), sinkWarning("numbers", "Promise.resolve([1])"));
  await Bun.write(join(folder, "kubemeta.yaml"), `sinks:\n  - type: ./string.ts\n  - type: ./numbers.ts\n${LOOPBACK}`);
  // Was: `kubemeta: TypeError: (await pluginWarnings(entry)).map is not a function`, exit 1; a start logged the
  // string letter by letter, one warning each.
  expect(await runMain(["--check", "--config", "kubemeta.yaml"], { cwd: folder })).toEqual({
    code: 0,
    stdout: "config is valid\n",
    stderr:
      'kubemeta: warning: sinks[0]: its plugin\'s warnings() returned the string "its key is sent in clear", not a ' +
      "list of strings\nkubemeta: warning: sinks[1]: its plugin's warnings() returned a list holding 1, not a list " +
      "of strings\nkubemeta: warning: no sources: nothing is watched\n",
  });
}, 30_000);

test("--check says a plugin's warnings() that returns null as null, not as an object", async () => {
  folder = await tempDir("kubemeta-warnings-");
  await Bun.write(join(folder, "none.ts"), sinkWarning("none", "null"));
  await Bun.write(join(folder, "kubemeta.yaml"), `sinks:\n  - type: ./none.ts\n${LOOPBACK}`);
  // Was: `returned an object`, though a plugin in JavaScript that has nothing to say returned null.
  expect(await runMain(["--check", "--config", "kubemeta.yaml"], { cwd: folder })).toEqual({
    code: 0,
    stdout: "config is valid\n",
    stderr:
      "kubemeta: warning: sinks[0]: its plugin's warnings() returned null, not a list of strings\n" +
      "kubemeta: warning: no sources: nothing is watched\n",
  });
}, 30_000);
