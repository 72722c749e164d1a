/**
 * Deprecated config keys: `--check` warns of each the config writes, valid or not, with the words a start logs; a start
 * logs the same ones, once each. And keys users guess (guessedKeys): refused with the key to write instead.
 */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { createLogger } from "../host/logger.ts";
import { startTestHost, tempDir } from "../testing/index.ts";
import { runMain } from "./reliability-process.ts";

async function check(yaml: string) {
  const dir = await tempDir();
  await Bun.write(join(dir, "kubemeta.yaml"), yaml);
  // The check creates the default store, ./data/kubemeta.db: in the temp dir, not in the repository.
  return runMain(["--check", "--config", join(dir, "kubemeta.yaml")], { cwd: dir });
}

const WEBHOOK = "type: webhook, url: 'http://127.0.0.1:9/', secret: s3cr3t-of-32-bytes-at-least-0123456789";

const warning = (at: string, key: string, use: string) =>
  `kubemeta: warning: ${at}: config key "${key}" is deprecated and will be removed; write "${use}" instead`;

test("deprecated keys are warned of as a start warns, on stderr, and the config is still valid", async () => {
  const result = await check(
    [
      "sinks:",
      `  - { ${WEBHOOK}, linger: 1s,`,
      "      backoff: { initial: 1s, max: 2m } }",
      "  - { type: nats, servers: ['nats://127.0.0.1:4222'], batchSize: 10 }",
      "http: { address: 127.0.0.1 }",
    ].join("\n"),
  );
  expect(result).toMatchObject({ code: 0, stdout: "config is valid\n" });
  expect(result.stderr.trimEnd().split("\n")).toEqual([
    warning("sinks[0]", "linger", "batch.linger"),
    warning("sinks[0]", "backoff.initial", "retry.initial"),
    warning("sinks[0]", "backoff.max", "retry.max"),
    warning("sinks[1]", "batchSize", "batch.size"),
    "kubemeta: warning: no sources: nothing is watched",
  ]);
});

test("a config invalid for other reasons is warned of its deprecated keys too, beside its errors", async () => {
  const result = await check(
    [
      "http: { prot: 1 }",
      "sinks:",
      `  - { ${WEBHOOK}, linger: 1s, timeout: never }`,
      "  - { type: nats, servers: ['nats://127.0.0.1:4222'], batchSize: 0 }",
    ].join("\n"),
  );
  expect({ code: result.code, stdout: result.stdout }).toEqual({ code: 1, stdout: "" });
  expect(result.stderr.trimEnd().split("\n")).toEqual([
    warning("sinks[0]", "linger", "batch.linger"),
    warning("sinks[1]", "batchSize", "batch.size"),
    "invalid config:",
    '  http.prot: unknown key; did you mean "port"?',
    expect.stringMatching(/^ {2}sinks\[0\]\.timeout: expected a duration/),
    expect.stringMatching(/^ {2}sinks\[1\]\.batchSize: /),
  ]);
});

test("a start logs what --check warns of, `backoff: {}` alone included (its defaults are the new key's)", async () => {
  const webhook = { type: "webhook", url: "http://127.0.0.1:9/", secret: "s3cr3t-of-32-bytes-at-least-0123456789" };
  const checked = await check(
    `sinks:\n  - { ${WEBHOOK}, backoff: {} }\nsources: [{ type: kubernetes }]\nhttp: { address: 127.0.0.1 }\n`,
  );
  expect(checked).toMatchObject({ code: 0, stderr: `${warning("sinks[0]", "backoff", "retry")}\n` });

  const logged: Record<string, unknown>[] = [];
  const logger = createLogger({ write: (line) => void logged.push(JSON.parse(line) as Record<string, unknown>) });
  const host = await startTestHost({ logger, sinks: [{ ...webhook, backoff: {} }] });
  await host.destroy();
  const warnings = logged.filter((line) => line.level === "warn" && String(line.msg).includes("deprecated"));
  expect(warnings).toEqual([
    expect.objectContaining({
      msg: 'config key "backoff" is deprecated and will be removed; write "retry" instead',
      sink: "webhook",
      key: "backoff",
      use: "retry",
    }),
  ]);
});

test("a plugin that warned of its deprecated keys itself (alias, warnDeprecated) loads and warns once", async () => {
  const dir = await tempDir();
  const sdk = join(import.meta.dir, "../sdk/index.ts");
  await Bun.write(
    join(dir, "old-style.ts"),
    `import { alias, defineSink, deprecatedKey, v, warnDeprecated, type DeprecatedKey } from ${JSON.stringify(sdk)};
const schema = v.pipe(
  v.strictObject({ size: v.optional(v.number(), 1), count: deprecatedKey(v.number(), "size") }),
  v.transform(({ count, ...config }) => {
    const used: DeprecatedKey[] = [];
    return { size: alias(count, config.size, { key: "count", use: "size" }, used), used };
  }),
);
export default defineSink({
  type: "old-style",
  description: "A sink that warns of its deprecated keys itself.",
  schema,
  example: {},
  create(config, ctx) {
    warnDeprecated(ctx.logger, config.used);
    return { async start() {}, async stop() {} };
  },
});
`,
  );
  const logged: Record<string, unknown>[] = [];
  const logger = createLogger({ write: (line) => void logged.push(JSON.parse(line) as Record<string, unknown>) });
  const host = await startTestHost({ dir, logger, sinks: [{ type: "./old-style.ts", count: 3 }] });
  await host.destroy();
  const warnings = logged.filter((line) => line.level === "warn" && String(line.msg).includes("deprecated"));
  expect(warnings).toEqual([expect.objectContaining({ sink: "old-style", key: "count", use: "size" })]);
});

test("a key users guess for the store's file (`file`, `path`) says the url to write; a typo, its key", async () => {
  const hint = 'unknown key; did you mean "url"? a file store is url: file:<path>';
  for (const [key, message] of [
    ["file", hint],
    ["Path", hint],
    ["ur", 'unknown key; did you mean "url"?'],
  ]) {
    const result = await check(`store: { type: libsql, ${key}: ./x.db }\n`);
    expect(result).toMatchObject({ code: 1, stdout: "", stderr: `invalid config:\n  store.${key}: ${message}\n` });
  }
}, 20_000);
