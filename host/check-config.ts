/** `--check`: what can be proved of a config without starting anything (README, "Commands"). */
import type { Config, ConfigIssue, SoundParts } from "./config.ts";
import { thrownText } from "./config-issues.ts";
import type { Logger } from "../sdk/telemetry.ts";
import { createMetrics } from "./metrics.ts";
import { pluginContext, pluginWarnings, storeOpenHint } from "./open-store.ts";
import { TIMED_OUT, until } from "../protocol/retry.ts";
import { PLUGIN_DEADLINE_MS } from "./supervise.ts";
import { certificateWarnings } from "./http-config.ts";

/**
 * For `--check`: what the config names that its schema cannot prove, said as its schema's errors are (each at its
 * path): with `ha`, the Lease's kubeconfig loads if a key names it; each plugin's own check (Declaration.check) passes;
 * the store can be opened (created if new, then closed), whatever those found, so that one check says all. Of a config
 * with schema errors, the parts they leave sound: an entry's check needs its keys right. Its warnings: what the store's
 * check says a start would change, and the plugins' own (a credential sent in clear text).
 */
export async function checkConfig(
  parts: SoundParts,
  logger: Logger,
): Promise<{ issues: ConfigIssue[]; warnings: string[] }> {
  // Beside the checks: a plugin's warnings that never settle are given up on once, as its check is, not after it.
  const warnings = ownWarnings(parts);
  const issues = [...(await leaseIssues(parts, logger)), ...(await pluginIssues(parts))];
  const store = await storeCheck(parts, logger);
  // ha-lease.ts loads the Kubernetes client: only with `ha`, which a config without it does not need.
  const leaseWarnings = parts.ha ? (await import("./ha-lease.ts")).leaseWarnings(parts.ha) : [];
  return {
    issues: [...issues, ...store.issues],
    warnings: [...store.warnings, ...(await warnings), ...leaseWarnings],
  };
}

/** Each plugin's own warnings (Declaration.warnings), at its entry (`sinks[0]: …`), as a start logs them. */
async function ownWarnings({ store, sources, sinks }: SoundParts): Promise<string[]> {
  const entries = [
    ...(store ? [{ path: "store", entry: store }] : []),
    ...sources.map((entry, i) => ({ path: `sources[${i}]`, entry })),
    ...sinks.map((entry, i) => ({ path: `sinks[${i}]`, entry })),
  ];
  const said = await Promise.all(
    entries.map(async ({ path, entry }) =>
      entry ? (await pluginWarnings(entry)).map((line) => `${path}: ${line}`) : [],
    ),
  );
  return said.flat();
}

/**
 * What a valid config leaves undone or will serve badly, logged at start and said by `--check`: an empty file (a
 * ConfigMap key left empty) is valid, every section at its default, and would run ready doing nothing. Neither is an
 * error: a kubemeta may serve a store it does not fill, and the HTTP reads (`/v1/objects`, `/v1/updates`) answer
 * without sinks. An `http.tls` certificate out of its validity (certificateWarnings).
 */
export function startWarnings(config: Config): string[] {
  return [
    ...(config.sources.length === 0 ? ["no sources: nothing is watched"] : []),
    ...(config.sinks.length === 0 ? ["no sinks: nothing is delivered (no SSE, NATS, webhook)"] : []),
    ...certificateWarnings(config.http),
  ];
}

/**
 * Why the store cannot be opened, at `store`: its plugin's message names it (its file, its server) and the cause. A
 * store's own check (Store.check) leaves an existing store as it is; its warnings say what a start would change.
 */
async function storeCheck(parts: SoundParts, logger: Logger): Promise<{ issues: ConfigIssue[]; warnings: string[] }> {
  const { store: entry } = parts;
  if (!entry) return { issues: [], warnings: [] };
  const context = pluginContext(parts, logger, createMetrics());
  try {
    const store = entry.declaration.create(entry.config, context(entry.name, "store"));
    if (store.check) return { issues: [], warnings: (await store.check()).map((note) => `store: ${note}`) };
    // Started and stopped, the one store made here: a plugin's create() may open what only its stop() closes.
    try {
      await store.start();
    } catch (error) {
      await store.stop().catch(() => {});
      throw error;
    }
    await store.stop();
    return { issues: [], warnings: [] };
  } catch (error) {
    const hint = storeOpenHint(parts, error);
    return {
      issues: [{ path: "store", message: hint ? `${thrownText(error)}; ${hint}` : thrownText(error) }],
      warnings: [],
    };
  }
}

/**
 * With `ha`, why the Lease's kubeconfig cannot be loaded, at the key to change (`ha` when none is). Only one
 * `ha.kubeconfig` or `ha.context` names, as the kubernetes source checks its own: without either it may be the pod's
 * service account, found only inside the cluster, and a check run elsewhere would fail for what it cannot see.
 */
async function leaseIssues({ ha }: SoundParts, logger: Logger): Promise<ConfigIssue[]> {
  if (!ha?.kubeconfig && !ha?.context) return [];
  const { electorFor, leaseKubeconfigIssue } = await import("./ha-lease.ts");
  try {
    electorFor(ha, logger, createMetrics());
    return [];
  } catch (error) {
    return [leaseKubeconfigIssue(ha, error)];
  }
}

/** What each plugin's own check throws, at its entry (`sources[1]`): the checks cannot say which of its keys. */
async function pluginIssues({ sources, sinks }: SoundParts): Promise<ConfigIssue[]> {
  const entries = [
    ...sources.flatMap((entry, i) => (entry ? [{ path: `sources[${i}]`, ...entry }] : [])),
    ...sinks.flatMap((entry, i) => (entry ? [{ path: `sinks[${i}]`, ...entry }] : [])),
  ];
  const issues = await Promise.all(
    entries.map(async ({ path, declaration, config: pluginConfig }): Promise<ConfigIssue[]> => {
      try {
        // As a start that hangs is given up on: a check that never settles must not hang the check for good.
        const checked = Promise.resolve(declaration.check?.(pluginConfig));
        if ((await until(checked, Date.now() + PLUGIN_DEADLINE_MS)) !== TIMED_OUT) return [];
        return [{ path, message: `its check did not finish within ${PLUGIN_DEADLINE_MS / 1000}s` }];
      } catch (error) {
        return [{ path, message: thrownText(error) }];
      }
    }),
  );
  return issues.flat();
}
