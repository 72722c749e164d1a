/**
 * The webhook sink's config as a user writes it: the standard batch and retry keys with their defaults, the headers
 * HTTP can carry, and the old keys of earlier configs (each warned about once, refused beside its new one).
 */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { type ConfigError, resolveConfig } from "../host/config.ts";
import { createLogger } from "../host/logger.ts";
import { builtins } from "../plugins/index.ts";
import { rawPod, startTestHost, tempDir, waitFor } from "../testing/index.ts";
import { deduplicated, SECRET, startReceiver, hostAndReceiverPerTest } from "./webhook-receiver.ts";
import { runMain } from "./reliability-process.ts";

const run = hostAndReceiverPerTest();

async function webhookConfig(entry: Record<string, unknown>): Promise<Record<string, unknown>> {
  const config = await resolveConfig(
    { sinks: [{ type: "webhook", url: "https://receiver.example.com/", secret: "0123456789abcdef", ...entry }] },
    { baseDir: "/", registry: builtins },
  );
  return config.sinks[0]!.config as Record<string, unknown>;
}

test("batch.size, batch.linger, retry.initial and retry.max configure the sink, with their defaults", async () => {
  expect(await webhookConfig({})).toMatchObject({
    batch: { size: 100, lingerMs: 500 },
    retry: { initialMs: 1_000, maxMs: 300_000 },
  });
  expect(
    await webhookConfig({ batch: { size: 7, linger: "30ms" }, retry: { initial: "20ms", max: "2m" } }),
  ).toMatchObject({
    batch: { size: 7, lingerMs: 30 },
    retry: { initialMs: 20, maxMs: 120_000 },
  });
  await expect(webhookConfig({ batch: { size: 10_001 } })).rejects.toThrow(/^sinks\[0\]\.batch\.size: /);
});

test("kinds and namespaces no object can have (a resource's name, a name no namespace has) are refused", async () => {
  const issues = async (entry: Record<string, unknown>) =>
    webhookConfig(entry).then(
      () => [],
      (error: ConfigError) => error.issues.map((issue) => `${issue.path}: ${issue.message}`),
    );
  // Was: accepted, so the webhook sent nothing at all (no envelope's kind is "pods"), and said nothing.
  expect(await issues({ kinds: ["Pod", "pods"], namespaces: ["payments", "Payments", ""] })).toEqual([
    "sinks[0].kinds[1]: must be an API kind such as Pod or Rollout (not a resource such as pods)",
    "sinks[0].namespaces[1]: must be a namespace's name (a DNS-1123 label: lowercase letters, digits and '-', at " +
      "most 63), such as payments",
    "sinks[0].namespaces[2]: must not be empty",
  ]);
  expect(await issues({ kinds: ["Pod", "VirtualMachineInstance"], namespaces: ["kube-system", "a1"] })).toEqual([]);
  // A built-in kind in another case matches no envelope either: the kind to write is named.
  expect(await issues({ kinds: ["HttpRoute", "Rollout", "configmap"] })).toEqual([
    "sinks[0].kinds[0]: must be written HTTPRoute: a kind is case-sensitive",
    "sinks[0].kinds[2]: must be written ConfigMap: a kind is case-sensitive",
  ]);
});

test("headers: a name or value HTTP cannot carry, or a header kubemeta writes itself, is refused", async () => {
  const issues = async (headers: Record<string, string>) =>
    webhookConfig({ headers }).then(
      () => [],
      (error: ConfigError) => error.issues.map((issue) => issue.message),
    );
  expect(await issues({ "Bad Header": "v" })).toEqual(["a header name is letters, digits and !#$%&'*+-.^_`|~"]);
  expect(await issues({ "X-Ok": "a\r\nX-Injected: 1" })).toEqual(["a header value is one line of visible characters"]);
  expect(await issues({ Authorization: "a", authorization: "b" })).toEqual([
    "a header is named twice (names are case-insensitive)",
  ]);
  for (const own of ["Content-Type", "content-length", "Content-Encoding", "Host", "Expect", "X-Kubemeta-Signature"])
    expect(await issues({ [own]: "v" })).toEqual(["kubemeta sets this header itself"]);
  expect(await issues({ Authorization: "Bearer t", "User-Agent": "mine", "X-Tenant": "é" })).toEqual([]);
});

test(
  "the old keys batchSize, linger and backoff still work, " +
    "each with one warning at start naming the key that replaces it",
  async () => {
    const old = { batchSize: 2, linger: "20ms", backoff: { initial: "10ms", max: "2m" } };
    expect(await webhookConfig(old)).toMatchObject({
      batch: { size: 2, lingerMs: 20 },
      retry: { initialMs: 10, maxMs: 120_000 },
    });
    expect(await webhookConfig({ backoff: { max: "2m" } })).toMatchObject({
      retry: { initialMs: 1_000, maxMs: 120_000 },
    });
    // An old key beside its new one is refused, once for a section (`backoff` beside `retry`).
    const both = { linger: "20ms", batch: { linger: "30ms" }, backoff: { initial: "1s" }, retry: { initial: "2s" } };
    await expect(webhookConfig(both)).rejects.toThrow(
      'sinks[0].linger: "linger" is the old name of "batch.linger": write only "batch.linger"\n' +
        'sinks[0].backoff: "backoff" is the old name of "retry": write only "retry"',
    );

    run.receiver = await startReceiver();
    const logged: Record<string, unknown>[] = [];
    const logger = createLogger({ write: (line) => void logged.push(JSON.parse(line) as Record<string, unknown>) });
    run.host = await startTestHost({
      logger,
      sinks: [{ type: "webhook", url: run.receiver.url, secret: SECRET, timeout: "2s", ...old }],
    });
    for (let i = 0; i < 5; i++) run.host.changes.apply("pods", "ADDED", rawPod(`web-${i}`, { node: "n1" }));
    await waitFor(() => deduplicated(run.receiver!.accepted()).length === 5, 5_000, "five updates");
    expect(run.receiver.requests.every((r) => r.body.updates.length <= 2)).toBe(true);
    const warnings = logged.filter((line) => line.level === "warn" && String(line.msg).includes("deprecated"));
    expect(warnings.map((line) => [line.key, line.use])).toEqual([
      ["batchSize", "batch.size"],
      ["linger", "batch.linger"],
      ["backoff.initial", "retry.initial"],
      ["backoff.max", "retry.max"],
    ]);
    expect(warnings[0]!.msg).toBe(
      'config key "batchSize" is deprecated and will be removed; write "batch.size" instead',
    );
  },
);

test("a secret under 16 characters is refused by --check and a start, from a variable too, unquoted", async () => {
  const dir = await tempDir();
  const config = join(dir, "kubemeta.yaml");
  const short = "hook-s3cr3t-15c";
  await Bun.write(
    config,
    [
      "http: { address: 127.0.0.1, port: 0 }",
      "sinks:",
      `  - { type: webhook, name: written, url: "http://127.0.0.1:9/", secret: ${short} }`,
      '  - { type: webhook, name: variable, url: "http://127.0.0.1:9/", secret: "${WEBHOOK_SECRET}" }',
      '  - { type: webhook, name: long-enough, url: "http://127.0.0.1:9/", secret: "0123456789abcdef" }',
    ].join("\n"),
  );
  const refused =
    "must be at least 16 characters, as an http token: a short key is guessed from one signed request; use a long " +
    "random value (openssl rand -hex 32)";
  const env = { WEBHOOK_SECRET: short };
  for (const args of [["--check"], []]) {
    const result = await runMain([...args, "--config", config], { cwd: dir, env });
    expect({ args, ...result }).toEqual({
      args,
      code: 1,
      stdout: "",
      stderr: `invalid config:\n  sinks[0].secret: ${refused}\n  sinks[1].secret: ${refused}\n`,
    });
  }
});
