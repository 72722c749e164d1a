/**
 * A plugin entry written without `type`: the error names the type to write (the built-in whose keys the entry has),
 * and that type's own errors in its keys (a guessed key's hint), so that one check says the whole fix.
 */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { tempDir } from "../testing/index.ts";
import { issuesOf } from "./config-issues.ts";
import { runMain } from "./reliability-process.ts";

const MISSING = "missing: this key is required";

test("a store without type, its file as `file`: --check says type: libsql and url: file:<path>, exit 1", async () => {
  const dir = await tempDir();
  await Bun.write(join(dir, "kubemeta.yaml"), "store:\n  file: kubemeta.db\n");
  const result = await runMain(["--check", "--config", join(dir, "kubemeta.yaml")], { cwd: dir });
  expect(result).toMatchObject({
    code: 1,
    stdout: "",
    stderr:
      "invalid config:\n" +
      `  store.type: ${MISSING}; write type: libsql (the built-in store that takes these keys)\n` +
      '  store.file: unknown key; did you mean "url"? a file store is url: file:<path>\n',
  });
});

test("a source or sink without type is told the built-in its keys are of, and its errors in them", async () => {
  expect(
    await issuesOf({
      sources: [{ resources: ["v1/pods"] }, {}],
      sinks: [
        { url: "http://127.0.0.1:9/hook" },
        { servers: "nats://127.0.0.1:4222", port: 4222 },
        { stream: "all" },
        { name: "audit", foo: 1 },
        { tpye: "sse" },
      ],
    }),
  ).toEqual([
    `sources[0].type: ${MISSING}; write type: kubernetes (the built-in source that takes these keys)`,
    `sources[1].type: ${MISSING}; write type: kubernetes (the built-in source), or a path to a plugin module`,
    `sinks[0].type: ${MISSING}; write type: webhook (the built-in sink that takes these keys)`,
    `sinks[0].secret: ${MISSING}`,
    `sinks[1].type: ${MISSING}; write type: nats (the built-in sink that takes these keys)`,
    "sinks[1].port: unknown key",
    `sinks[2].type: ${MISSING}; write type: webhook or jsonl (the built-in sinks that take these keys)`,
    `sinks[3].type: ${MISSING}; write type: sse, nats, webhook or jsonl (the built-in sinks), or a path to a ` +
      "plugin module",
    // `type` misspelt: its did-you-mean is the fix.
    `sinks[4].type: ${MISSING}`,
    'sinks[4].tpye: unknown key; did you mean "type"?',
  ]);
});

test("a value from a variable in an untyped entry is said as the variable, as in a typed one", async () => {
  const sink = { url: "http://127.0.0.1:9/hook", secret: "s3cr3t-of-32-bytes-at-least-0123456789", on4xx: "${POLICY}" };
  expect(await issuesOf({ sinks: [sink] }, { POLICY: "the-token-in-the-wrong-variable" })).toEqual([
    `sinks[0].type: ${MISSING}; write type: webhook (the built-in sink that takes these keys)`,
    'sinks[0].on4xx: Invalid type: Expected ("retry" | "skip") but received "${POLICY}"',
  ]);
});

test("a list with holes (a config made in code) is said entry by entry, a hole as the schema says it", async () => {
  // biome-ignore lint/suspicious/noSparseArray: the hole is the input under test.
  const sinks = [, { url: "http://127.0.0.1:9/hook", secret: "s3cr3t-of-32-bytes-at-least-0123456789" }];
  expect(await issuesOf({ sinks })).toEqual([
    "sinks[0]: Invalid type: Expected Object but received undefined: write a mapping of its keys (type, name)",
    `sinks[1].type: ${MISSING}; write type: webhook (the built-in sink that takes these keys)`,
  ]);
});
