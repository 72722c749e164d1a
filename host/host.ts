/**
 * The host: wires the config's plugins around the core and runs the lifecycle of
 * DESIGN.md. Start: open store → start sinks → start sources. Stop: stop sources →
 * commit what is pending → stop (drain) sinks → close store.
 */
import type { Config } from "./config.ts";
import type { Lifecycle, PluginContext, Sink, Source, Store } from "../sdk/contract.ts";
import { createHttpServer, type HttpServer, type Readiness } from "./http.ts";
import { mountApi } from "./read-api.ts";
import { createLog, type HostLog } from "../core/committed-log.ts";
import { createLogger } from "./logger.ts";
import type { Logger } from "../sdk/telemetry.ts";
import { createMetrics } from "./metrics.ts";
import type { Metrics } from "../sdk/telemetry.ts";
import { createPipeline, type Pipeline } from "../core/pipeline.ts";
import { supervise } from "./supervise.ts";

export interface Host {
  readonly epoch: string;
  readonly log: HostLog;
  readonly http: HttpServer;
  readonly metrics: Metrics;
  readiness(): Promise<Readiness>;
  /**
   * Stops everything in order; safe twice. Throws ShutdownTimedOut, after logging what was not committed, when it
   * takes longer than the config's shutdownTimeout.
   */
  stop(): Promise<void>;
}

/** The shutdown did not finish within shutdownTimeout: what was not committed is logged, the process exits 1. */
export class ShutdownTimedOut extends Error {
  constructor(timeoutMs: number) {
    super(`shutdown did not finish within ${timeoutMs} ms`);
    this.name = "ShutdownTimedOut";
  }
}

export interface HostOptions {
  logger?: Logger;
}

/** The store could not be opened; the cause is logged, naming the store. */
export class StoreOpenFailed extends Error {
  constructor(storeName: string) {
    super(`store ${storeName} cannot be opened`);
    this.name = "StoreOpenFailed";
  }
}

function pluginContext(config: Config, logger: Logger, metrics: Metrics) {
  return (name: string, kind: string): PluginContext => ({
    name,
    cluster: config.cluster,
    logger: logger.child({ [kind]: name }),
    metrics,
  });
}

/** Opens (creating or migrating) the config's store; one that cannot be opened is one error line, then thrown. */
async function openStore(config: Config, context: ReturnType<typeof pluginContext>, logger: Logger) {
  const { declaration, name } = config.store;
  const store: Store = declaration.create(config.store.config, context(name, "store"));
  try {
    return { store, state: await store.start() };
  } catch (error) {
    // Closes what the failed start left open; the cause worth reporting is the start's own.
    await store.stop().catch(() => {});
    logger.error("store cannot be opened", { store: name, type: declaration.type, error });
    throw new StoreOpenFailed(name);
  }
}

/** For `--check`: proves the store usable by opening it (creating it if new), then closes it. */
export async function checkStore(config: Config, logger: Logger): Promise<void> {
  const { store } = await openStore(config, pluginContext(config, logger, createMetrics()), logger);
  await store.stop();
}

export async function startHost(config: Config, options: HostOptions = {}): Promise<Host> {
  const logger = options.logger ?? createLogger({ level: config.logLevel });
  const metrics = createMetrics();
  const context = pluginContext(config, logger, metrics);

  const { store, state } = await openStore(config, context, logger);
  const log = createLog({ store, epoch: state.epoch, head: state.head, oldest: state.oldest, logger, metrics });
  const pipeline: Pipeline = createPipeline({
    store,
    state,
    digests: await store.digests(),
    logger,
    metrics,
    onCommit: (updates) => log.append(updates),
    slim: config.slim,
  });
  logger.info("store open", { epoch: state.epoch, head: state.head, oldest: state.oldest });

  // The sources not synced yet, with the reason each gave, if any.
  const unsynced = new Map(config.sources.map((s) => [s.name, undefined as string | undefined]));
  // What the last commit said, not a write per probe: a probe's write would wait for the store's write lock behind
  // commits (and another process's lock, up to the busy timeout), and a remote store would get a write per probe.
  const readiness = async (): Promise<Readiness> => {
    const waiting = [...unsynced].map(([name, reason]) =>
      reason ? `source ${name}: ${reason}` : `source ${name} not synced`,
    );
    const failure = pipeline.commitFailure();
    if (failure) waiting.push(`store not writable: ${failure.message}`);
    return { ready: waiting.length === 0, waiting };
  };
  const http = createHttpServer({ config: config.http, logger, metrics, readiness });
  mountApi(http.app, log);

  const sinks: Lifecycle[] = config.sinks.map(({ declaration, name, config: sinkConfig }) => {
    const base = context(name, "sink");
    const sink: Sink = declaration.create(sinkConfig, {
      ...base,
      log,
      http: http.app,
      cursor: {
        load: () => store.cursor(`sink/${name}`),
        save: (version) => store.saveCursor(`sink/${name}`, version),
      },
    });
    return supervise(sink, { name, kind: "sink", logger: base.logger, metrics });
  });
  const sources: Lifecycle[] = config.sources.map(({ declaration, name, config: sourceConfig }) => {
    const base = context(name, "source");
    const source: Source = declaration.create(sourceConfig, {
      ...base,
      changes: pipeline,
      synced: () => {
        if (unsynced.delete(name)) base.logger.info("source synced");
      },
      waiting: (reason) => {
        if (unsynced.has(name)) unsynced.set(name, reason);
      },
    });
    return supervise(source, { name, kind: "source", logger: base.logger, metrics });
  });

  for (const sink of sinks) await sink.start();
  await http.start();
  for (const source of sources) await source.start();

  // Each run is scheduled when the previous one is over: a slow prune never overlaps the next.
  let pruneTimer: Timer | undefined;
  let pruning: Promise<void> = Promise.resolve();
  const prune = async () => {
    try {
      const { removed, oldest } = await store.prune(config.store.retention);
      log.setOldest(oldest);
      if (removed > 0) logger.info("retention pruned updates", { removed, oldest });
    } catch (error) {
      logger.error("retention failed", { error });
    }
  };
  const schedulePrune = () => {
    pruneTimer = setTimeout(() => {
      pruning = prune().then(() => {
        if (pruneTimer) schedulePrune();
      });
    }, config.store.pruneIntervalMs);
  };
  schedulePrune();

  let stopping: Promise<void> | undefined;
  return {
    epoch: state.epoch,
    log,
    http,
    metrics,
    readiness,
    stop() {
      stopping ??= (async () => {
        clearTimeout(pruneTimer);
        pruneTimer = undefined;
        const steps = (async () => {
          await pruning;
          for (const source of sources) await source.stop();
          await pipeline.stop();
          for (const sink of sinks) await sink.stop();
          await http.stop();
          await store.stop();
        })();
        // A store that keeps failing holds the pending commit, and every step after it, for as long as it fails.
        let timer: Timer | undefined;
        const timedOut = new Promise<true>((resolve) => (timer = setTimeout(resolve, config.shutdownTimeoutMs, true)));
        if (await Promise.race([steps.then(() => false), timedOut]).finally(() => clearTimeout(timer))) {
          const { updates, resumePoints } = pipeline.abandon();
          logger.error("shutdown timed out; exiting without committing what is pending", {
            timeoutMs: config.shutdownTimeoutMs,
            uncommittedUpdates: updates,
            uncommittedResumePoints: resumePoints,
          });
          // The steps go on in the background (main.ts exits at once); they log how they end, nothing more.
          steps.catch((error) => logger.debug("shutdown steps failed after the timeout", { error }));
          throw new ShutdownTimedOut(config.shutdownTimeoutMs);
        }
        logger.info("stopped");
      })();
      return stopping;
    },
  };
}
