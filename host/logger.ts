/** JSON lines on stdout: one object per event, `level`, `time`, `msg`, then fields. */
import { withoutUrl } from "../protocol/error-text.ts";
import type { LogFields, Logger } from "../sdk/telemetry.ts";

export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export interface LoggerOptions {
  level?: LogLevel;
  /** Where lines go; stdout by default. */
  write?: (line: string) => void;
}

/** Whether stdout failed (its reader gone: `| head`, a consumer that exited): lines are dropped from then on. */
let stdoutGone = false;
/** Whether stdoutFailed listens on stdout: added at the first line written there, once. */
let stdoutWatched = false;

/**
 * stdout as long as it takes lines. A write that fails is reported as the stream's `error` event, which Bun, with no
 * listener, prints as a stack on stderr (before guardProcess) or raises as an unhandled rejection (after it): a
 * reader that went away is no failure of kubemeta, which goes on serving without its log and says so once on stderr.
 */
function writeStdout(line: string): void {
  if (stdoutGone) return;
  if (!stdoutWatched) {
    stdoutWatched = true;
    process.stdout.on("error", stdoutFailed);
  }
  process.stdout.write(line);
}

function stdoutFailed(error: NodeJS.ErrnoException): void {
  if (stdoutGone) return;
  stdoutGone = true;
  // stderr may be the same pipe (`2>&1 | head`): its own failure then has nobody left to tell.
  process.stderr.on("error", () => {});
  const why = error.code === "EPIPE" ? "its reader is gone" : error.message;
  process.stderr.write(`kubemeta: stdout: ${why}; kubemeta goes on without writing its log there\n`);
}

export function createLogger(options: LoggerOptions = {}, bound: LogFields = {}): Logger {
  const threshold = LOG_LEVELS.indexOf(options.level ?? "info");
  const write = options.write ?? writeStdout;
  const emit = (level: LogLevel) => (msg: string, fields?: LogFields) => {
    if (LOG_LEVELS.indexOf(level) < threshold) return;
    write(`${line({ level, time: new Date().toISOString(), msg }, { ...bound, ...fields })}\n`);
  };
  return {
    debug: emit("debug"),
    info: emit("info"),
    warn: emit("warn"),
    error: emit("error"),
    child: (fields) => createLogger(options, { ...bound, ...fields }),
  };
}

/**
 * The line as JSON. A log call never throws: its caller is often a catch or an error handler (guardProcess's, whose
 * throw would end the process), and a field JSON cannot carry (a cycle, a throwing toJSON) must not lose the event;
 * the line then says why its fields are missing.
 */
function line(head: LogFields, fields: LogFields): string {
  try {
    return JSON.stringify({ ...head, ...unclashed(fields) }, replacer);
  } catch (error) {
    return JSON.stringify({ ...head, unloggableFields: error instanceof Error ? error.message : String(error) });
  }
}

const OWN_KEYS = new Set(["level", "time", "msg"]);

/**
 * The fields, those named as the line's own (`level`, `time`, `msg`) renamed `field_<name>`: a plugin's field must not
 * turn an info line into an error one, or replace the message a query looks for.
 */
function unclashed(fields: LogFields): LogFields {
  if (!Object.keys(fields).some((name) => OWN_KEYS.has(name))) return fields;
  const kept: LogFields = {};
  for (const [name, value] of Object.entries(fields)) kept[OWN_KEYS.has(name) ? `field_${name}` : name] = value;
  return kept;
}

/** Errors stringify as `{}` by default: a log line needs what they say. A BigInt (a libSQL integer) as its digits. */
function plain(_key: string, value: unknown): unknown {
  if (typeof value === "bigint") return value.toString();
  return value instanceof Error ? errorFields(value) : value;
}

/** plain, and an `error` field that holds no Error said as text (errorText). */
function replacer(key: string, value: unknown): unknown {
  return key === "error" && !(value instanceof Error) ? errorText(value) : plain(key, value);
}

/**
 * Causes a logged error carries: enough for Node's fetch ('fetch failed', the socket's ECONNREFUSED in its cause, an
 * AggregateError of one per address in that), and a bound on a chain that never ends.
 */
const CAUSE_DEPTH = 3;

/**
 * An error as a line holds it: name, message, `code` (Bun's fetch's `ECONNREFUSED`, libSQL's `SQLITE_BUSY`, which is
 * what an alert or a search keys on) and its causes', CAUSE_DEPTH deep. A cause that is no Error is said as a string.
 * Each property is read on its own: one whose getter throws is left out, the rest kept.
 */
function errorFields(error: Error, depth = 0): Record<string, unknown> {
  const message = read(() => error.message);
  const fields: Record<string, unknown> = {
    name: read(() => error.name),
    // Bun's fetch's request URL (its query may hold a token) and its hint to fetch's caller are left out, whoever
    // logs the error: a sink's store read, a plugin's, as the kubernetes source and the webhook say their own.
    message: typeof message === "string" ? bounded(withoutUrl(message)) : message,
  };
  const code = read(() => (error as { code?: unknown }).code);
  if (typeof code === "string" || typeof code === "number") fields.code = code;
  const cause = depth < CAUSE_DEPTH ? read(() => error.cause) : undefined;
  if (cause instanceof Error) fields.cause = errorFields(cause, depth + 1);
  else if (cause !== undefined) fields.cause = { message: read(() => bounded(String(cause))) };
  return fields;
}

function read<T>(get: () => T): T | undefined {
  try {
    return get();
  } catch {
    return undefined;
  }
}

/** The most of an error's message or text a line carries: a plugin may throw a whole response body. */
export const MAX_ERROR_CHARS = 2_000;

function bounded(text: string): string {
  if (text.length <= MAX_ERROR_CHARS) return text;
  return `${text.slice(0, MAX_ERROR_CHARS)}… (${text.length - MAX_ERROR_CHARS} more characters)`;
}

/**
 * What was thrown, or rejected with, that is no Error: a plugin's `Promise.reject()`, a string, a number, an object.
 * JSON drops `undefined`, a symbol and a function, and writes a Map as `{}`: the line would not say why.
 */
function errorText(value: unknown): string {
  if (typeof value === "string") return bounded(value);
  if (typeof value === "function") return `a function (${value.name || "anonymous"})`;
  if (value === null || typeof value !== "object") return String(value);
  let json: string | undefined;
  try {
    json = JSON.stringify(value, plain);
  } catch {
    // A cycle, or a toJSON that throws: Bun's own rendering copes with both.
  }
  return bounded(json === undefined || json === "{}" ? Bun.inspect(value) : json);
}

/** A logger that drops everything (tests, benchmarks). */
export const silentLogger: Logger = createLogger({ write: () => {} });
