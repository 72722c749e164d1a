/** The NATS sink's config as a user writes it: defaults, errors with their paths, the default prefix, old keys. */
import { expect, test } from "bun:test";
import { ConfigError, resolveConfig } from "../host/config.ts";
import { createLogger } from "../host/logger.ts";
import { startTestHost, waitFor } from "../testing/index.ts";
import { defaultPrefix, NATS_SERVER_RULE, PREFIX_PATTERN, subjectsFor } from "../protocol/subjects.ts";
import { builtins } from "../plugins/index.ts";
import { join } from "node:path";
import { nkeys } from "@nats-io/transport-node";
import { testPki } from "../simulator/certs.ts";
import { tempDir } from "../testing/index.ts";
import { runMain } from "./reliability-process.ts";

async function natsConfig(entry: Record<string, unknown>): Promise<Record<string, unknown>> {
  const config = await resolveConfig({ sinks: [{ type: "nats", ...entry }] }, { baseDir: "/", registry: builtins });
  return config.sinks[0]!.config as Record<string, unknown>;
}

/** The config's issues, none if it resolves; anything else it throws (a crash) fails the test. */
async function issuesOf(entry: Record<string, unknown>): Promise<string[]> {
  try {
    await natsConfig(entry);
    return [];
  } catch (error) {
    if (error instanceof ConfigError) return error.issues.map((i) => `${i.path}: ${i.message}`);
    throw error;
  }
}

test("a server is all it needs; the rest has defaults", async () => {
  expect(await natsConfig({ servers: "nats://nats:4222" })).toEqual({
    servers: ["nats://nats:4222"],
    reconnect: { initial: 250, max: 10_000 },
    connectTimeout: 5_000,
    pingInterval: 20_000,
    batch: { size: 500, lingerMs: 0 },
    retry: { initialMs: 100, maxMs: 5_000 },
    stallAfter: 60_000,
    cursorSaveInterval: 1_000,
    replay: { enabled: true, queue: "kubemeta", concurrency: 4 },
  });
});

test("the old key batchSize still sets batch.size, with one warning at start naming the new key", async () => {
  expect(await natsConfig({ servers: "nats://nats:4222", batch: { size: 50, linger: "5ms" } })).toMatchObject({
    batch: { size: 50, lingerMs: 5 },
  });
  expect(await natsConfig({ servers: "nats://nats:4222", batchSize: 50 })).toMatchObject({
    batch: { size: 50, lingerMs: 0 },
  });
  expect(await issuesOf({ servers: "nats://n", batchSize: 0 })).toEqual([
    expect.stringMatching(/^sinks\[0\]\.batchSize: /),
  ]);
  // Both: which one was meant cannot be known, so neither is taken.
  expect(await issuesOf({ servers: "nats://n", batchSize: 50, batch: { size: 60 } })).toEqual([
    'sinks[0].batchSize: "batchSize" is the old name of "batch.size": write only "batch.size"',
  ]);
  expect(await natsConfig({ servers: "nats://n", batchSize: 50, batch: { linger: "5ms" } })).toMatchObject({
    batch: { size: 50, lingerMs: 5 },
  });

  const logged: Record<string, unknown>[] = [];
  const logger = createLogger({ write: (line) => void logged.push(JSON.parse(line) as Record<string, unknown>) });
  // Nothing listens there: the sink keeps trying to connect until the host stops.
  const th = await startTestHost({ logger, sinks: [{ type: "nats", servers: "nats://127.0.0.1:1", batchSize: 50 }] });
  await th.destroy();
  const warnings = logged.filter((line) => line.level === "warn" && String(line.msg).includes("deprecated"));
  expect(warnings.map((line) => [line.key, line.use])).toEqual([["batchSize", "batch.size"]]);
});

test("mistakes are reported with their path", async () => {
  expect(await issuesOf({})).toEqual(["sinks[0].servers: missing: this key is required"]);
  expect(await issuesOf({ servers: 4222 })).toEqual([
    expect.stringMatching(/^sinks\[0\]\.servers: list the NATS server URLs/),
  ]);
  expect(await issuesOf({ servers: [] })).toEqual([
    expect.stringMatching(/^sinks\[0\]\.servers: list at least one server/),
  ]);
  expect(await issuesOf({ servers: "nats://n", prefix: "kubemeta.*" })).toEqual([
    expect.stringMatching(/^sinks\[0\]\.prefix: dot-separated tokens/),
  ]);
  // Every NATS client's replies come to _INBOX.<id>, where no replay is answered (under the prefix): none would be.
  expect(await issuesOf({ servers: "nats://n", prefix: "_INBOX" })).toEqual([
    expect.stringMatching(/^sinks\[0\]\.prefix: _INBOX is where NATS clients take their replies/),
  ]);
  expect(await issuesOf({ servers: "nats://n", token: "t", user: "u", password: "p" })).toEqual([
    expect.stringMatching(/use one of user, token/),
  ]);
  expect(await issuesOf({ servers: "nats://n", user: "u" })).toEqual([
    expect.stringMatching(/user and password go together/),
  ]);
  expect(await issuesOf({ servers: "nats://n", tls: { certFile: "/c.pem" } })).toEqual([
    expect.stringMatching(/^sinks\[0\]\.tls: tls.certFile and tls.keyFile go together/),
  ]);
  expect(await issuesOf({ servers: "nats://n", reconect: {} })).toEqual([
    expect.stringMatching(/^sinks\[0\]\.reconect: /),
  ]);
  // A seed the client cannot sign with fails at --check, not at the first connection; the seed is not quoted.
  const badSeed = await issuesOf({ servers: "nats://n", nkeySeed: "SUAINVALIDSEEDSECRET3030" });
  expect(badSeed).toEqual([expect.stringMatching(/^sinks\[0\]\.nkeySeed: not an nkey seed/)]);
  expect(badSeed.join()).not.toContain("SUAINVALID");
});

test("a queue group NATS cannot take is refused (whitespace in a SUB line: the server drops it)", async () => {
  expect(await issuesOf({ servers: "nats://n", replay: { queue: "kubemeta.replay-responders_2" } })).toEqual([]);
  for (const queue of ["kube meta", "kubemeta\t", "", "kubemeta.*", "a..b", "ünï"])
    expect(await issuesOf({ servers: "nats://n", replay: { queue } })).toEqual([
      "sinks[0].replay.queue: a queue group name is dot-separated tokens of letters, digits, '_' and '-' " +
        "(no spaces or wildcards)",
    ]);
});

test("a server the NATS client could never reach (it would retry it for ever) is refused, naming it", async () => {
  expect(await issuesOf({ servers: ["nats://a:4222", "tls://b", "c:4222", "d", "nats://e:4222/"] })).toEqual([]);
  expect(await issuesOf({ servers: ["nats://n:4222", "not a url", "nats://n:port", "http://n:4222"] })).toEqual(
    ["not a url", "nats://n:port", "http://n:4222"].map(
      (bad, i) => `sinks[0].servers[${i + 1}]: "${bad}" is not a NATS server: expected ${NATS_SERVER_RULE}`,
    ),
  );
  expect(await issuesOf({ servers: "nats://n:4222/subject" })).toEqual([
    `sinks[0].servers: "nats://n:4222/subject" is not a NATS server: expected ${NATS_SERVER_RULE}`,
  ]);
});

test("credentials in the servers' URLs: the same in each that has some, or an error that shows none", async () => {
  expect(await issuesOf({ servers: ["nats://u:p@a:4222", "nats://b:4222", "nats://u:p@c:4222"] })).toEqual([]);
  const issues = await issuesOf({ servers: ["nats://u:secret-1@a:4222", "nats://u:secret-2@b:4222"] });
  expect(issues).toEqual([
    "sinks[0].servers: the servers' URLs carry different credentials: one connection fails over between them; " +
      "put them in user and password, or token, instead",
  ]);
});

test("kubemeta_nats_connected and _replay_subscribed are 0 while NATS was never reached, not missing", async () => {
  const th = await startTestHost({ sinks: [{ type: "nats", servers: "nats://127.0.0.1:1" }] });
  try {
    await waitFor(
      () => th.host.metrics.render().includes('kubemeta_nats_connect_failures_total{sink="nats"}'),
      10_000,
      "a failed connection attempt",
    );
    expect(th.host.metrics.render()).toContain('kubemeta_nats_connected{sink="nats"} 0');
    expect(th.host.metrics.render()).toContain('kubemeta_nats_replay_subscribed{sink="nats"} 0');
  } finally {
    await th.destroy();
  }
});

test("the default prefix keeps any cluster name one token", () => {
  expect(defaultPrefix("prod")).toBe("kubemeta.prod");
  expect(defaultPrefix("prod.eu-west-1")).toBe("kubemeta.prod_eu-west-1");
  expect(defaultPrefix("gke_my-project_europe-west1_main")).toBe("kubemeta.gke_my-project_europe-west1_main");
  expect(defaultPrefix("my cluster*>")).toBe("kubemeta.my_cluster__");
  // One `_` per character, not per UTF-16 unit: a client in another language follows the same rule.
  expect(defaultPrefix("a🚀b")).toBe("kubemeta.a_b");
  expect(defaultPrefix("日本")).toBe("kubemeta.__");
  for (const cluster of ["a.b.c", "ünïcode", " ", "x>y"]) expect(defaultPrefix(cluster)).toMatch(PREFIX_PATTERN);
  const subjects = subjectsFor("kubemeta.prod");
  expect([
    subjects.all,
    subjects.shared,
    subjects.replay,
    subjects.of("node/ip-10-0-1-23.ec2.internal"),
    subjects.of("node/Bad_Name"),
  ]).toEqual([
    "kubemeta.prod.all",
    "kubemeta.prod.shared",
    "kubemeta.prod.replay",
    "kubemeta.prod.node.ip-10-0-1-23_ec2_internal",
    undefined,
  ]);
});

test("--check reads the files the sink names: one missing, not a regular file, holding something else", async () => {
  const dir = await tempDir();
  const pki = await testPki();
  const seed = new TextDecoder().decode(nkeys.createUser().getSeed());
  const creds = "-----BEGIN NATS USER JWT-----\ne30\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n";
  await Bun.write(join(dir, "user.nk"), `${seed}\n`);
  await Bun.write(join(dir, "user.creds"), `${creds}${seed}\n------END USER NKEY SEED------\n`);
  const sink = (entry: string) => `sinks:\n  - { type: nats, servers: [nats://127.0.0.1:9], ${entry} }\n`;
  const check = async (entry: string) => {
    await Bun.write(join(dir, "kubemeta.yaml"), sink(entry));
    return runMain(["--check", "--config", "kubemeta.yaml"], { cwd: dir });
  };
  const tls = (ca: string, cert: string, key: string) => `tls: { caFile: ${ca}, certFile: ${cert}, keyFile: ${key} }`;
  // What a connection would read: all good.
  for (const good of [
    tls(pki.caFile, pki.clientCertFile, pki.clientKeyFile),
    "nkeySeedFile: user.nk",
    "credsFile: user.creds",
  ])
    expect(await check(good)).toMatchObject({ code: 0, stdout: "config is valid\n" });
  // A CA that is not there, the key where the certificate belongs and the other way round: said at once, each.
  const swapped = await check(tls(join(dir, "ca.crt"), pki.clientKeyFile, pki.clientCertFile));
  expect(swapped.code).toBe(1);
  expect(swapped.stderr).toBe(
    "invalid config:\n  sinks[0]: " +
      [
        `cannot read tls.caFile ${join(dir, "ca.crt")}: ENOENT`,
        `tls.certFile: ${pki.clientKeyFile} holds no PEM certificate`,
        `tls.keyFile: ${pki.clientCertFile} holds no PEM private key`,
      ].join("; ") +
      "\n",
  );
  // A seed file or a creds file holding something else; never quoted (each may hold a secret). A FIFO nobody writes
  // (whose read would never end) or a directory: said as what it is, never read.
  await Bun.write(join(dir, "wrong"), "secret-content\n");
  expect(Bun.spawnSync(["mkfifo", join(dir, "seed.fifo")]).exitCode).toBe(0);
  for (const [entry, said] of [
    ["nkeySeedFile: wrong", "nkeySeedFile: wrong holds no nkey seed (SU…)"],
    ["credsFile: wrong", "credsFile: wrong holds no NATS credentials (a user JWT and its seed)"],
    ["nkeySeedFile: seed.fifo", "nkeySeedFile seed.fifo is a FIFO, not a regular file"],
    ["credsFile: .", "credsFile . is a directory, not a regular file"],
  ] as const) {
    const result = await check(entry);
    expect({ code: result.code, stderr: result.stderr }).toEqual({
      code: 1,
      stderr: `invalid config:\n  sinks[0]: ${said}\n`,
    });
  }
}, 30_000);
