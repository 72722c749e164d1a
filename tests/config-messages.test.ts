/** What a config error says of a value out of bounds: kubemeta's words, for every key at once, plugins' keys too. */
import { expect, test } from "bun:test";
import { issuesOf } from "./config-issues.ts";

const nats = { type: "nats", servers: "nats://n" };

test("an empty string where a value belongs says `must not be empty`, at every such key, with the others", async () => {
  const issues = await issuesOf({
    cluster: { name: "" },
    http: { tls: { cert: "", key: "" } },
    ha: { identity: "", kubeconfig: "", context: "" },
    sources: [{ type: "kubernetes", kubeconfig: "", context: "" }],
    sinks: [
      { ...nats, user: "", password: "p", connectionName: "", tls: { caFile: "", certFile: "", keyFile: "" } },
      { ...nats, token: "" },
      { ...nats, nkeySeedFile: "" },
      { ...nats, credsFile: "" },
      { type: "jsonl", path: "" },
      { type: "webhook", url: "https://h/", secret: "0123456789abcdef", kinds: [""] },
    ],
  });
  const empty = [
    "cluster.name",
    "http.tls.cert",
    "http.tls.key",
    "ha.identity",
    "ha.kubeconfig",
    "ha.context",
    "sources[0].kubeconfig",
    "sources[0].context",
    "sinks[0].connectionName",
    "sinks[0].user",
    "sinks[0].tls.caFile",
    "sinks[0].tls.certFile",
    "sinks[0].tls.keyFile",
    "sinks[1].token",
    "sinks[2].nkeySeedFile",
    "sinks[3].credsFile",
    "sinks[4].path",
    "sinks[5].kinds[0]",
  ];
  // One line each: an empty path is not also a file not found.
  expect(issues).toEqual(empty.map((path) => `${path}: must not be empty`));
});

test("a number out of its range or not whole says the bound, not valibot's `Invalid value: Expected <=…`", async () => {
  expect(
    await issuesOf({
      http: { port: 99999 },
      store: { type: "libsql", retention: { maxUpdates: 1.5 } },
      sinks: [
        { type: "webhook", url: "https://h/", secret: "0123456789abcdef", maxRetries: -1 },
        { ...nats, batch: { size: 0 } },
      ],
    }),
  ).toEqual([
    "store.retention.maxUpdates: must be a whole number",
    "http.port: must be at most 65535",
    "sinks[0].maxRetries: must be at least 0",
    "sinks[1].batch.size: must be at least 1",
  ]);
  expect(await issuesOf({ http: { port: -1 } })).toEqual(["http.port: must be at least 0"]);
});

test("a message a schema gives its own check is kept", async () => {
  expect(await issuesOf({ sources: [{ type: "kubernetes", resources: [], parseThreads: 17 }] })).toEqual([
    "sources[0].resources: list at least one resource",
    "sources[0].parseThreads: parseThreads must be at most 16",
  ]);
});
