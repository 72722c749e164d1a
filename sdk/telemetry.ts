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
