/**
 * Worker thread of writer.ts: the store's only writer connection to a `file:` store. One connection, so PRAGMAs set
 * through it hold for every later write (see connection.ts). Requests run one at a time, in the order they came.
 *
 * It drives libSQL's own binding (`libsql`, the engine @libsql/client runs `file:` URLs on, one copy of it in the
 * process: tests/store-libsql-writer.test.ts) rather than the client, to keep statements prepared across commits: the
 * client prepares every statement on every run, and SQLite compiles each row of a multi-row VALUES anew. Measured on an
 * initial sync of 150,000 real-size pods, the writer's time halved (bench/store.ts in the README's Benchmarks).
 */
import Database from "libsql";
import type { InStatement } from "@libsql/client";
import type { WriteResult, WriterReply, WriterRequest } from "./writer.ts";

declare const self: Worker;

type Connection = Database.Database;
type Statement = Database.Statement;

/** Statements kept prepared, by SQL text. The texts are few (commit.ts); a flood of others only empties it. */
const MAX_PREPARED = 256;

let db: Connection | undefined;
const prepared = new Map<string, Statement>();
let queue: Promise<void> = Promise.resolve();
/** The statements of batches whose last slice has not come yet, by request id. */
const parts = new Map<number, InStatement[]>();

function opened(): Connection {
  if (!db) throw new Error("the store's writer is not open");
  return db;
}

function statementOf(sql: string): Statement {
  let statement = prepared.get(sql);
  if (!statement) {
    if (prepared.size >= MAX_PREPARED) prepared.clear();
    statement = opened().prepare(sql);
    prepared.set(sql, statement);
  }
  return statement;
}

/** Rows as plain records by column name, as @libsql/client's rows answer by name. */
function execute(inStatement: InStatement): WriteResult {
  const { sql, args = [] } = typeof inStatement === "string" ? { sql: inStatement } : inStatement;
  const statement = statementOf(sql);
  if (statement.reader) return { rows: statement.all(args) as WriteResult["rows"], rowsAffected: 0 };
  return { rows: [], rowsAffected: statement.run(args).changes };
}

/** All or none, as @libsql/client's batch in "write" mode: BEGIN IMMEDIATE takes the write lock first. */
function batch(statements: InStatement[]): WriteResult[] {
  const connection = opened();
  connection.exec("BEGIN IMMEDIATE");
  try {
    const results = statements.map(execute);
    connection.exec("COMMIT");
    return results;
  } catch (error) {
    if (connection.inTransaction) connection.exec("ROLLBACK");
    throw error;
  }
}

function run(request: WriterRequest): WriteResult[] | Promise<WriteResult[]> | undefined {
  switch (request.type) {
    case "part":
      parts.set(request.id, [...(parts.get(request.id) ?? []), ...request.statements]);
      return undefined;
    case "open":
      db = new Database(request.path, { timeout: request.busyTimeoutMs });
      return [];
    case "execute":
      return [execute(request.statement)];
    case "batch": {
      const statements = [...(parts.get(request.id) ?? []), ...request.statements];
      parts.delete(request.id);
      return batch(statements);
    }
    case "close":
      prepared.clear();
      db?.close();
      db = undefined;
      return [];
    case "crash":
      // Nothing after this runs: the queue waits for ever, and the error is uncaught.
      return new Promise<never>(() =>
        setTimeout(() => {
          throw new Error("crash requested");
        }),
      );
  }
}

self.onmessage = (event: MessageEvent<WriterRequest>) => {
  const request = event.data;
  queue = queue.then(async () => {
    let reply: WriterReply;
    try {
      const results = await run(request);
      if (!results) return;
      reply = { id: request.id, results };
    } catch (error) {
      const { message, code, rawCode } = error as Error & { code?: unknown; rawCode?: unknown };
      reply = {
        id: request.id,
        error: {
          message: String(message ?? error),
          code: typeof code === "string" ? code : undefined,
          rawCode: typeof rawCode === "number" ? rawCode : undefined,
        },
      };
    }
    self.postMessage(reply);
  });
};
