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
  /** Stops everything in order; safe twice. */
  stop(): Promise<void>;
}

export interface HostOptions {
  logger?: Logger;
}

export async function startHost(config: Config, options: HostOptions = {}): Promise<Host> {
  const logger = options.logger ?? createLogger({ level: config.logLevel });
  const metrics = createMetrics();
  const context = (name: string, kind: string): PluginContext => ({
    name,
    cluster: config.cluster,
    logger: logger.child({ [kind]: name }),
    metrics,
  });

  const store: Store = config.store.declaration.create(config.store.config, context(config.store.name, "store"));
  const state = await store.start();
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
  const readiness = async (): Promise<Readiness> => {
    const waiting = [...unsynced].map(([name, reason]) =>
      reason ? `source ${name}: ${reason}` : `source ${name} not synced`,
    );
    try {
      await store.checkWritable();
    } catch (error) {
      waiting.push(`store not writable: ${(error as Error).message}`);
    }
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
        await pruning;
        for (const source of sources) await source.stop();
        await pipeline.stop();
        for (const sink of sinks) await sink.stop();
        await http.stop();
        await store.stop();
        logger.info("stopped");
      })();
      return stopping;
    },
  };
}
