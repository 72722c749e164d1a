/**
 * `checkPluginContract`: a plugin run through the steps every built-in passes (tests/contract.test.ts), as README's
 * "Test it" asks of a plugin's author. It asserts nothing itself: it says what broke, for any test runner to check.
 */
import type { AnyDeclaration, PluginContext, Store } from "../sdk/contract.ts";
import { interpolateConfig } from "../host/config-interpolate.ts";
import { parseAll, type ConfigIssue } from "../host/config-issues.ts";
import { silentLogger } from "../host/logger.ts";
import { createMetrics } from "../host/metrics.ts";
import type { TestHost } from "./index.ts";

export interface PluginContractOptions {
  /** The host whose pipeline (a source's), log and HTTP app (a sink's) the plugin is given: startTestHost's. */
  host: TestHost;
  /**
   * The config each instance is created with, as a config file's entry says it: validated as the host validates an
   * entry (`${VAR}` from the environment, a number or boolean written as a string read as one, the host's words for
   * what is wrong), its defaults filled in. Default: `{}` when the schema takes it, else the `example`.
   */
  config?: unknown;
  /** How long a start or a stop may take before it counts as hanging. Default: 5 s. */
  settleMs?: number;
}

type Settled = { state: "resolved" } | { state: "rejected"; error: unknown } | { state: "pending" };

/** How `work` ended within `ms`: a plugin's start or stop that never settles is a broken contract, not a hung test. */
export async function settle(work: () => Promise<unknown>, ms: number): Promise<Settled> {
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

/** A new instance of the plugin, with a real context for its kind: the host's pipeline, log and HTTP app. */
function instantiate(declaration: AnyDeclaration, config: unknown, host: TestHost) {
  const base: PluginContext = {
    name: `contract-${declaration.type}`,
    cluster: "contract",
    logger: silentLogger,
    metrics: createMetrics(),
  };
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

/**
 * `input` validated by `schema` as the host validates a config file's entry (config.ts): its variables replaced, when
 * `withVariables` (an example keeps its `${WEBHOOK_SECRET}` as written: it shows what a user writes), then parsed as
 * parseAll does. Either the config the plugin would be given, or what `--check` would say of it.
 */
function validate(
  schema: AnyDeclaration["schema"],
  input: unknown,
  withVariables: boolean,
): { config: unknown } | { problems: string } {
  const issues: ConfigIssue[] = [];
  const { interpolated, asWritten } = withVariables
    ? interpolateConfig(input, process.env, issues)
    : { interpolated: input, asWritten: (issue: ConfigIssue) => issue };
  const own = issues.length;
  const config = own === 0 ? parseAll(schema, interpolated, "", issues) : undefined;
  if (issues.length === 0) return { config };
  const said = issues.map((issue, i) => (i < own ? issue : asWritten(issue)));
  return { problems: said.map(({ path, message }) => (path ? `${path}: ${message}` : message)).join("; ") };
}

const said = (settled: Settled) =>
  settled.state === "rejected" ? `rejected: ${String(settled.error)}` : `did not settle (${settled.state})`;

/**
 * A started store's stop as the host's shutdown makes it (host/host.ts): its optional `stopping(deadline)` as the
 * shutdown begins, then `stop(deadline)`, each to settle by that deadline, `settleMs` away. A `stopping` that throws
 * fails the host's shutdown; one that hangs it, or leaves `stop` unable to end, holds it past shutdownTimeout (exit 1).
 */
async function stopAsShutdown(store: Store, settleMs: number): Promise<string[]> {
  const deadline = Date.now() + settleMs;
  const left = () => Math.max(0, deadline - Date.now());
  const { stopping } = store;
  if (stopping) {
    const began = await settle(async () => stopping.call(store, deadline), left());
    if (began.state === "rejected") return [`stopping(deadline), as a shutdown begins, threw: ${String(began.error)}`];
    if (began.state === "pending") return [`stopping(deadline) did not settle by its deadline (${settleMs} ms)`];
  }
  const stopped = await settle(() => store.stop(deadline), left());
  const after = stopping ? "stopping(deadline) then stop(deadline)" : "stop(deadline)";
  if (stopped.state === "pending") return [`${after}, as a shutdown, did not settle by its deadline (${settleMs} ms)`];
  return stopped.state === "rejected" ? [`${after}, as a shutdown, ${said(stopped)}`] : [];
}

/**
 * Runs `declaration` (a plugin module's default export) through the contract's steps and returns what broke, one
 * sentence each; none when it keeps the contract. The steps: its example config validates; stop without start, twice,
 * resolves; start settles (resolves, or rejects with an Error: a plugin whose service is missing fails, never hangs);
 * after a start that worked, start again resolves, then stop twice resolves: a store's first as the host's shutdown
 * stops it (`stopping(deadline)` when it has one, then `stop(deadline)`, both settled by the deadline). A plugin whose
 * start needs a service (a server, a cluster) meets none unless the test provides it, and must fail cleanly and still
 * stop.
 *
 * @example
 * ```ts
 * import { checkPluginContract, startTestHost } from "kubemeta/testing";
 * import deletions from "./deletions.ts";
 *
 * const host = await startTestHost();
 * const broken = await checkPluginContract(deletions, { host, config: { file: `${host.dir}/audit.log` } });
 * await host.destroy();
 * if (broken.length > 0) throw new Error(broken.join("\n"));   // in bun:test, expect(broken).toEqual([])
 * ```
 */
export async function checkPluginContract(
  declaration: AnyDeclaration,
  options: PluginContractOptions,
): Promise<string[]> {
  const { host, settleMs = 5_000 } = options;
  const broken: string[] = [];
  const example = validate(declaration.schema, declaration.example ?? {}, false);
  if ("problems" in example) broken.push(`its example config does not validate: ${example.problems}`);
  const given = options.config === undefined ? undefined : validate(declaration.schema, options.config, true);
  const empty = validate(declaration.schema, {}, false);
  const ran = given ?? ("config" in empty ? empty : example);
  if ("problems" in ran) return [...broken, `the config it runs with does not validate: ${ran.problems}`];
  const { config } = ran;

  const create = () => {
    try {
      const made = instantiate(declaration, config, host);
      return typeof made?.start === "function" && typeof made.stop === "function"
        ? made
        : "returned no { start, stop }";
    } catch (error) {
      return `threw: ${String(error)}`;
    }
  };
  const unstarted = create();
  if (typeof unstarted === "string") return [...broken, `its create ${unstarted}`];
  for (const time of ["first", "second"]) {
    const stopped = await settle(() => unstarted.stop(), settleMs);
    if (stopped.state !== "resolved") broken.push(`stop without start, the ${time} time, ${said(stopped)}`);
  }

  const plugin = create();
  if (typeof plugin === "string") return [...broken, `its create, the second time, ${plugin}`];
  const first = await settle(() => plugin.start(), settleMs);
  if (first.state === "pending") broken.push(`start did not settle within ${settleMs} ms`);
  else if (first.state === "rejected" && !(first.error instanceof Error))
    broken.push(`start rejected with something other than an Error: ${String(first.error)}`);
  else if (first.state === "resolved") {
    const again = await settle(() => plugin.start(), settleMs);
    if (again.state !== "resolved") broken.push(`start after a start that worked ${said(again)}`);
  }
  // The host stops a store as a shutdown only once it started: one whose start failed is stopped alone.
  const started = declaration.kind === "store" && first.state === "resolved";
  const asShutdown = started ? await stopAsShutdown(plugin as Store, settleMs) : undefined;
  broken.push(...(asShutdown ?? []));
  for (const time of asShutdown ? ["second"] : ["first", "second"]) {
    const stopped = await settle(() => plugin.stop(), settleMs);
    if (stopped.state !== "resolved") broken.push(`stop after start, the ${time} time, ${said(stopped)}`);
  }
  return broken;
}
