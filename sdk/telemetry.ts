/**
 * What the host gives every plugin to report with: a logger (JSON lines) and the one
 * Prometheus registry behind /metrics. The host implements them (host/logger.ts,
 * host/metrics.ts); plugins and the core see only these interfaces.
 */
import { ALL, nodeOfStream, SHARED } from "../protocol/streams.ts";

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line. */
  child(fields: LogFields): Logger;
}

export type Labels = Record<string, string>;

/**
 * A stream as a metric label: its class, `all`, `shared` or `node` (`other` for a name that is none of them).
 * Clients pick node streams by name, without bound: each name as a label would be a series that never goes away.
 */
export function streamLabel(stream: string): string {
  if (stream === ALL || stream === SHARED) return stream;
  return nodeOfStream(stream) === undefined ? "other" : "node";
}

export interface Counter {
  inc(labels?: Labels, by?: number): void;
  get(labels?: Labels): number;
}

export interface Gauge {
  set(value: number, labels?: Labels): void;
  inc(labels?: Labels, by?: number): void;
  dec(labels?: Labels, by?: number): void;
  get(labels?: Labels): number;
  /** Removes one labelled series (a subscriber that left). */
  remove(labels: Labels): void;
}

export interface Histogram {
  observe(value: number, labels?: Labels): void;
}

export interface Metrics {
  counter(name: string, help: string): Counter;
  gauge(name: string, help: string): Gauge;
  histogram(name: string, help: string, buckets?: number[]): Histogram;
  /** Prometheus text format. */
  render(): string;
}

/**
 * `kubemeta_plugin_failures_total{plugin, kind, phase}`: the host counts a plugin's failed or hung start and stop
 * (host/supervise.ts), a plugin the failures of its own background work once started (phase `run`).
 */
export function pluginFailures(metrics: Metrics): Counter {
  return metrics.counter(
    "kubemeta_plugin_failures_total",
    "Plugin failures, by plugin, kind and phase (start, stop, run).",
  );
}

/**
 * `kubemeta_sink_lag_versions{sink}`: kept by `consume` once a sink runs, and by the host (host/sink-lag.ts) from its
 * start until then, so that a sink that never starts has one too.
 */
export function sinkLag(metrics: Metrics): Gauge {
  return metrics.gauge(
    "kubemeta_sink_lag_versions",
    "Versions committed but not yet delivered by a sink (log head minus the sink's position).",
  );
}

/**
 * `kubemeta_sink_lag_seconds{sink}`: beside the lag in versions, kept the same way (sdk/consume-lag.ts, then
 * host/sink-lag.ts until the sink runs).
 */
export function sinkLagSeconds(metrics: Metrics): Gauge {
  return metrics.gauge(
    "kubemeta_sink_lag_seconds",
    "Seconds since the `time` of the oldest update a sink has not delivered (0 when it has delivered all).",
  );
}

/**
 * `kubemeta_changes_rejected_total{reason}`: the core's reasons (sdk/prepared.ts's, `too_deep`, `kind_not_allowed`,
 * `other_kind`) and a source's for what never became a change (the kubernetes source's `unknown_event_type`).
 */
export function changesRejected(metrics: Metrics): Counter {
  return metrics.counter(
    "kubemeta_changes_rejected_total",
    "Changes skipped because they were malformed, of a kind no slim rule publishes, of another kind than their " +
      "relist's, or of a watch event type not known, by reason.",
  );
}

/** Interval between two log lines of one kind, from a flood (bad requests, readers behind retention). */
const LOG_EVERY_MS = 60_000;

/**
 * A warning per `msg` at most once per interval; the next one says how many were not logged meanwhile (`unlogged`).
 * Whoever floods kubemeta with requests then gets no say over the log's volume; metrics count every one.
 */
export function rateLimitedWarn(logger: Logger, everyMs = LOG_EVERY_MS): (msg: string, fields: LogFields) => void {
  return rateLimited(logger, "warn", everyMs);
}

/** rateLimitedWarn at `level`: an error that can come with every update (one too large to publish) is one too. */
export function rateLimited(
  logger: Logger,
  level: "warn" | "error",
  everyMs = LOG_EVERY_MS,
): (msg: string, fields: LogFields) => void {
  const kinds = new Map<string, { at: number; unlogged: number }>();
  return (msg, fields) => {
    const now = Date.now();
    const kind = kinds.get(msg);
    if (kind && now - kind.at < everyMs) {
      kind.unlogged++;
      return;
    }
    logger[level](msg, kind?.unlogged ? { ...fields, unlogged: kind.unlogged } : fields);
    kinds.set(msg, { at: now, unlogged: 0 });
  };
}

export interface OutageLog {
  /**
   * One more failed attempt: the outage's first at its `first` level, the others a warning at most once an interval
   * and a debug line otherwise. A `cause` (a short key: an HTTP status, an error code, causeOf) not seen yet in this
   * outage is a warning at once: what fails may change while the outage lasts (the server back, the token refused).
   * `level`, when given, is that of this failure if it is said at once (the outage's first, a new cause): a sink's
   * failure it did not expect is an error, one it gets past now and then (its connection dropped) a warning.
   */
  failed(fields: LogFields, cause?: string, level?: "warn" | "error"): void;
  /**
   * An attempt worked: after failures, one info line (or `level`: debug when another line will say the recovery) says
   * how long they lasted and how many there were, with `fields` (what worked). Returns whether it said so: false when
   * nothing had failed.
   */
  succeeded(fields?: LogFields, level?: "info" | "debug"): boolean;
  /** Whether the last attempt failed: an outage is under way. */
  failing(): boolean;
}

export interface OutageLogOptions {
  /** The level of an outage's first failure: `error` by default. */
  first?: "warn" | "error";
  /** The interval between two warnings of one outage. */
  everyMs?: number;
}

/**
 * The log of something retried until it works, such as a store away for minutes: an error (or `first`) when it first
 * fails, then a warning at most once an interval with `failedAttempts` so far and `unlogged` (the failures since the
 * last warning, each a debug line), and `recovered` at info once it works again, with `downMs` and `failedAttempts`.
 * A line per attempt would flood the log for as long as the outage lasts.
 */
export function outageLog(logger: Logger, msg: string, recovered: string, options: OutageLogOptions = {}): OutageLog {
  const { first = "error", everyMs = LOG_EVERY_MS } = options;
  let outage:
    | { since: number; failedAttempts: number; warnedAt: number; unlogged: number; causes: Set<string> }
    | undefined;
  return {
    failed(fields, cause, level) {
      const now = Date.now();
      // Each outage on its own: the first failure of the next one is logged at `first` again, however soon it comes.
      if (!outage) {
        outage = { since: now, failedAttempts: 1, warnedAt: now, unlogged: 0, causes: new Set() };
        if (cause !== undefined) outage.causes.add(cause);
        logger[level ?? first](msg, fields);
        return;
      }
      outage.failedAttempts++;
      const newCause = cause !== undefined && !outage.causes.has(cause);
      if (cause !== undefined) outage.causes.add(cause);
      const counted = { ...fields, failedAttempts: outage.failedAttempts };
      if (!newCause && now - outage.warnedAt < everyMs) {
        outage.unlogged++;
        logger.debug(msg, counted);
        return;
      }
      logger[(newCause && level) || "warn"](
        msg,
        outage.unlogged > 0 ? { ...counted, unlogged: outage.unlogged } : counted,
      );
      outage.warnedAt = now;
      outage.unlogged = 0;
    },
    succeeded(fields, level = "info") {
      if (!outage) return false;
      logger[level](recovered, { ...fields, downMs: Date.now() - outage.since, failedAttempts: outage.failedAttempts });
      outage = undefined;
      return true;
    },
    failing: () => outage !== undefined,
  };
}

/**
 * What kind of failure an error is, to tell a new cause of an outage from a repeat (OutageLog.failed): its code
 * (`ECONNREFUSED`, `SQLITE_BUSY`), else its name (`TypeError`), else what it is (a plugin's thrown string).
 */
export function causeOf(error: unknown): string {
  const code = typeof error === "object" && error !== null ? (error as { code?: unknown }).code : undefined;
  if (typeof code === "string") return code;
  return error instanceof Error ? error.name : typeof error;
}
