/** The NATS sink's config as a user writes it: defaults, errors with their paths, the default prefix. */
import { expect, test } from "bun:test";
import { ConfigError, resolveConfig } from "../host/config.ts";
import { defaultPrefix, PREFIX_PATTERN, subjectsFor } from "../protocol/subjects.ts";
import { builtins } from "../plugins/index.ts";

async function natsConfig(entry: Record<string, unknown>): Promise<Record<string, unknown>> {
  const config = await resolveConfig({ sinks: [{ type: "nats", ...entry }] }, { baseDir: "/", registry: builtins });
  return config.sinks[0]!.config as Record<string, unknown>;
}

async function issuesOf(entry: Record<string, unknown>): Promise<string[]> {
  const error = await natsConfig(entry).then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof ConfigError)) return [];
  return error.issues.map((i) => `${i.path}: ${i.message}`);
}

test("a server is all it needs; the rest has defaults", async () => {
  expect(await natsConfig({ servers: "nats://nats:4222" })).toEqual({
    servers: ["nats://nats:4222"],
    reconnect: { initial: 250, max: 10_000 },
    connectTimeout: 5_000,
    pingInterval: 20_000,
    batchSize: 500,
    cursorSaveInterval: 1_000,
    replay: { enabled: true, queue: "kubemeta", concurrency: 4 },
  });
});

test("mistakes are reported with their path", async () => {
  expect(await issuesOf({})).toEqual([expect.stringMatching(/^sinks\[0\]\.servers: Invalid key: Expected "servers"/)]);
  expect(await issuesOf({ servers: 4222 })).toEqual([expect.stringMatching(/^sinks\[0\]\.servers: list the NATS server URLs/)]);
  expect(await issuesOf({ servers: [] })).toEqual([expect.stringMatching(/^sinks\[0\]\.servers: list at least one server/)]);
  expect(await issuesOf({ servers: "nats://n", prefix: "kubemeta.*" })).toEqual([expect.stringMatching(/^sinks\[0\]\.prefix: dot-separated tokens/)]);
  expect(await issuesOf({ servers: "nats://n", token: "t", user: "u", password: "p" })).toEqual([expect.stringMatching(/use one of user, token/)]);
  expect(await issuesOf({ servers: "nats://n", user: "u" })).toEqual([expect.stringMatching(/user and password go together/)]);
  expect(await issuesOf({ servers: "nats://n", tls: { certFile: "/c.pem" } })).toEqual([expect.stringMatching(/^sinks\[0\]\.tls: tls.certFile and tls.keyFile go together/)]);
  expect(await issuesOf({ servers: "nats://n", reconect: {} })).toEqual([expect.stringMatching(/^sinks\[0\]\.reconect: /)]);
});

test("the default prefix keeps any cluster name one token", () => {
  expect(defaultPrefix("prod")).toBe("kubemeta.prod");
  expect(defaultPrefix("prod.eu-west-1")).toBe("kubemeta.prod_eu-west-1");
  expect(defaultPrefix("gke_my-project_europe-west1_main")).toBe("kubemeta.gke_my-project_europe-west1_main");
  expect(defaultPrefix("my cluster*>")).toBe("kubemeta.my_cluster__");
  for (const cluster of ["a.b.c", "ünïcode", " ", "x>y"]) expect(defaultPrefix(cluster)).toMatch(PREFIX_PATTERN);
  const subjects = subjectsFor("kubemeta.prod");
  expect([subjects.all, subjects.shared, subjects.replay, subjects.of("node/ip-10-0-1-23.ec2.internal"), subjects.of("node/Bad_Name")]).toEqual([
    "kubemeta.prod.all",
    "kubemeta.prod.shared",
    "kubemeta.prod.replay",
    "kubemeta.prod.node.ip-10-0-1-23_ec2_internal",
    undefined,
  ]);
});
