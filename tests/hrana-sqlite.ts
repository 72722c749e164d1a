/**
 * The SQL half of the test Hrana server (./hrana-server.ts): one bun:sqlite connection per
 * stream, and the Hrana requests run on it (libsql-server/docs/HRANA_3_SPEC.md, HTTP_V2_SPEC.md).
 */
import { Database, type SQLQueryBindings, type Statement } from "bun:sqlite";
import {
  asHranaError,
  type BatchCond,
  type BatchResult,
  type BatchStep,
  checkCondition,
  type CommitHook,
  Crashed,
  decodeValue,
  encodeValue,
  HranaError,
  type HranaStmt,
  ProtocolError,
  requireVersion,
  type SessionRequest,
  sizeOf,
  sqlOf,
  type StmtResult,
  type Version,
} from "./hrana-proto.ts";

/** libSQL's own syntax, which SQLite does not parse: a deferred transaction that refuses writes. */
const BEGIN_READONLY = /^\s*BEGIN\s+(?:TRANSACTION\s+)?READONLY\s*;?\s*$/i;
const COMMIT = /^\s*(?:COMMIT|END)(?:\s+TRANSACTION)?\s*;?\s*$/i;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface SessionOptions {
  path: string;
  /** SQLITE_BUSY is retried asynchronously until then, so other streams run meanwhile (see execute()). */
  busyTimeoutMs: number;
  /** A statement whose rows are larger fails with RESPONSE_TOO_LARGE (sqld's --max-response-size). */
  maxResponseBytes: number;
  commitHook: CommitHook;
}

/** One SQLite connection: what a Hrana stream runs on, kept between the stream's requests. */
export class SqlSession {
  readonly db: Database;
  /** Set while a BEGIN READONLY transaction holds `query_only` on. */
  private readOnly = false;

  constructor(private readonly options: SessionOptions) {
    this.db = new Database(options.path, { create: true, safeIntegers: true, strict: true });
  }

  get autocommit(): boolean {
    return !this.db.inTransaction;
  }

  /** Back to a clean connection: for the pool, or when a stream expires with a transaction open. */
  reset(): void {
    if (this.db.inTransaction) this.db.run("ROLLBACK");
    this.endReadOnly();
  }

  close(): void {
    this.db.close(false);
  }

  private endReadOnly(): void {
    if (this.readOnly && !this.db.inTransaction) {
      this.db.run("PRAGMA query_only = 0");
      this.readOnly = false;
    }
  }

  /**
   * One statement. busy_timeout would sleep inside SQLite and block this (the only) thread,
   * so a lock held by another stream could never be released: SQLITE_BUSY is retried here,
   * between turns of the event loop. A statement that failed busy changed nothing.
   */
  async execute(stmt: HranaStmt, sqls: ReadonlyMap<number, string>): Promise<StmtResult> {
    const deadline = Date.now() + this.options.busyTimeoutMs;
    for (let wait = 1; ; wait = Math.min(wait * 2, 50)) {
      try {
        return this.executeNow(stmt, sqls);
      } catch (error) {
        const busy = (error as { code?: unknown }).code;
        if (typeof busy !== "string" || !busy.startsWith("SQLITE_BUSY") || Date.now() > deadline) throw error;
      }
      await sleep(wait);
    }
  }

  private executeNow(stmt: HranaStmt, sqls: ReadonlyMap<number, string>): StmtResult {
    const sql = sqlOf(stmt, sqls);
    if (BEGIN_READONLY.test(sql)) {
      this.db.run("BEGIN DEFERRED");
      this.db.run("PRAGMA query_only = 1");
      this.readOnly = true;
      return { cols: [], rows: [], affected_row_count: 0, last_insert_rowid: this.counters().rowid };
    }
    const commit = COMMIT.test(sql) && this.db.inTransaction;
    if (commit) this.options.commitHook("before");
    const prepared = this.db.query(sql);
    const before = this.counters().total;
    const rows = prepared.values(...bindings(stmt, prepared));
    const after = this.counters();
    if (commit) this.options.commitHook("after");
    this.endReadOnly();
    if (stmt.want_rows !== false && sizeOf(rows) > this.options.maxResponseBytes)
      throw new HranaError("Response is too large", "RESPONSE_TOO_LARGE");
    const types = prepared.declaredTypes;
    return {
      cols: prepared.columnNames.map((name, i) => ({ name, decltype: types[i] ?? null })),
      rows: stmt.want_rows === false ? [] : rows.map((row) => row.map(encodeValue)),
      // changes() keeps the count of the last INSERT, UPDATE or DELETE: report it only if this statement wrote.
      affected_row_count: after.total === before ? 0 : after.changes,
      last_insert_rowid: after.rowid,
    };
  }

  private counters(): { total: bigint; changes: number; rowid: string } {
    const [total, changes, rowid] = this.db
      .query<unknown, []>("SELECT total_changes(), changes(), last_insert_rowid()")
      .values()[0] as [bigint, bigint, bigint];
    return { total, changes: Number(changes), rowid: rowid.toString() };
  }

  /** A batch: each step runs if its condition holds; a failed step is an error of that step, not of the batch. */
  async batch(steps: BatchStep[], sqls: ReadonlyMap<number, string>, version: Version): Promise<BatchResult> {
    steps.forEach((step, i) => {
      if (step.condition) checkCondition(step.condition, i, version);
    });
    const result: BatchResult = { step_results: [], step_errors: [] };
    for (const step of steps) {
      let stepResult: StmtResult | null = null;
      let stepError: { message: string; code: string } | null = null;
      if (!step.condition || this.holds(step.condition, result)) {
        try {
          stepResult = await this.execute(step.stmt, sqls);
        } catch (error) {
          if (error instanceof Crashed || error instanceof ProtocolError) throw error;
          const { message, code } = asHranaError(error);
          stepError = { message, code };
        }
      }
      result.step_results.push(stepResult);
      result.step_errors.push(stepError);
    }
    return result;
  }

  /** A request on this stream, answered as sqld does; `unrecognized`: an unknown type, in its transport's words. */
  async request(
    request: SessionRequest,
    sqls: ReadonlyMap<number, string>,
    version: Version,
    unrecognized: string,
  ): Promise<Record<string, unknown>> {
    switch (request.type) {
      case "execute":
        return { type: "execute", result: await this.execute(request.stmt, sqls) };
      case "batch":
        return { type: "batch", result: await this.batch(request.batch.steps, sqls, version) };
      case "sequence":
        requireVersion(version, 2, "The `sequence` request");
        this.sequence(sqlOf(request, sqls));
        return { type: "sequence" };
      case "describe":
        requireVersion(version, 2, "The `describe` request");
        return { type: "describe", result: this.describe(sqlOf(request, sqls)) };
      case "get_autocommit":
        requireVersion(version, 3, "The `get_autocommit` request");
        return { type: "get_autocommit", is_autocommit: this.autocommit };
      default:
        throw new ProtocolError(unrecognized);
    }
  }

  private holds(cond: BatchCond, done: BatchResult): boolean {
    switch (cond.type) {
      case "ok":
        return done.step_results[cond.step] != null;
      case "error":
        return done.step_errors[cond.step] != null;
      case "not":
        return !this.holds(cond.cond, done);
      case "and":
        return cond.conds.every((c) => this.holds(c, done));
      case "or":
        return cond.conds.some((c) => this.holds(c, done));
      case "is_autocommit":
        return this.autocommit;
      default:
        throw new ProtocolError("BatchCond type not recognized");
    }
  }

  /** Several statements separated by semicolons, no results. Not retried on SQLITE_BUSY: part may have run. */
  sequence(sql: string): void {
    this.db.run(sql);
    this.endReadOnly();
  }

  /**
   * What a statement takes and returns. bun:sqlite does not expose parameter names nor
   * sqlite3_stmt_readonly, so names are null and is_readonly is a guess from the first keyword.
   */
  describe(sql: string) {
    const prepared = this.db.prepare(sql);
    try {
      const types = prepared.declaredTypes;
      return {
        params: Array.from({ length: prepared.paramsCount }, () => ({ name: null })),
        cols: prepared.columnNames.map((name, i) => ({ name, decltype: types[i] ?? null })),
        is_explain: /^\s*EXPLAIN\b/i.test(sql),
        is_readonly: /^\s*(?:SELECT|VALUES|EXPLAIN)\b/i.test(sql),
      };
    } finally {
      prepared.finalize();
    }
  }
}

/** Positional or named arguments; named ones lose their prefix (strict mode binds `:a`, `@a`, `$a` by `a`). */
function bindings(stmt: HranaStmt, prepared: Statement): SQLQueryBindings[] {
  const args = (stmt.args ?? []).map(decodeValue);
  const named = stmt.named_args ?? [];
  if (named.length > 0 && args.length > 0)
    throw new HranaError(
      "Specifying both positional and named arguments is not supported",
      "ARGS_BOTH_POSITIONAL_AND_NAMED",
    );
  const count = named.length || args.length;
  if (count !== prepared.paramsCount) {
    const message = `expected ${prepared.paramsCount} parameters, got ${count}`;
    throw new HranaError(`Arguments do not match SQL parameters: ${message}`, "ARGS_INVALID");
  }
  if (named.length === 0) return args;
  const values: Record<string, SQLQueryBindings> = {};
  for (const { name, value } of named) values[name.replace(/^[:@$]/, "")] = decodeValue(value);
  return [values as SQLQueryBindings];
}
