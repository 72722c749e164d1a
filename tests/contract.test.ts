/**
 * The plugin contract, checked on every built-in plugin registered in plugins/index.ts:
 * its example config validates; stop without start is safe; start settles (it works, or
 * fails with an Error when its service is missing: no plugin may hang there); start twice,
 * then stop twice, is safe.
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
import type { AnyDeclaration, PluginContext } from "../sdk/contract.ts";
import { silentLogger } from "../host/logger.ts";
import { createMetrics } from "../host/metrics.ts";
import { builtins } from "../plugins/index.ts";
import { startTestHost, tempDir, type TestHost } from "../testing/index.ts";

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

type Settled = { state: "resolved" } | { state: "rejected"; error: unknown } | { state: "pending" };

async function settle(work: () => Promise<unknown>, ms = SETTLE_MS): Promise<Settled> {
  let timer: Timer | undefined;
  const pending = new Promise<Settled>((resolve) => (timer = setTimeout(resolve, ms, { state: "pending" })));
  const outcome = Promise.resolve()
    .then(work)
    .then(
      (): Settled => ({ state: "resolved" }),
      (error: unknown): Settled => ({ state: "rejected", error }),
    );
  return Promise.race([outcome, pending]).finally(() => clearTimeout(timer));
}

/** The config the lifecycle runs with: the defaults when `{}` validates, else the example. */
function lifecycleConfig(declaration: AnyDeclaration): unknown {
  const defaults = v.safeParse(declaration.schema, {});
  return defaults.success ? defaults.output : v.parse(declaration.schema, declaration.example);
}

/** A real context for the plugin's kind: the test host's pipeline, log and HTTP app. */
function instantiate(declaration: AnyDeclaration) {
  const base: PluginContext = {
    name: `contract-${declaration.type}`,
    cluster: "contract",
    logger: silentLogger,
    metrics: createMetrics(),
  };
  const config = lifecycleConfig(declaration);
  switch (declaration.kind) {
    case "store":
      return declaration.create(config, base);
    case "source":
      return declaration.create(config, { ...base, changes: host.changes, synced() {}, waiting() {} });
    case "sink": {
      let cursor: number | undefined;
      const cursorStore = {
        load: async () => cursor,
        save: async (version: number) => {
          cursor = version;
        },
      };
      return declaration.create(config, { ...base, log: host.host.log, http: host.host.http.app, cursor: cursorStore });
    }
  }
}

const declarations: AnyDeclaration[] = [...builtins.store, ...builtins.source, ...builtins.sink];

test("every built-in has a type unique within its kind and a description", () => {
  for (const kind of ["store", "source", "sink"] as const) {
    const types = builtins[kind].map((d) => d.type);
    expect(new Set(types).size).toBe(types.length);
  }
  for (const d of declarations) expect(d.description.length).toBeGreaterThan(10);
});

describe.each(declarations.map((d) => [`${d.kind} ${d.type}`, d] as const))("%s", (_name, declaration) => {
  test("its example config (or {}) validates", () => {
    const result = v.safeParse(declaration.schema, declaration.example ?? {});
    expect(result.issues ?? []).toEqual([]);
  });

  test("stop without start is safe, twice", async () => {
    const plugin = instantiate(declaration);
    expect(await settle(() => plugin.stop())).toEqual({ state: "resolved" });
    expect(await settle(() => plugin.stop())).toEqual({ state: "resolved" });
  });

  test(
    "start settles (works, or fails with an Error); start twice, then stop twice, is safe",
    async () => {
      const plugin = instantiate(declaration);
      const first = await settle(() => plugin.start());
      expect(first.state).not.toBe("pending");
      if (first.state === "rejected") expect(first.error).toBeInstanceOf(Error);
      else expect((await settle(() => plugin.start())).state).toBe("resolved");
      expect(await settle(() => plugin.stop())).toEqual({ state: "resolved" });
      expect(await settle(() => plugin.stop())).toEqual({ state: "resolved" });
    },
    4 * SETTLE_MS,
  );
});
