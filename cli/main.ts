/**
 * The CLI behind main.ts: serve (the default), --check, --demo, rbac and new-epoch (main.ts runs tail from
 * cli/tail.ts). Validates the whole config before anything starts, then serves until SIGTERM/SIGINT (`signals`,
 * listened for since the process began).
 */
import { lstat } from "node:fs/promises";
import { ConfigError, loadConfig, resolveConfig, type Config } from "../host/config.ts";
import { type Host, startHost } from "../host/host.ts";
import { ShutdownTimedOut } from "../host/shutdown.ts";
import { StartAbandoned, StartFailed } from "../host/open-store.ts";
import { checkConfig, startWarnings } from "../host/check-config.ts";
import { checkListenerWarnings } from "../host/http-address.ts";
import { createLogger } from "../host/logger.ts";
import { guardProcess } from "../host/supervise.ts";
import type { Demo } from "./demo.ts";
import { newEpoch } from "./new-epoch.ts";
import { rbacWarnings, rbacYaml } from "./rbac.ts";
import { builtins } from "../plugins/index.ts";
import type { EarlySignals } from "./signals.ts";
import type { Command } from "./command.ts";
import type { Logger } from "../sdk/telemetry.ts";

/** Runs `command` (cli/command.ts read it from the command line); resolves with the exit code. */
export async function main(command: Command, signals: EarlySignals): Promise<number> {
  const { configCommand, port } = command;
  // Only serving (and the demo) stops on a signal: anything else ends as a signal ends it.
  if (configCommand || command.check) await signals.release();
  if (command.demo) {
    let demo: Demo;
    try {
      // A second signal while it starts is logged then, as after it (a first one stops it once started).
      const starting = (logger: Logger, timeoutMs: number) => logRepeatedSignals(signals, logger, timeoutMs);
      // The simulated cluster, loaded only for the demo: a serve, a check, rbac and new-epoch have no use for it.
      const { startDemo } = await import("./demo.ts");
      demo = await startDemo({ port: port ?? 8080, dataDir: "data/demo", starting });
    } catch (error) {
      // A failed start of kubemeta itself is logged already; the demo's own (its data dir) says why in one line.
      if (!(error instanceof StartFailed))
        process.stderr.write(`kubemeta: the demo cannot start: ${error instanceof Error ? error.message : error}\n`);
      return 1;
    }
    // The demo runs kubemeta as a serve does: an error no handler caught is logged and counted, not the end.
    guardProcess(demo.logger, demo.host.metrics);
    await stopAsked(signals, demo.host);
    return (await stopInTime(demo.stop)) && !demo.host.failure ? 0 : 1;
  }

  let config: Config;
  try {
    // A config on a pipe nobody writes (`--config <(…)` whose writer failed) holds its read for good: a signal then
    // stops a serve that did nothing yet. Other commands were released to the signals' default above.
    const reading = readConfig(command.config);
    const serving = !configCommand && !command.check;
    const read = await (serving ? Promise.race([reading, signals.stop.then(() => undefined)]) : reading);
    if (read === undefined) {
      process.stderr.write("kubemeta: stopped before the config was read\n");
      return 0;
    }
    config = read;
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    if (!command.check || !error.sound) return invalidConfig(error);
    // What the schema's errors leave sound is checked as a valid config is: one check says all that is wrong.
    const found = await checkConfig(error.sound, checkLogger());
    return invalidConfig(new ConfigError([...error.issues, ...found.issues], [...error.warnings, ...found.warnings]));
  }
  if (port !== undefined) config.http.port = port;
  if (configCommand === "rbac") {
    printWarnings(rbacWarnings(config));
    process.stdout.write(rbacYaml(config));
    return 0;
  }
  if (configCommand === "new-epoch") return newEpoch(config);
  const logger = command.check ? checkLogger() : createLogger({ level: config.logLevel });
  let host: Host;
  try {
    if (command.check) {
      // Said whatever else the check finds, as a start would log them: they do not make the config invalid.
      printWarnings(config.warnings);
      const found = await checkConfig(config, logger);
      if (found.issues.length > 0) return invalidConfig(new ConfigError(found.issues, found.warnings));
      // Only of a config that could run: one with errors has more to fix than what it leaves out.
      printWarnings([...found.warnings, ...startWarnings(config), ...(await checkListenerWarnings(config.http))]);
      process.stdout.write("config is valid\n");
      return 0;
    }
    const stopAsked = new AbortController();
    void signals.stop.then(() => stopAsked.abort());
    // From here, not once started: a second signal while the store opens or the sinks start is logged too.
    logRepeatedSignals(signals, logger, config.shutdownTimeoutMs);
    host = await startHost(config, { logger, signal: stopAsked.signal });
  } catch (error) {
    // Already logged, naming what failed (the store, the Lease's kubeconfig) and the cause.
    if (error instanceof StartFailed) return 1;
    if (error instanceof StartAbandoned) return 0;
    throw error;
  }
  guardProcess(logger, host.metrics);
  // Once started, as a start that fails says only why in its one line.
  for (const warning of startWarnings(config)) logger.warn(warning);
  // A signal that came while the host started stops it now that it has.
  await stopAsked(signals, host);
  logger.info("shutting down");
  if (!(await stopInTime(() => host.stop()))) return 1;
  // Found before the stop or during it (the store replaced before it closed): what was committed since is lost.
  return host.failure ? 1 : 0;
}

/** A signal, or the host that cannot go on (Host.failed, logged already): exit 1 then, once it stopped. */
function stopAsked(signals: EarlySignals, host: Host): Promise<void> {
  return Promise.race([signals.stop, host.failed]).then(
    () => {},
    () => {},
  );
}

/** Runs a host's stop; false when it ran out of `shutdownTimeout` (logged already, with what was not committed). */
async function stopInTime(stop: () => Promise<void>): Promise<boolean> {
  try {
    await stop();
    return true;
  } catch (error) {
    if (error instanceof ShutdownTimedOut) return false;
    throw error;
  }
}

/** Signals after the first change nothing (the shutdown under way goes on, within its timeout), and say so. */
function logRepeatedSignals(signals: EarlySignals, logger: Logger, shutdownTimeoutMs: number): void {
  signals.onRepeat((signal) =>
    logger.warn("already shutting down; another signal does not cut it short", { signal, shutdownTimeoutMs }),
  );
}

/** A check says only what is wrong: the store's info lines while it is opened are not for its reader. */
const checkLogger = () => createLogger({ level: "error" });

/** What a command that logs nothing (`--check`, `rbac`) warns of: a line each on stderr. */
function printWarnings(warnings: string[]): void {
  for (const warning of warnings) process.stderr.write(`kubemeta: warning: ${warning}\n`);
}

/** A config that cannot be used: its warnings (as a valid one's), every issue at its path, on stderr, and exit 1. */
function invalidConfig(error: ConfigError): number {
  printWarnings(error.warnings);
  process.stderr.write(
    `invalid config:\n${error.issues.map((i) => `  ${i.path || "(root)"}: ${i.message}`).join("\n")}\n`,
  );
  return 1;
}

/** The config read without --config, when there is anything by its name. */
const DEFAULT_CONFIG = "kubemeta.yaml";

async function readConfig(path: string | undefined): Promise<Config> {
  if (path) return loadConfig(path, { registry: builtins });
  // Whatever has the name (a directory, a link to nothing) was meant as the config: loadConfig says what is wrong
  // with it, where passing it by served the built-in defaults unasked.
  const named = await lstat(DEFAULT_CONFIG).then(
    () => true,
    () => false,
  );
  if (named) return loadConfig(DEFAULT_CONFIG, { registry: builtins });
  return resolveConfig(
    { sources: [{ type: "kubernetes" }], sinks: [{ type: "sse" }] },
    { baseDir: process.cwd(), registry: builtins },
  );
}
