/** `--check`: what can be proved of a config without starting anything (README, "Quick start"). */
import { ConfigError, type Config, type ConfigIssue } from "./config.ts";
import type { Logger } from "../sdk/telemetry.ts";
import { createMetrics } from "./metrics.ts";
import { pluginContext, startStore } from "./open-store.ts";
import { electorFor, leaseKubeconfigIssue } from "./replication.ts";
import { TIMED_OUT, until } from "../protocol/retry.ts";
import { PLUGIN_DEADLINE_MS } from "./supervise.ts";
import { certificateWarnings } from "./http-config.ts";

/**
 * For `--check`: what the config names that its schema cannot prove, said as its schema's errors are (ConfigError,
 * each at its path): with `ha`, the Lease's kubeconfig loads if a key names it; each plugin's own check
 * (Declaration.check) passes; the store can be opened (created if new, then closed), whatever those found, so that one
 * check says all.
 */
export async function checkConfig(config: Config, logger: Logger): Promise<void> {
  const issues = [
    ...leaseIssues(config, logger),
    ...(await pluginIssues(config)),
    ...(await storeIssues(config, logger)),
  ];
  if (issues.length > 0) throw new ConfigError(issues);
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

/** Why the store cannot be opened, at `store`: its plugin's message names it (its file, its server) and the cause. */
async function storeIssues(config: Config, logger: Logger): Promise<ConfigIssue[]> {
  try {
    const { store } = await startStore(config, pluginContext(config, logger, createMetrics()), logger);
    await store.stop();
    return [];
  } catch (error) {
    return [{ path: "store", message: messageOf(error) }];
  }
}

const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));

/**
 * With `ha`, why the Lease's kubeconfig cannot be loaded, at the key to change (`ha` when none is). Only one
 * `ha.kubeconfig` or `ha.context` names, as the kubernetes source checks its own: without either it may be the pod's
 * service account, found only inside the cluster, and a check run elsewhere would fail for what it cannot see.
 */
function leaseIssues(config: Config, logger: Logger): ConfigIssue[] {
  const { ha } = config;
  if (!ha?.kubeconfig && !ha?.context) return [];
  try {
    electorFor(ha, logger);
    return [];
  } catch (error) {
    return [leaseKubeconfigIssue(ha, error)];
  }
}

/** What each plugin's own check throws, at its entry (`sources[1]`): the checks cannot say which of its keys. */
async function pluginIssues(config: Config): Promise<ConfigIssue[]> {
  const entries = [
    ...config.sources.map((entry, i) => ({ path: `sources[${i}]`, ...entry })),
    ...config.sinks.map((entry, i) => ({ path: `sinks[${i}]`, ...entry })),
  ];
  const issues = await Promise.all(
    entries.map(async ({ path, declaration, config: pluginConfig }): Promise<ConfigIssue[]> => {
      try {
        // As a start that hangs is given up on: a check that never settles must not hang the check for good.
        const checked = Promise.resolve(declaration.check?.(pluginConfig));
        if ((await until(checked, Date.now() + PLUGIN_DEADLINE_MS)) !== TIMED_OUT) return [];
        return [{ path, message: `its check did not finish within ${PLUGIN_DEADLINE_MS / 1000}s` }];
      } catch (error) {
        return [{ path, message: messageOf(error) }];
      }
    }),
  );
  return issues.flat();
}
