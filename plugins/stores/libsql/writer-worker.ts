/**
 * Worker thread of writer.ts: the store's only writer connection to a `file:` store. One connection, so PRAGMAs set
 * through it hold for every later write (see connection.ts). Requests run one at a time, in the order they came.
 *
 * It drives libSQL's own binding (`libsql`, the engine @libsql/client runs `file:` URLs on, one copy of it in the
 * process: tests/store-libsql-writer.test.ts) rather than the client, to keep statements prepared across commits: the
 * client prepares every statement on every run, and SQLite compiles each row of a multi-row VALUES anew. bench/store.ts
 * committed 40,300 updates/s instead of 20,300 for an initial sync, 20,000 instead of 12,600 for churn.
 */
import Database from "libsql";
import type { InStatement } from "@libsql/client";
import type { WriteResult, WriterReply, WriterRequest } from "./writer.ts";
import { unpack, type PostedStatement } from "./packed-args.ts";
import { yieldCoresToEventLoop } from "../../../sdk/priority.ts";
import { releaseClosedConnections } from "./release.ts";
import { runStatement } from "./run-statement.ts";

declare const self: Worker;

yieldCoresToEventLoop();

type Connection = Database.Database;
type Statement = Database.Statement;

/** Statements kept prepared, by SQL text. The texts are few (commit.ts); a flood of others only empties it. */
const MAX_PREPARED = 256;

let db: Connection | undefined;
const prepared = new Map<string, Statement>();
/**
 * The batch whose slices have come so far: its transaction is open and its statements ran as they came, so that the
 * writer works while the main thread is still posting the rest. Requests for anything else wait until it ends.
 */
let open: { id: number; results: WriteResult[]; error?: unknown } | undefined;
const held: WriterRequest[] = [];
let queue: Promise<void> = Promise.resolve();

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

const execute = (inStatement: InStatement): WriteResult => runStatement(statementOf, inStatement);

/**
 * Runs a slice of batch `id`, opening its transaction (BEGIN IMMEDIATE takes the write lock first, as
 * @libsql/client's batch in "write" mode does). After a failure the rest is skipped; the last slice reports it.
 */
function runSlice(id: number, statements: PostedStatement[]): void {
  if (!open) {
    open = { id, results: [] };
    try {
      opened().exec("BEGIN IMMEDIATE");
    } catch (error) {
      open.error = error;
    }
  }
  if (open.error !== undefined) return;
  try {
    for (const statement of statements) open.results.push(execute(unpack(statement)));
  } catch (error) {
    open.error = error;
    if (db?.inTransaction) db.exec("ROLLBACK");
  }
}

/** The last slice of batch `id`: all of it committed, or none of it and its error thrown. */
function endBatch(id: number, statements: PostedStatement[]): WriteResult[] {
  runSlice(id, statements);
  const batch = open!;
  open = undefined;
  if (batch.error !== undefined) throw batch.error;
  try {
    opened().exec("COMMIT");
  } catch (error) {
    if (db?.inTransaction) db.exec("ROLLBACK");
    throw error;
  }
  return batch.results;
}

/**
 * SQLite folds the WAL into the file when its last connection closes, but libsql's close() leaves a connection open
 * while statements it prepared live (it has no finalize: README, "Bun quirks"), and the writer keeps its statements:
 * without this the WAL would stay, and the file alone would not be the whole store. The writer closes last
 * (connection.ts). A reader elsewhere (another process) is not waited for: the checkpoint it blocks leaves the WAL,
 * which with the file is the whole store as before.
 */
function foldWalIntoFile(): void {
  if (!db) return;
  try {
    db.exec("PRAGMA busy_timeout = 0");
    db.prepare("PRAGMA wal_checkpoint(TRUNCATE)").all();
  } catch {
    // Busy or failing, the WAL stays beside the file, and the store is as whole as before.
  }
}

function run(request: WriterRequest): WriteResult[] | Promise<WriteResult[]> | undefined {
  switch (request.type) {
    case "part":
      runSlice(request.id, request.statements);
      return undefined;
    case "batch":
      return endBatch(request.id, request.statements);
    case "open":
      db = new Database(request.path, { timeout: request.busyTimeoutMs });
      return [];
    case "execute":
      return [execute(request.statement)];
    case "close":
      prepared.clear();
      foldWalIntoFile();
      db?.close();
      db = undefined;
      return releaseClosedConnections().then(() => []);
    case "crash":
      // Nothing after this runs: the queue waits for ever, and the error is uncaught.
      return new Promise<never>(() =>
        setTimeout(() => {
          throw new Error("crash requested");
        }),
      );
  }
}

async function answer(request: WriterRequest): Promise<void> {
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
}

/**
 * A cursor saved between two slices of a batch must not join the batch's transaction (nor roll back with it). A
 * crash is not held: a bug strikes inside a transaction too.
 */
function mayRun(request: WriterRequest): boolean {
  if (!open || request.type === "crash") return true;
  return (request.type === "part" || request.type === "batch") && request.id === open.id;
}

/** Runs `request`, or holds it while a batch it is not part of is open; then what was held, in order. */
async function admit(request: WriterRequest): Promise<void> {
  if (!mayRun(request)) {
    held.push(request);
    return;
  }
  await answer(request);
  for (let next = held.findIndex(mayRun); next >= 0; next = held.findIndex(mayRun)) {
    const [waiting] = held.splice(next, 1);
    await answer(waiting!);
  }
}

/**
 * A bug that ends this thread must not take the write lock with it: Bun does not finalize what a dead Worker still
 * references, so this connection (held by the statements kept prepared) would stay open with its transaction, and
 * every later writer would find the database locked until the process ends (tests/bun-worker.test.ts). It is rolled
 * back; the error still ends the thread. (Bun calls neither `process.on("uncaughtException")` under `bun test` nor an
 * `unhandledrejection` listener at all in a Worker; no request can reject here, answer() catches what it throws.)
 */
function rollBack(): void {
  try {
    if (db?.inTransaction) db.exec("ROLLBACK");
  } catch {
    // Nothing more can be done for it: the thread is ending anyway.
  }
}
self.addEventListener("error", rollBack);

self.onmessage = (event: MessageEvent<WriterRequest>) => {
  const request = event.data;
  queue = queue.then(() => admit(request));
};
