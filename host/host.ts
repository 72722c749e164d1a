/**
 * The host: wires the config's plugins around the core and runs the lifecycle of
 * DESIGN.md. Start: open store → bind the HTTP listener → start sinks → serve HTTP → lead (start sources).
 * Stop: stop sources → commit what is pending → stop (drain) sinks → drain HTTP → close store.
 *
 * With `ha`, every replica opens the shared store, follows its log (host/follower.ts) and
 * serves readers; the one that holds the Lease leads (host/leader.ts): it writes, runs
 * the sources and lets the sinks deliver. Losing the Lease, or being fenced out by the
 * store, ends its term and it follows again.
 */
import type { Config } from "./config.ts";
import type { Lifecycle, Sink } from "../sdk/contract.ts";
import { createHttpServer, type HttpServer, type Readiness } from "./http.ts";
import { mountApi } from "./read-api.ts";
import { createLog, type HostLog } from "../core/committed-log.ts";
import { sayFenced, STORE_UNANSWERED_MS } from "../core/commit-queue.ts";
import { createLogger } from "./logger.ts";
import type { Logger } from "../sdk/telemetry.ts";
import { createMetrics } from "./metrics.ts";
import { watchEventLoop } from "./loop-lag.ts";
import { watchOpenFiles } from "./open-files.ts";
import { committedAfter, watchLogAge } from "./log-age.ts";
import type { Metrics } from "../sdk/telemetry.ts";
import { supervise } from "./supervise.ts";
import { openStore, pluginContext, StartFailed, warnOfConfig } from "./open-store.ts";
import { startLeaderTerm, type LeaderTerm } from "./leader.ts";
import { checkSameStore } from "./follower.ts";
import { Terms } from "./leadership.ts";
import type { Replication } from "./replication.ts";
import { until } from "../protocol/retry.ts";
import { ShutdownWaits } from "./shutdown-waits.ts";
import { shutDownWithin } from "./shutdown.ts";
import { isStoreReplaced } from "../sdk/store-contract.ts";
import { lagUntilStarted, type LagUntilStarted } from "./sink-lag.ts";

export interface Host {
  readonly epoch: string;
  readonly log: HostLog;
  readonly http: HttpServer;
  readonly metrics: Metrics;
  readiness(): Promise<Readiness>;
  /**
   * Rejects when the host cannot go on and must be stopped, the cause already logged: the store found itself replaced
   * (StoreContext.replaced: its file deleted or replaced), or the host found the store's epoch or head not its
   * log's (checkSameStore): a StoreReplacedError either way; or, without `ha`, the store failed the writer's term's
   * start (a remote store that stopped answering once open). Never settles otherwise.
   */
  readonly failed: Promise<never>;
  /** What `failed` rejected with, once it has: during a stop too, up to the store's close. */
  readonly failure: Error | undefined;
  /**
   * Stops everything in order; safe twice. Throws ShutdownTimedOut, after logging what was not committed, when it
   * takes longer than the config's shutdownTimeout.
   */
  stop(): Promise<void>;
}

/** What of shutdownTimeout (at most a fifth) the HTTP drain leaves for the store's close after it. */
const STORE_CLOSE_RESERVE_MS = 1_000;

export interface HostOptions {
  logger?: Logger;
  /**
   * Aborted when a stop is asked for while the host starts. Most of a start is short, and the stop comes once it is
   * over; but a remote store that accepts the connection and never answers holds its open up to the store's
   * `timeout` (a minute by default), so that open is given up on: StartAbandoned.
   */
  signal?: AbortSignal;
  /** The wall clock updates are stamped by (their `time`), ms since the epoch: Date.now by default. */
  clock?: () => number;
}

/**
 * With `ha`, the Lease's elector and what starts the replica under it; a kubeconfig that cannot be loaded is one error
 * line, then thrown. The line names the key to change as `--check` does (`ha.context: …`), its cause in `error`.
 * ha-lease.ts and replication.ts are loaded only then: they load the Kubernetes client, which a start without `ha`
 * may not need.
 */
async function haElector(config: Config, logger: Logger, metrics: Metrics) {
  if (!config.ha) return undefined;
  const { electorFor, leaseKubeconfigIssue, leaseWarnings } = await import("./ha-lease.ts");
  const { startReplication } = await import("./replication.ts");
  try {
    const elector = electorFor(config.ha, logger, metrics);
    for (const warning of leaseWarnings(config.ha, true)) logger.warn(warning);
    return { elector, startReplication };
  } catch (error) {
    const { path } = leaseKubeconfigIssue(config.ha, error);
    logger.error(`${path}: the kubeconfig of the Lease cannot be loaded`, { error });
    throw new StartFailed("the kubeconfig of the Lease cannot be loaded");
  }
}

export async function startHost(config: Config, options: HostOptions = {}): Promise<Host> {
  const logger = options.logger ?? createLogger({ level: config.logLevel });
  const metrics = createMetrics();
  const context = pluginContext(config, logger, metrics);
  const loop = watchEventLoop(metrics);
  const files = watchOpenFiles(metrics, logger);
  await warnOfConfig(config, context, logger);

  // The kubeconfig of the Lease is loaded before anything starts: a bad one stops nothing half-started.
  const ha = await haElector(config, logger, metrics);
  const failed = Promise.withResolvers<never>();
  failed.promise.catch(() => {});
  let failure: Error | undefined;
  const readsRefused = new AbortController();
  /** Once: the store and, with `ha`, the replica following it may both find it replaced. */
  const fail = (message: string, error: Error) => {
    if (failure) return;
    failure = error;
    logger.error(message, { error });
    readsRefused.abort(error);
    failed.reject(error);
  };
  const { store, state, horizons } = await openStore(config, context, logger, {
    signal: options.signal,
    replaced: (error) => fail("stopping: the store was replaced under this process", error),
  });
  const { epoch, head, oldest } = state;
  // The objects are whole once a leader's sources have synced, which the store records (leader.ts, follower.ts); a
  // store that records nothing: whole if it held updates, and with `ha` at once (no replica can tell when the leader's
  // have synced).
  const whole = state.whole ?? (head > 0 || !!config.ha);
  const unansweredMs = STORE_UNANSWERED_MS;
  const log = createLog({ store, epoch, head, oldest, horizons, logger, metrics, whole, unansweredMs });
  const logAge = watchLogAge(store, log, metrics);
  // Logs of several clusters are often read in one place: this line says whose these are.
  logger.info("store open", { epoch: state.epoch, head: state.head, oldest: state.oldest, cluster: config.cluster });

  const terms = new Terms();
  let stopping: Promise<void> | undefined;
  let leader: LeaderTerm | undefined;
  let replication: Replication | undefined;
  // What the last commit (or poll of the store) said, not a write per probe: a probe's write would wait for the
  // store's write lock behind commits (and another process's lock, up to the busy timeout), and a remote store
  // would get a write per probe.
  const readiness = async (): Promise<Readiness> => {
    // A load balancer sends no new reader here once the shutdown began (the listener still answers while sinks drain).
    if (stopping) return { ready: false, waiting: ["shutting down"] };
    const waiting = replication ? replication.waiting() : (leader?.waiting() ?? ["starting"]);
    return { ready: waiting.length === 0, waiting };
  };
  const http = createHttpServer({ config: config.http, logger, metrics, readiness });
  mountApi(http.app, log, logger, config.http.idleTimeout, { refused: readsRefused.signal, drainOver: http.drainOver });
  try {
    // Before any sink starts: a start that cannot listen must not have delivered anything (a webhook's batch).
    await http.listen();
  } catch (error) {
    // A port in use, an address not on this host: one error line, and nothing left running.
    const { address, port } = config.http;
    logger.error("http cannot listen", { address, port, error });
    logAge.stop();
    await store.stop();
    loop.stop();
    files.stop();
    throw new StartFailed(`http cannot listen on ${address}:${port}`);
  }

  const waits = new ShutdownWaits();
  const lags: LagUntilStarted[] = [];
  const sinks: (Lifecycle & { name: string })[] = config.sinks.map(({ declaration, name, config: sinkConfig }) => {
    const lag = lagUntilStarted({
      sink: name,
      metrics,
      head: () => log.head(),
      cursor: () => store.cursor(`sink/${name}`),
      delivers: () => !config.ha || terms.holds(),
      committedAfter: (version) => committedAfter(store, version),
    });
    lags.push(lag);
    const base = { ...context(name, "sink"), metrics: lag.metrics };
    const cursor = waits.cursor(name, {
      load: () => store.cursor(`sink/${name}`),
      save: (version) => store.saveCursor(`sink/${name}`, version),
    });
    const create = (): Sink =>
      declaration.create(sinkConfig, {
        ...base,
        log,
        http: http.app,
        cursor,
        ...(config.ha ? { leadership: terms } : {}),
      });
    return { ...supervise(create, { name, kind: "sink", logger: base.logger, metrics, started: lag.started }), name };
  });

  // At once: each waits for its own start only, up to the deadline, so a slow one holds up no other. A stop asked for
  // meanwhile waits for none: the host stops now, a start still under way stopped by the sink's stop.
  await until(Promise.all(sinks.map((sink) => sink.start())), Infinity, options.signal);
  // Every route is mounted now: the requests that came while the sinks started are answered.
  http.serve();
  const leaderOptions = { config, store, log, logger, metrics, context, clock: options.clock };
  // Started only to be stopped, the sources would list the whole cluster for nothing.
  if (options.signal?.aborted) logger.info("stop asked for while starting; the sources are not started");
  else if (config.ha && ha) {
    const onReplaced = (error: Error) => fail("stopping: the store was replaced under this replica", error);
    const { elector, startReplication } = ha;
    replication = startReplication({ ha: config.ha, elector, leaderOptions, terms, logger, onReplaced });
  } else {
    try {
      leader = await startLeaderTerm({
        ...leaderOptions,
        // The term has ended itself (sources and retention stopped); nothing else can write here until a restart.
        onFenced: (error, uncommittedUpdates) => void fencedWithoutHa(error, uncommittedUpdates),
        // A stop asked for while it starts gives it up, or ends its wait for its sources' starts.
        ...(options.signal && { starting: { stopped: options.signal, unansweredMs: Infinity } }),
      });
    } catch (error) {
      if (options.signal?.aborted) logger.info("stop asked for while starting; the sources are not started");
      // One error line and the stop, exit 1, as for a store that cannot be opened: neither a stack trace nor a
      // process that serves without writing.
      else
        fail(
          isStoreReplaced(error)
            ? "stopping: the store was replaced under this process"
            : "stopping: the store failed as this process became its writer",
          error as Error,
        );
    }
  }

  /**
   * A refused commit is another kubemeta's term, or a store that is no longer this log's (emptied, or given a new
   * epoch by `new-epoch`): a restart serves that store, as a replica with `ha` finds when it follows; waiting for
   * one would leave this process unready for good, its epoch's versions still served.
   */
  async function fencedWithoutHa(error: Error, uncommittedUpdates?: number): Promise<void> {
    const position = await store.position().catch(() => undefined);
    try {
      checkSameStore(log, position);
    } catch (replaced) {
      return fail("stopping: the store was replaced under this process", replaced as Error);
    }
    if (uncommittedUpdates !== undefined) sayFenced(logger, error, uncommittedUpdates);
    logger.error("another kubemeta writes to this store; this one stopped its sources, not ready until restarted");
    // Its log moves no further: a stream open here would never move again, a reader answered from it fall behind.
    log.retire(new Error("another kubemeta writes this store"));
  }

  return {
    epoch: state.epoch,
    log,
    http,
    metrics,
    readiness,
    failed: failed.promise,
    get failure() {
      return failure;
    },
    stop() {
      stopping ??= (async () => {
        const deadline = Date.now() + config.shutdownTimeoutMs;
        http.endKeepAlive();
        for (const lag of lags) lag.stop();
        const steps = (async () => {
          store.stopping?.(deadline);
          waits.at("the sources' stop and the commit of what they sent");
          await replication?.stopLeading();
          await leader?.stop();
          await waits.stopSinks(sinks);
          waits.at("the end of the term and the Lease's release");
          await replication?.stop();
          waits.at("the requests in flight");
          // Requests in flight finish, leaving the store's close its share of the time.
          await http.stop(deadline - Math.min(STORE_CLOSE_RESERVE_MS, config.shutdownTimeoutMs / 5));
          waits.at("the store's close");
          logAge.stop();
          await store.stop(deadline);
          loop.stop();
          files.stop();
        })();
        await shutDownWithin(steps, {
          timeoutMs: config.shutdownTimeoutMs,
          deadline,
          waits,
          uncommitted: () => replication?.uncommitted() ?? leader?.uncommitted(),
          release: replication && (() => replication.release()),
          logger,
        });
        logger.info("stopped");
      })();
      return stopping;
    },
  };
}
