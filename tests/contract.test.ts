/**
 * The plugin contract (kubemeta/testing's checkPluginContract, testing/contract.ts), checked on every built-in plugin
 * registered in plugins/index.ts, and the helper's sentences for a plugin that breaks it:
 * its example config validates; stop without start is safe; start settles (it works, or
 * fails with an Error when its service is missing: no plugin may hang there); start twice,
 * then stop twice, is safe, a store's first stop as a shutdown makes it (stopping(deadline), then stop(deadline)).
 *
 * Plugins run with the config a user gets by default (`{}`) when that validates, else
 * with their example. They run away from this machine's state: working directory and
 * HOME in a temp dir (relative files land there), no KUBECONFIG, no in-cluster account.
 * So a plugin that needs a service (a cluster, a NATS server) finds none on loopback and
 * must fail or retry cleanly, and still stop.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { rm } from "node:fs/promises";
import * as v from "valibot";
import { defineSink, defineStore, type AnyDeclaration, type Store } from "../sdk/contract.ts";
import { duration } from "../sdk/schema.ts";
import { ConfigError, resolveConfig } from "../host/config.ts";
import { builtins } from "../plugins/index.ts";
import libsql from "../plugins/stores/libsql.ts";
import { checkPluginContract, startTestHost, tempDir, type TestHost } from "../testing/index.ts";

const SETTLE_MS = 5_000;
const ISOLATED_ENV = ["HOME", "KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"] as const;

let host: TestHost;
let sandbox: string;
let savedCwd: string;
const savedEnv: Record<string, string | undefined> = {};

beforeAll(async () => {
  host = await startTestHost();
  sandbox = await tempDir("kubemeta-contract-");
  savedCwd = process.cwd();
  for (const name of ISOLATED_ENV) savedEnv[name] = process.env[name];
  for (const name of ISOLATED_ENV) delete process.env[name];
  process.env.HOME = sandbox;
  process.chdir(sandbox);
});

afterAll(async () => {
  process.chdir(savedCwd);
  for (const name of ISOLATED_ENV) {
    if (savedEnv[name] === undefined) delete process.env[name];
    else process.env[name] = savedEnv[name];
  }
  await host.destroy();
  await rm(sandbox, { recursive: true, force: true });
});

const declarations: AnyDeclaration[] = [...builtins.store, ...builtins.source, ...builtins.sink];

test("every built-in has a type unique within its kind and a description", () => {
  for (const kind of ["store", "source", "sink"] as const) {
    const types = builtins[kind].map((d) => d.type);
    expect(new Set(types).size).toBe(types.length);
  }
  for (const d of declarations) expect(d.description.length).toBeGreaterThan(10);
});

describe.each(declarations.map((d) => [`${d.kind} ${d.type}`, d] as const))("%s", (_name, declaration) => {
  test(
    "keeps the contract: kubemeta/testing's checkPluginContract finds nothing broken",
    async () => expect(await checkPluginContract(declaration, { host, settleMs: SETTLE_MS })).toEqual([]),
    6 * SETTLE_MS,
  );
});

/** A sink whose lifecycle is `lifecycle`'s: each step a plugin author might get wrong. */
function sinkWith(lifecycle: { start(): Promise<void>; stop(): Promise<void> }): AnyDeclaration {
  return defineSink({
    type: "broken",
    description: "Breaks the plugin contract on purpose.",
    schema: v.strictObject({ file: v.pipe(v.string(), v.minLength(2, "too short")) }),
    example: { file: "x" },
    create: () => lifecycle,
  });
}

test("checkPluginContract says each step a plugin breaks, in a sentence", async () => {
  const hangs = new Promise<void>(() => {});
  const broken = sinkWith({ start: () => hangs, stop: () => Promise.reject("no Error") });
  expect(await checkPluginContract(broken, { host, config: { file: "xx" }, settleMs: 100 })).toEqual([
    "its example config does not validate: file: too short",
    "stop without start, the first time, rejected: no Error",
    "stop without start, the second time, rejected: no Error",
    "start did not settle within 100 ms",
    "stop after start, the first time, rejected: no Error",
    "stop after start, the second time, rejected: no Error",
  ]);
  const refusing = sinkWith({ start: () => Promise.reject("down"), stop: async () => {} });
  expect(await checkPluginContract(refusing, { host, config: { file: "xx" } })).toEqual([
    "its example config does not validate: file: too short",
    "start rejected with something other than an Error: down",
  ]);
});

/** The libSQL store with a `stopping` hook of `broken`'s making, given the store it would be part of. */
const storeStopping = (broken: (store: Store) => Store["stopping"]) =>
  defineStore({
    ...libsql,
    type: "broken-stopping",
    create: (config, ctx) => {
      const store = libsql.create(config, ctx);
      return Object.assign(store, { stopping: broken(store) });
    },
  });

test("checkPluginContract stops a store as a shutdown does, and says a stopping() that breaks it", async () => {
  const config = { url: `file:${sandbox}/broken-stopping.db` };
  const throws = storeStopping(() => () => {
    throw new Error("no deadline here");
  });
  const hangs = storeStopping(() => () => new Promise<never>(() => {}) as never);
  let stop: Store["stop"] = async () => {};
  const stopHangs = storeStopping((store) => {
    stop = store.stop.bind(store);
    let stalled = false;
    store.stop = (deadline) => (stalled ? new Promise(() => {}) : stop(deadline));
    return () => {
      stalled = true;
    };
  });
  const check = (declaration: AnyDeclaration) => checkPluginContract(declaration, { host, config, settleMs: 300 });
  expect(await check(throws)).toEqual(["stopping(deadline), as a shutdown begins, threw: Error: no deadline here"]);
  expect(await check(hangs)).toEqual(["stopping(deadline) did not settle by its deadline (300 ms)"]);
  expect(await check(stopHangs)).toEqual([
    "stopping(deadline) then stop(deadline), as a shutdown, did not settle by its deadline (300 ms)",
    "stop after start, the second time, did not settle (pending)",
  ]);
  await stop();
});

test("checkPluginContract takes and refuses a config as the host does, and says why in the host's words", async () => {
  const created: unknown[] = [];
  const sink = defineSink({
    type: "counting",
    description: "Keeps the config it is created with.",
    schema: v.strictObject({
      size: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1)), 10),
      every: v.optional(duration, "1s"),
      url: v.optional(v.string()),
    }),
    create: (config) => {
      created.push(config);
      return { async start() {}, async stop() {} };
    },
  });
  const registry = { ...builtins, sink: [...builtins.sink, sink] };
  process.env.CONTRACT_TEST_URL = "http://127.0.0.1:9/x";
  try {
    // A number in a string, as YAML or a variable gives it; a duration; a variable.
    const taken = { size: "100", every: "30s", url: "${CONTRACT_TEST_URL}" };
    expect(await checkPluginContract(sink, { host, config: taken })).toEqual([]);
    const config = { size: 100, every: 30_000, url: "http://127.0.0.1:9/x" };
    expect(created.at(-1)).toEqual(config);
    const resolved = await resolveConfig({ sinks: [{ type: "counting", ...taken }] }, { baseDir: sandbox, registry });
    expect(resolved.sinks[0]?.config).toEqual(config);
  } finally {
    delete process.env.CONTRACT_TEST_URL;
  }
  const refused = { size: 0, every: "soon", colour: "red" };
  const error = await resolveConfig(
    { sinks: [{ type: "counting", ...refused }] },
    { baseDir: sandbox, registry },
  ).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(ConfigError);
  const hostSays = (error as ConfigError).issues.map(
    ({ path, message }) => `${path.slice("sinks[0].".length)}: ${message}`,
  );
  expect(hostSays.length).toBe(3);
  expect(await checkPluginContract(sink, { host, config: refused })).toEqual([
    `the config it runs with does not validate: ${hostSays.join("; ")}`,
  ]);
});
