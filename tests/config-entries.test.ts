/**
 * A config's plugin entries as a whole: each name once, what only one entry may hold (a route, a plugin's own claim)
 * refused to a second, and their errors in the entries' order, as `--check` prints them: plugin modules load side by
 * side, and one that fails late (an import that is not found) is still said before the entries after it.
 */
import { expect, test } from "bun:test";
import { ConfigError, resolveConfig } from "../host/config.ts";
import { builtins } from "../plugins/index.ts";
import { defineSink, defineSource, deprecatedKey, type PolicyRule, v } from "../sdk/index.ts";
import { issuesOf } from "./config-issues.ts";

test("the entries' errors in the entries' order, whichever of their modules loads first", async () => {
  const error = await resolveConfig(
    {
      sources: [{ type: "./missing-source.ts" }, { type: "nope" }],
      sinks: [
        { type: "./missing-sink.ts", name: "a" },
        { type: "nope", name: "b" },
        { type: "jsonl", name: "c", stream: "nodes/x" },
      ],
    },
    { baseDir: import.meta.dir, registry: builtins },
  ).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(ConfigError);
  expect((error as ConfigError).issues.map((issue) => issue.path)).toEqual([
    "sources[0].type",
    "sources[1].type",
    "sinks[0].type",
    "sinks[1].type",
    "sinks[2].stream",
  ]);
});

test("two entries with one name are refused", async () => {
  const issues = await issuesOf({ sources: [{ type: "kubernetes" }, { type: "kubernetes" }] });
  expect(issues).toContainEqual(expect.stringMatching(/^sources\[1\]\.name: "kubernetes" is used twice/));
  // Said at once, beside what else is wrong with the second entry.
  expect(
    await issuesOf({
      sinks: [
        { type: "sse", name: "a" },
        { type: "nats", name: "a", servers: "nats://n", bogus: 1 },
      ],
    }),
  ).toEqual(["sinks[1].bogus: unknown key", 'sinks[1].name: "a" is used twice; give each entry its own name']);
});

test("what only one entry may hold is refused to a second: two sse sinks, a plugin's own claim", async () => {
  // The second sse sink's GET /v1/watch would be shadowed by the first's, its options never used.
  expect(
    await issuesOf({
      sinks: [
        { type: "sse", name: "a" },
        { type: "nats", servers: "nats://n" },
        { type: "sse", name: "b", maxStreams: 5 },
      ],
    }),
  ).toEqual(["sinks[2]: the route GET /v1/watch is claimed by sinks[0] already: a config holds one such entry"]);
  // Two NATS sinks may publish one log (JetStream drops the second copy: tests/nats-jetstream.test.ts).
  expect(
    await issuesOf({
      sinks: [
        { type: "nats", name: "a", servers: "nats://n" },
        { type: "nats", name: "b", servers: "nats://m" },
      ],
    }),
  ).toEqual([]);
  // Two jsonl sinks on one file (written two ways) would interleave their lines; on stdout they may both write.
  expect(
    await issuesOf({
      sinks: [
        { type: "jsonl", name: "a", path: "/var/log/kubemeta/updates.jsonl" },
        { type: "jsonl", name: "b", path: "/var/log/kubemeta/../kubemeta/updates.jsonl", stream: "shared" },
        { type: "jsonl", name: "c", path: "-" },
        { type: "jsonl", name: "d", path: "-" },
      ],
    }),
  ).toEqual([
    "sinks[1]: the file /var/log/kubemeta/updates.jsonl is claimed by sinks[0] already: " +
      "a config holds one such entry",
  ]);
  const fileSink = defineSink({
    type: "file",
    description: "a sink that owns the file it writes",
    schema: v.strictObject({ path: v.string() }),
    claims: ({ path }) => {
      if (path === "") throw new Error("no path");
      return [`the file ${path}`];
    },
    create: () => ({ async start() {}, async stop() {} }),
  });
  const registry = { ...builtins, sink: [...builtins.sink, fileSink] };
  const resolve = (sinks: unknown[]) => resolveConfig({ sinks }, { baseDir: "/", registry });
  await expect(
    resolve([
      { type: "file", name: "a", path: "x.log" },
      { type: "file", name: "b", path: "x.log" },
    ]),
  ).rejects.toThrow("sinks[1]: the file x.log is claimed by sinks[0] already: a config holds one such entry");
  expect(
    (
      await resolve([
        { type: "file", name: "a", path: "x.log" },
        { type: "file", name: "b", path: "y.log" },
      ])
    ).sinks,
  ).toHaveLength(2);
  // A plugin whose claims() throws is an error at its entry, not a crash of the whole check.
  await expect(resolve([{ type: "file", path: "" }])).rejects.toThrow(
    "sinks[0]: its plugin's claims() failed: no path",
  );
});

test("a plugin's claims() that returns no list of strings is an error at its entry, not a crash", async () => {
  // As a plugin in JavaScript, or one Bun runs unchecked, may write it: TypeScript would refuse each.
  const claiming = (type: string, claims: (path: string) => unknown) =>
    defineSink({
      type,
      description: "a sink whose claims() is wrong",
      schema: v.strictObject({ path: v.string() }),
      claims: ({ path }) => claims(path) as string[],
      create: () => ({ async start() {}, async stop() {} }),
    });
  const sinks = [
    claiming("async", async (path) => [`the file ${path}`]),
    claiming("string", (path) => `the file ${path}`),
    claiming("object", (path) => ({ file: path })),
    claiming("numbers", () => [1, 2]),
    claiming("throws", () => {
      throw { reason: "no such file" };
    }),
  ];
  const registry = { ...builtins, sink: [...builtins.sink, ...sinks] };
  const config = { sinks: sinks.map(({ type }) => ({ type, path: "x.log" })) };
  const error = await resolveConfig(config, { baseDir: "/", registry }).catch((e: unknown) => e);
  // Before the fix: a TypeError ({} is not iterable) out of the whole check; the string claimed letter by letter.
  expect(error).toBeInstanceOf(ConfigError);
  const said = (i: number, what: string) =>
    `sinks[${i}]: its plugin's claims() returned ${what}, not a list of strings`;
  expect((error as ConfigError).issues.map(({ path, message }) => `${path}: ${message}`)).toEqual([
    `${said(0, "a Promise")}: claims() says them at once (make it synchronous)`,
    said(1, 'the string "the file x.log"'),
    said(2, "an object"),
    said(3, "a list holding 1"),
    // What a plugin throws that is no Error, said as JSON as a check() that throws one is (tests/config-check).
    'sinks[4]: its plugin\'s claims() failed: {"reason":"no such file"}',
  ]);
});

test("a plugin's rbac() that returns no list of PolicyRules is an error at its entry, not a crash", async () => {
  const declaring = (type: string, rbac: () => unknown) =>
    defineSource({
      type,
      description: "a source whose rbac() is wrong",
      schema: v.strictObject({}),
      rbac: () => rbac() as PolicyRule[],
      create: () => ({ async start() {}, async stop() {} }),
    });
  const rule = { apiGroups: [""], resources: ["pods"], verbs: ["list", "watch"] };
  const sources = [
    declaring("async", async () => [rule]),
    declaring("single", () => rule),
    declaring("unlisted", () => [{ ...rule, verbs: "list" }]),
    declaring("fine", () => [rule]),
  ];
  const registry = { ...builtins, source: [...builtins.source, ...sources] };
  const config = { sources: sources.map(({ type }) => ({ type })) };
  const error = await resolveConfig(config, { baseDir: "/", registry }).catch((e: unknown) => e);
  // Before the fix: the config was valid, and `main.ts rbac` died in a TypeError (undefined is not iterable).
  expect(error).toBeInstanceOf(ConfigError);
  const said = (i: number, what: string) =>
    `sources[${i}]: its plugin's rbac() returned ${what}, not a list of PolicyRules ` +
    "({ apiGroups, resources, verbs }, each a list of strings)";
  expect((error as ConfigError).issues.map(({ path, message }) => `${path}: ${message}`)).toEqual([
    `${said(0, "a Promise")}: rbac() says them at once (make it synchronous)`,
    said(1, "an object"),
    said(2, `a list holding ${JSON.stringify({ ...rule, verbs: "list" })}`),
  ]);
});

test("a misspelt type, name or store retention gets the did-you-mean of any other key", async () => {
  expect(
    await issuesOf({
      store: { type: "libsql", retenton: {} },
      sources: [{ type: "kubernetes", nmae: "a" }],
      sinks: [{ type: "sse", Name: "b" }, { tpye: "sse" }, { type: "nats", servers: "nats://n", tyep: "x" }],
    }),
  ).toEqual([
    "sinks[1].type: missing: this key is required",
    'sinks[1].tpye: unknown key; did you mean "type"?',
    'store.retenton: unknown key; did you mean "retention"?',
    'sources[0].nmae: unknown key; did you mean "name"?',
    'sinks[0].Name: unknown key; did you mean "name"?',
    'sinks[2].tyep: unknown key; did you mean "type"?',
  ]);
});

test("a typo near a deprecated key is pointed at the key that replaced it, never at the old one", async () => {
  const webhook = { type: "webhook", url: "http://127.0.0.1:9/", secret: "s3cr3t-of-32-bytes-at-least-0123456789" };
  expect(
    await issuesOf({
      sinks: [
        { ...webhook, name: "a", lingr: "1s", batchsize: 5, backof: {} },
        { ...webhook, name: "b", backoff: { inital: "1s" } },
        { type: "nats", servers: "nats://n", batchSiz: 5 },
      ],
    }),
  ).toEqual([
    'sinks[0].lingr: unknown key; did you mean "batch.linger"?',
    'sinks[0].batchsize: unknown key; did you mean "batch.size"?',
    'sinks[0].backof: unknown key; did you mean "retry"?',
    'sinks[1].backoff.inital: unknown key; did you mean "retry.initial"?',
    'sinks[2].batchSiz: unknown key; did you mean "batch.size"?',
  ]);
  // A current key as near as a deprecated one wins, whichever the schema lists first.
  const sizes = defineSink({
    type: "sizes",
    description: "a sink with a deprecated key listed before a current one",
    schema: v.strictObject({ sizes: deprecatedKey(v.number(), "batch.size"), size: v.optional(v.number()) }),
    create: () => ({ start: async () => {}, stop: async () => {} }),
  });
  const registry = { ...builtins, sink: [...builtins.sink, sizes] };
  const error = await resolveConfig({ sinks: [{ type: "sizes", sizs: 1 }] }, { baseDir: "/", registry }).catch(
    (e: unknown) => e,
  );
  expect((error as ConfigError).issues).toEqual([
    { path: "sinks[0].sizs", message: 'unknown key; did you mean "size"?' },
  ]);
});

test("one watch in two kubernetes sources is refused to the second; another scope is another watch", async () => {
  // The same resource and scope, however written: watched twice, every change applied twice.
  expect(
    await issuesOf({
      sources: [
        { type: "kubernetes", name: "a", resources: ["pods", "nodes"], namespace: "web" },
        { type: "kubernetes", name: "b", resources: ["v1/pods"], namespace: "web" },
        // nodes are cluster-scoped: watched cluster-wide whatever the namespace.
        { type: "kubernetes", name: "c", resources: ["nodes"], namespace: "other" },
        { type: "kubernetes", name: "d", resources: ["example.com/v1/widgets"], labelSelector: "tier=web" },
        { type: "kubernetes", name: "e", resources: ["example.com/v1/widgets"], labelSelector: "tier=web" },
      ],
    }),
  ).toEqual([
    "sources[1]: the watch kubernetes/core/v1/pods?namespace=web is claimed by sources[0] already: " +
      "a config holds one such entry",
    "sources[2]: the watch kubernetes/core/v1/nodes is claimed by sources[0] already: a config holds one such entry",
    "sources[4]: the watch kubernetes/example.com/v1/widgets?labelSelector=tier%3Dweb is claimed by sources[3] " +
      "already: a config holds one such entry",
  ]);
  // Other namespaces or selectors: other watches (one kind in both is the kind's claim at run time: Known limits).
  expect(
    await issuesOf({
      sources: [
        { type: "kubernetes", name: "a", resources: ["pods"], namespace: "web" },
        { type: "kubernetes", name: "b", resources: ["pods"], namespace: "api" },
        { type: "kubernetes", name: "c", resources: ["pods"], labelSelector: "tier=web" },
      ],
    }),
  ).toEqual([]);
});

test("an entry whose many claims one earlier entry holds is one issue: two sources of the defaults", async () => {
  expect(
    await issuesOf({
      sources: [
        { type: "kubernetes", name: "a" },
        { type: "kubernetes", name: "b" },
      ],
    }),
  ).toEqual([
    "sources[1]: the watch kubernetes/core/v1/pods and 10 more of its claims are claimed by sources[0] already: " +
      "a config holds one such entry",
  ]);
});
