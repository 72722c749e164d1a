/** JSON lines on stdout: one object per event, `level`, `time`, `msg`, then fields. */
import type { LogFields, Logger } from "../sdk/telemetry.ts";

export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export interface LoggerOptions {
  level?: LogLevel;
  /** Where lines go; stdout by default. */
  write?: (line: string) => void;
}

const writeStdout = (line: string) => process.stdout.write(line);

export function createLogger(options: LoggerOptions = {}, bound: LogFields = {}): Logger {
  const threshold = LOG_LEVELS.indexOf(options.level ?? "info");
  const write = options.write ?? writeStdout;
  const emit = (level: LogLevel) => (msg: string, fields?: LogFields) => {
    if (LOG_LEVELS.indexOf(level) < threshold) return;
    write(`${JSON.stringify({ level, time: new Date().toISOString(), msg, ...bound, ...fields }, errorReplacer)}\n`);
  };
  return {
    debug: emit("debug"),
    info: emit("info"),
    warn: emit("warn"),
    error: emit("error"),
    child: (fields) => createLogger(options, { ...bound, ...fields }),
  };
}

/** Errors stringify as `{}` by default; a log line needs their message. */
function errorReplacer(_key: string, value: unknown): unknown {
  return value instanceof Error ? { name: value.name, message: value.message } : value;
}

/** A logger that drops everything (tests, benchmarks). */
export const silentLogger: Logger = createLogger({ write: () => {} });
