/** A key written twice in one mapping of the config file: YAML and JSON keep the last silently, kubemeta refuses. */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { duplicateKeys } from "../host/duplicate-keys.ts";
import { tempDir } from "../testing/index.ts";
import { runMain } from "./reliability-process.ts";

async function check(name: string, text: string) {
  const dir = await tempDir();
  await Bun.write(join(dir, name), text);
  return runMain(["--check", "--config", join(dir, name)], { cwd: dir });
}

test("--check refuses a YAML config with a section written twice, naming each key, its path and lines", async () => {
  const result = await check(
    "kubemeta.yaml",
    [
      "sinks:",
      "  - type: webhook",
      "    url: https://receiver.example.com/a",
      "    url: https://receiver.example.com/b",
      "    secret: a-secret-of-enough-length",
      "sources: [{ type: kubernetes, namespace: a, namespace: b }]",
      "http: { port: 8080 }",
      "sinks:",
      "  - type: sse",
      "log: { level: loud }",
    ].join("\n"),
  );
  expect(result.code).toBe(1);
  expect(result.stderr.split("\n")).toEqual([
    "invalid config:",
    "  sinks[0].url: written 2 times (lines 3, 4): only the last would count",
    "  sources[0].namespace: written 2 times (line 6): only the last would count",
    "  sinks: written 2 times (lines 1, 8): only the last would count",
    // Every other mistake is said at once, as always.
    expect.stringContaining("  log.level: "),
    "",
  ]);
});

test("--check refuses a JSON config with a key written twice", async () => {
  const result = await check("kubemeta.json", '{\n  "cluster": {"name": "a", "name": "b"},\n  "sinks": []\n}\n');
  expect(result.code).toBe(1);
  expect(result.stderr).toBe("invalid config:\n  cluster.name: written 2 times (line 2): only the last would count\n");
});

test("a key twice with quotes, in a flow mapping, escaped, explicit (`? key`) or with a ${NAME} is a key twice", () => {
  const cases: [string, string][] = [
    ['http: {"port": 1, "port": 2}', "http.port"],
    ["http: {port: 1, 'port': 2}", "http.port"],
    ['http: {"address":"127.0.0.1","port":1,"port":2}', "http.port"],
    ['http:\n  port: 1\n  "\\x70ort": 2', "http.port"],
    ["cluster: {'it''s': 1, \"it's\": 2}", "cluster.it's"],
    ["http:\n  port: 1\n  ? port\n  : 2", "http.port"],
    // The same ${NAME} twice is the same key whatever it holds (keys are interpolated as values are).
    ["headers:\n  ${HEADER}: a\n  ${HEADER}: b", "headers.${HEADER}"],
    ["headers:\n  x-${HEADER}-id: a\n  x-${HEADER}-id: b", "headers.x-${HEADER}-id"],
  ];
  for (const [yaml, path] of cases) {
    expect(Bun.YAML.parse(yaml)).toBeObject();
    expect(duplicateKeys(yaml, "yaml").map((issue) => issue.path)).toEqual([path]);
  }
});

test("what only looks like a key written twice is not one", () => {
  const yaml = [
    "cluster: { name: prod }",
    "sinks:",
    "  - type: sse",
    "    name: a", // the same key in another list item, below
    "  - type: sse",
    "    name: b",
    "script: |",
    "  name: 1", // a block scalar's text
    "  name: 2",
    'quoted: "a, name: b, name: c"',
    "nested: { name: a, inner: { name: b } }",
    "headers:",
    "  ${ONE}: a",
    "  ${TWO}: b",
    "name: top", // the same key in another mapping
    // Merge keys: a mapping overrides what it merges in.
    "base: &base { type: kubernetes, name: a, namespace: a }",
    "merged:",
    "  - <<: *base",
    "    name: b",
    "  - { <<: *base, namespace: c }",
    "  - <<: [*base]",
    "    namespace: d",
  ].join("\n");
  expect(Bun.YAML.parse(yaml)).toMatchObject({ script: "name: 1\nname: 2\n", quoted: "a, name: b, name: c" });
  expect(duplicateKeys(yaml, "yaml")).toEqual([]);
  const json = '{"a": {"name": "x"}, "b": [{"name": "y"}, {"name": "z"}], "c": "\\"name\\": 1, \\"name\\": 2"}';
  expect(duplicateKeys(json, "json")).toEqual([]);
});
