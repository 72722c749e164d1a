/**
 * Hrana's JSON shapes (values, statements, results, batch conditions, errors) as the test
 * libSQL server (./hrana-server.ts) reads and writes them, and the errors sqld answers with
 * (libsql-server/src/hrana/{mod,stmt}.rs of tursodatabase/libsql).
 */
import type { SQLQueryBindings } from "bun:sqlite";

export type HranaValue =
  | { type: "null" }
  | { type: "integer"; value: string }
  | { type: "float"; value: number }
  | { type: "text"; value: string }
  | { type: "blob"; base64: string };

export interface HranaStmt {
  sql?: string | null;
  sql_id?: number | null;
  args?: HranaValue[];
  named_args?: { name: string; value: HranaValue }[];
  want_rows?: boolean;
}

export interface StmtResult {
  cols: { name: string | null; decltype: string | null }[];
  rows: HranaValue[][];
  affected_row_count: number;
  last_insert_rowid: string | null;
}

export type BatchCond =
  | { type: "ok" | "error"; step: number }
  | { type: "not"; cond: BatchCond }
  | { type: "and" | "or"; conds: BatchCond[] }
  | { type: "is_autocommit" };

export interface BatchStep {
  condition?: BatchCond | null;
  stmt: HranaStmt;
}

export interface BatchResult {
  step_results: (StmtResult | null)[];
  step_errors: ({ message: string; code?: string } | null)[];
}

/** What a stream runs, alike over HTTP (a pipeline's requests) and WebSocket (which adds a `stream_id`). */
export type SessionRequest =
  | { type: "execute"; stmt: HranaStmt }
  | { type: "batch"; batch: { steps: BatchStep[] } }
  | { type: "sequence" | "describe"; sql?: string | null; sql_id?: number | null }
  | { type: "get_autocommit" };

/** A Hrana version: 1 and 2 lack what later ones added, and a request of a later one is a protocol error. */
export type Version = 1 | 2 | 3;

export function requireVersion(version: Version, least: 2 | 3, what: string): void {
  if (version < least)
    throw new ProtocolError(`${what} is only supported in protocol version hrana${least} and higher`);
}

/** An error the client sees as `{message, code}`. */
export class HranaError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

/** A request a correct client never sends: sqld fails the whole HTTP request (400) and drops the stream. */
export class ProtocolError extends Error {}

/** Thrown through the executor once the server has crashed on purpose: nothing may answer. */
export class Crashed extends Error {}

/** Called around every COMMIT; it may crash the server (and then throws Crashed). */
export type CommitHook = (phase: "before" | "after") => void;

export function decodeValue(value: HranaValue): SQLQueryBindings {
  switch (value.type) {
    case "null":
      return null;
    case "integer":
      if (!/^-?\d+$/.test(value.value)) throw new ProtocolError(`Cannot deserialize integer ${value.value}`);
      return BigInt(value.value);
    case "float":
      return value.value;
    case "text":
      return value.value;
    case "blob":
      return new Uint8Array(Buffer.from(value.base64, "base64"));
    default:
      throw new ProtocolError("Value type not recognized");
  }
}

/** With safeIntegers every INTEGER comes back as a bigint, so a number is always a REAL. */
export function encodeValue(value: unknown): HranaValue {
  if (value === null || value === undefined) return { type: "null" };
  if (typeof value === "bigint") return { type: "integer", value: value.toString() };
  if (typeof value === "number") return { type: "float", value };
  if (typeof value === "string") return { type: "text", value };
  if (value instanceof Uint8Array) return { type: "blob", base64: Buffer.from(value).toString("base64") };
  throw new Error(`unexpected SQLite value ${String(value)}`);
}

/** rusqlite's names of SQLite's primary result codes, by code, as sqld reports them (SQLITE_ERROR is "UNKNOWN"). */
const SQLITE_CODES = (
  "OK UNKNOWN INTERNAL PERM ABORT BUSY LOCKED NOMEM READONLY INTERRUPT IOERR CORRUPT NOTFOUND FULL CANTOPEN " +
  "PROTOCOL UNKNOWN SCHEMA TOOBIG CONSTRAINT MISMATCH MISUSE NOLFS AUTH UNKNOWN RANGE NOTADB"
).split(" ");

/**
 * A statement's error as sqld words it: "SQLite error: …" with the primary code's name
 * (SQLITE_CONSTRAINT_NOTNULL is SQLITE_CONSTRAINT). sqld parses SQL before SQLite does, so
 * what SQLite calls a syntax error is its SQL_PARSE_ERROR.
 */
export function asHranaError(error: unknown): HranaError {
  if (error instanceof HranaError) return error;
  const { message = String(error), errno } = error as { message?: string; errno?: unknown };
  if (typeof errno !== "number") return new HranaError(message, "UNKNOWN");
  if (/syntax error|incomplete input|unrecognized token/.test(message))
    return new HranaError(`SQL string could not be parsed: ${message}`, "SQL_PARSE_ERROR");
  return new HranaError(`SQLite error: ${message}`, `SQLITE_${SQLITE_CODES[errno & 0xff] ?? "UNKNOWN"}`);
}

/** sqld checks a batch before running it: conditions name earlier steps, is_autocommit needs Hrana 3. */
export function checkCondition(cond: BatchCond, step: number, version: Version): void {
  switch (cond.type) {
    case "ok":
    case "error":
      if (!(cond.step >= 0 && cond.step < step))
        throw new ProtocolError("Invalid reference to step in a batch condition");
      return;
    case "not":
      checkCondition(cond.cond, step, version);
      return;
    case "and":
    case "or":
      for (const c of cond.conds) checkCondition(c, step, version);
      return;
    case "is_autocommit":
      requireVersion(version, 3, "The `is_autocommit` condition");
      return;
    default:
      throw new ProtocolError("BatchCond type not recognized");
  }
}

/**
 * store_sql, under sqld's limits: over HTTP a stream stores 50 texts of up to 5,000 bytes; over WebSocket a connection
 * stores 150, of any size.
 */
export function storeSql(sqls: Map<number, string>, id: number, sql: string, most: { count: number; bytes?: number }) {
  if (sqls.has(id)) throw new ProtocolError(`SQL text ${id} already exists`);
  if (sqls.size >= most.count)
    throw new HranaError(
      `The server already stores ${sqls.size} SQL texts, it cannot store more`,
      "SQL_STORE_TOO_MANY",
    );
  if (most.bytes !== undefined && Buffer.byteLength(sql) > most.bytes)
    throw new HranaError("The statement is too large to be stored", "SQL_STORE_TOO_LARGE");
  sqls.set(id, sql);
}

export function sqlOf(stmt: { sql?: string | null; sql_id?: number | null }, sqls: ReadonlyMap<number, string>) {
  const hasSql = typeof stmt.sql === "string";
  const hasId = typeof stmt.sql_id === "number";
  if (hasSql === hasId) throw new ProtocolError("Either `sql` or `sql_id` are required, but not both");
  if (hasSql) return stmt.sql as string;
  const sql = sqls.get(stmt.sql_id as number);
  if (sql === undefined) throw new ProtocolError(`SQL text ${stmt.sql_id} not found`);
  return sql;
}

/** sqld's estimate of a result's size, which it caps (--max-response-size). */
export function sizeOf(rows: unknown[][]): number {
  let size = 0;
  for (const row of rows) {
    for (const value of row) {
      if (typeof value === "string") size += Buffer.byteLength(value);
      else if (value instanceof Uint8Array) size += value.length;
      else size += 8;
    }
  }
  return size;
}

/** Hrana 3's cursor entries of a batch's result, as its cursors (over HTTP and WebSocket) hand them out. */
export function cursorEntries(result: BatchResult): Record<string, unknown>[] {
  const entries: Record<string, unknown>[] = [];
  result.step_results.forEach((step, i) => {
    const error = result.step_errors[i];
    if (error) entries.push({ type: "step_error", step: i, error });
    if (!step) return;
    entries.push({ type: "step_begin", step: i, cols: step.cols });
    for (const row of step.rows) entries.push({ type: "row", row });
    entries.push({
      type: "step_end",
      affected_row_count: step.affected_row_count,
      last_insert_rowid: step.last_insert_rowid,
    });
  });
  return entries;
}
